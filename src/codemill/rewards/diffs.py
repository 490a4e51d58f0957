"""Reading a candidate diff as data: ``codemill.core.diffs`` (the one home of diff parsing),
re-exported here for the grader's callers."""

from codemill.core.diffs import (  # noqa: F401
    FileChange,
    parse_diff,
    repo_path,
    strip_level,
    touched_paths,
)
