"""The environment builder: a snapshot in, an ``EnvSpec`` with its baseline out.

``build.build_env`` is the entry. ``plan`` chooses interpreter, extras and install steps
from the detected project; ``install`` runs them with uv in a network-only build sandbox;
``imports`` finds modules the tests import that nothing declared (offline);
``compile`` byte-compiles on the host; ``verdict`` runs the k-run baseline and decides
usable/failed/no_tests/flaky; ``reasons`` turns failures into a line a person can act on;
``records`` holds ``BUILDER_VERSION`` and the build's records.
"""
