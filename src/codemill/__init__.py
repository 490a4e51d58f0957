"""codemill: an open model factory for code agents.

Repositories go in; verified, executable RL environments, tasks, agent rollouts, honest
rewards, training runs and evals come out, each recorded in Apache Iceberg with lineage.

Importing this package does no I/O and imports no heavy dependency (pinned by
``tests/test_import.py``). The public surface of the package itself is ``__version__``; the
records, Protocols and errors other code builds on live in ``codemill.core``, and the
commands in ``codemill.cli`` (the ``codemill`` script).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
