"""Layer 2: environments: the builder (``builder/``), interpreters, locks and the
environment store (a cache of the ledger's rows). Sandboxes live in ``codemill.sandbox``
and project detection in ``codemill.repos.detect``, a layer below."""
