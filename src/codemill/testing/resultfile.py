"""Reading a harness's result file from the host side of a sandbox's results dir.

The results dir is writable from inside the sandbox, so whatever lies there may have been
planted by the code under test: a symlink to a host file, a FIFO that blocks a reader, a
file of many gigabytes. ``read_result_file`` opens without following links, without
blocking, accepts only a regular file and reads at most ``max_bytes``.

What it does not protect against: the code under test runs in the same process as the
test harness, so it can write a complete, well-formed result file of its own. Graders
defend against that elsewhere (pristine test files restored before the run, hidden tests).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from codemill.core.errors import TestRunError
from codemill.core.records import ExecResult

TAIL_CHARS = 4000


def clear_dir(path: Path) -> None:
    """Empty ``path`` (created if missing) without following any link planted inside."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def read_result_file(path: Path, max_bytes: int) -> bytes | None:
    """The bytes of the regular file at ``path``, or None when there is no file.

    Raises ``TestRunError`` when something else is there (a link, a FIFO, a directory) or
    the file is larger than ``max_bytes``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TestRunError(f"{path.name} is a symlink, not a result file") from exc
        raise TestRunError(f"cannot open {path.name}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise TestRunError(f"{path.name} is not a regular file")
        if st.st_size > max_bytes:
            raise TestRunError(f"{path.name} is larger than {max_bytes} bytes")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TestRunError(f"{path.name} is larger than {max_bytes} bytes")
    return data


def output_tail(res: ExecResult, chars: int = TAIL_CHARS) -> str:
    """The last ``chars`` characters of a command's stdout and stderr, for people to read."""
    text = res.stdout + ("\n" if res.stdout and res.stderr else "") + res.stderr
    return text[-chars:]
