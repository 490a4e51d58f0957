"""Modules the tests import but no declared dependency provides.

Many projects never declare what their tests import (``hypothesis``, ``pytest_mock``,
``yaml``). After installing, the builder collects the suite once in the build sandbox and
reads the ``No module named 'x'`` lines; each missing top-level module that is not the
standard library's and not defined anywhere in the tree maps to a distribution: its own
name (PyPI normalizes ``_`` and ``-``) unless a small generic table knows the import name
differs from the distribution name (``yaml`` -> ``PyYAML``). No per-project rules.
"""

from __future__ import annotations

import re
import sys

_MISSING = re.compile(
    r"(?:ModuleNotFoundError: No module named|ImportError: No module named)\s+'?([\w.]+)'?")

IMPORT_TO_DIST = {
    "yaml": "PyYAML", "dateutil": "python-dateutil", "PIL": "Pillow", "attr": "attrs",
    "bs4": "beautifulsoup4", "sklearn": "scikit-learn", "skimage": "scikit-image",
    "cv2": "opencv-python-headless", "Crypto": "pycryptodome", "OpenSSL": "pyOpenSSL",
    "jwt": "PyJWT", "dns": "dnspython", "magic": "python-magic", "serial": "pyserial",
    "git": "GitPython", "zmq": "pyzmq", "google": "protobuf", "pkg_resources": "setuptools",
    "distutils": "setuptools", "ruamel": "ruamel.yaml", "dotenv": "python-dotenv",
    "slugify": "python-slugify", "multipart": "python-multipart", "jose": "python-jose",
    "Levenshtein": "python-Levenshtein", "nacl": "PyNaCl", "usb": "pyusb",
    "xdist": "pytest-xdist", "pytest_cov": "pytest-cov", "docx": "python-docx",
    "pptx": "python-pptx", "gi": "PyGObject", "wx": "wxPython", "fitz": "PyMuPDF",
    "Bio": "biopython", "mpl_toolkits": "matplotlib", "lxml": "lxml", "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2-binary", "sqlalchemy": "SQLAlchemy", "markdown": "Markdown",
    "typing_extensions": "typing-extensions", "faker": "Faker", "freezegun": "freezegun",
    "asyncore": "pyasyncore", "asynchat": "pyasynchat", "imp": "",
}
"""Import names whose distribution has another name ('' = nothing to install)."""

NEVER_INSTALL = {"__main__", "conftest", "test", "tests", "testing", "setup", "_pytest",
                 "pytest", "py", "src", "lib", "utils", "helpers", "common", "fixtures"}
"""Names too generic to be a dependency: a missing one is a path problem, not a package."""


def missing_modules(output: str) -> list[str]:
    """Top-level modules named in ``No module named ...`` lines, in order of appearance."""
    found = [m.group(1).split(".")[0] for m in _MISSING.finditer(output)]
    return list(dict.fromkeys(found))


def distributions_for(modules: list[str], local: set[str], tried: set[str]) -> list[str]:
    """Distributions that would provide ``modules``; skipping the standard library, names
    defined in the tree (``local``), generic names and those ``tried`` already."""
    stdlib = set(sys.stdlib_module_names) - {"distutils", "imp", "asyncore", "asynchat"}
    out = []
    for mod in modules:
        if mod in stdlib or mod in local or mod in NEVER_INSTALL or mod.startswith("_"):
            continue
        dist = IMPORT_TO_DIST.get(mod, mod.replace("_", "-"))
        if dist and dist not in tried:
            out.append(dist)
    return list(dict.fromkeys(out))
