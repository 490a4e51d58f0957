"""Sandboxes (L1): where untrusted code runs.

``api`` is the entry (``SandboxSpec``, ``open_sandbox``, the ``SANDBOXES`` registry);
``bwrap`` is the default backend (bubblewrap over a per-run mount namespace with a
copy-on-write overlay, cgroup and rlimit limits), ``process`` the unisolated one for trusted
development. ``layers``, ``workspace`` and ``workspace_diff`` are the overlay layers, the
writable workspace over them and its diff; ``cgroups``, ``capture`` and ``host`` are the
limits, the bounded output capture and the host's system binds. Imports only ``core``.
"""
