"""Static project detection: what a source tree declares, read without running any of it.

``project.detect_project`` is the entry (a ``ProjectInfo``); ``meta`` reads PEP 621,
Poetry, setup.cfg and ``setup.py`` (by AST, in ``setuppy``), ``hints`` tox/nox/CI/
requirements files, ``pytest_config`` the pytest configuration, ``layout`` where the
package and the tests live, ``files`` the bounded file reads they share. Imports nothing
of codemill: it is plain reading.
"""
