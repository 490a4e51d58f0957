"""Rows (dicts) to an Arrow table of a given schema, losslessly or not at all.

Column by column: the values are first given to Arrow as they are and cast safely to the
column's type (the fast path: plain ints, floats, strings, bools, datetimes). A column
that Arrow refuses goes through ``coerce_value`` one value at a time, which converts what
has one obvious meaning (enums and numbers to strings, dicts/lists/records to JSON text,
ISO strings and epoch seconds to UTC timestamps, integral floats to ints) and raises
``RowError`` naming the row and column for anything else (``1.5`` into an int column,
``"abc"`` into a float column). Keys the schema lacks are the caller's business
(``new_columns`` finds them, ``infer_type`` types them for schema evolution).

Timestamps: aware datetimes are converted to UTC; naive ones are taken to be UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from codemill.store.rows import to_json


class RowError(ValueError):
    """A value that cannot be stored in its column; ``index`` is the row's position."""

    def __init__(self, index: int, column: str, value: Any, type_: pa.DataType,
                 why: str = "") -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        super().__init__(f"row {index}: column {column!r}: cannot store {shown} "
                         f"({type(value).__name__}) as {type_}{': ' + why if why else ''}")
        self.index, self.column = index, column


def used_keys(rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Every key any of ``rows`` has (one pass in C)."""
    return set().union(*rows) if rows else set()


def new_columns(rows: Sequence[Mapping[str, Any]], schema: pa.Schema,
                keys: set[str] | None = None) -> list[str]:
    """Keys used by ``rows`` (with a non-null value somewhere) that ``schema`` lacks."""
    candidates = (used_keys(rows) if keys is None else keys) - set(schema.names)
    return sorted(k for k in candidates if any(row.get(k) is not None for row in rows))


def infer_type(values: Sequence[Any]) -> pa.DataType:
    """The column type for a new column holding ``values`` (JSON text for nested ones)."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64()
    if all(isinstance(v, datetime) for v in present):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def to_arrow(rows: Sequence[Mapping[str, Any]], schema: pa.Schema,
             defaults: Mapping[str, Any] | None = None,
             keys: set[str] | None = None) -> pa.Table:
    """An Arrow table of ``schema`` from ``rows``; missing keys are null, or the value in
    ``defaults`` when one is given for that column. Raises ``RowError``.

    ``keys`` (from ``used_keys``) saves a pass when the caller has it already."""
    defaults = defaults or {}
    keys = used_keys(rows) if keys is None else keys
    n = len(rows)
    arrays = []
    for field in schema:
        name = field.name
        if name not in keys:  # nobody set it: one constant array, no per-row work
            fill = defaults.get(name)
            arrays.append(pa.nulls(n, field.type) if fill is None
                          else pa.repeat(_column([fill], field)[0], n))
            continue
        values = [row.get(name) for row in rows]
        if name in defaults:
            fill = defaults[name]
            values = [fill if v is None else v for v in values]
        arrays.append(_column(values, field))
    return pa.Table.from_arrays(arrays, schema=schema)


def _column(values: list[Any], field: pa.Field) -> pa.Array:
    try:
        arr = pa.array(values, from_pandas=False)
        if pa.types.is_boolean(field.type) and not (
                pa.types.is_boolean(arr.type) or pa.types.is_null(arr.type)):
            raise pa.ArrowInvalid("only booleans go into a boolean column unchecked")
        if arr.type != field.type:
            arr = arr.cast(field.type, safe=True)
        return arr
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        pass
    fixed = [coerce_value(v, field.type, i, field.name) for i, v in enumerate(values)]
    return pa.array(fixed, type=field.type)


def coerce_value(value: Any, type_: pa.DataType, index: int = 0, column: str = "?") -> Any:
    """``value`` as a Python value Arrow stores in ``type_`` without loss; see module doc."""
    if value is None:
        return None
    try:
        if pa.types.is_string(type_) or pa.types.is_large_string(type_):
            return _to_str(value)
        if pa.types.is_boolean(type_):
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError("not a boolean")
        if pa.types.is_integer(type_):
            return _to_int(value)
        if pa.types.is_floating(type_):
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            return float(value)
        if pa.types.is_timestamp(type_):
            return _to_utc(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RowError(index, column, value, type_, str(exc)) from None
    return value


def _to_str(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple, BaseModel)):
        return to_json(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return str(value)
    raise TypeError("not text")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ValueError("not a whole number")
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError("not an integer")


def _to_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime):
        raise TypeError("not a timestamp")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
