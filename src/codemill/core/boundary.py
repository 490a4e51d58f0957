"""Seams into user code: a failure there becomes data on the row, not a crash.

``with boundary("sandbox", "run tests") as b:`` catches any exception raised inside,
records ``b.error_type`` (``"<where>:<ExceptionName>"``) and ``b.message``, and lets the
caller write the row and go on with its siblings. ``KeyboardInterrupt`` and ``SystemExit``
are never swallowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class BoundaryOutcome:
    where: str
    what: str
    error_type: str | None = None
    message: str | None = None
    exception: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.error_type is not None


@contextmanager
def boundary(where: str, what: str) -> Iterator[BoundaryOutcome]:
    """Contain an exception raised at the seam ``where`` while doing ``what``."""
    outcome = BoundaryOutcome(where=where, what=what)
    try:
        yield outcome
    except Exception as exc:  # the point of a boundary: any failure becomes data
        outcome.error_type = f"{where}:{type(exc).__name__}"
        outcome.message = f"{what}: {exc}"[:2000]
        outcome.exception = exc
