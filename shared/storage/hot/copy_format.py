"""PostgreSQL's COPY text format: rows of values, and events rendered straight to table lines.

:func:`copy_text` renders any rows: tab-separated, ``\\N`` for NULL, backslash, tab, newline
and carriage return escaped, each value by its Python type.

The sink renders tens of thousands of events a second, and looking each value's renderer up
costs more than the COPY takes to read it. So :class:`LineRenderer` compiles, once per table, a
function that reads an event's values where each column takes them from (an attribute, or a
prop with its default) and formats the whole line in one f-string, each value by its column's
SQL type. It escapes nothing; instead the finished line is checked: when it holds exactly one
tab between columns, no backslash but its NULLs' (``\\N``), and no newline or carriage
return, no value needed escaping and the line is what :func:`copy_text` would have written.
Any other line (a value that needs escaping, or a value whose Python type is not its column's
usual one) is rendered again by :func:`copy_text`'s rules, so both ways always agree (a
property test holds them to it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Boolean, DateTime, Integer, Numeric, Table
from sqlalchemy.dialects.postgresql import JSONB

from shared.contract.stored_event import StoredEvent

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _text(value: str) -> str:
    """A string in COPY's text format (most strings hold nothing to escape)."""
    return value if _NEEDS_ESCAPE.search(value) is None else value.translate(_ESCAPES)


def _json(value: Any) -> str:
    """A JSON column: orjson escapes every control character inside strings, so the only
    character COPY's text format needs escaped in its output is the backslash."""
    text = orjson.dumps(value).decode()
    return text.replace("\\", "\\\\") if "\\" in text else text


#: How each value type is written, looked up by exact type (a row has a dozen values, and a
#: chain of isinstance tests cost more than the rest of the rendering).
_RENDERERS: dict[type, Callable[[Any], str]] = {
    str: _text,
    type(None): lambda _: NULL,
    bool: lambda value: "t" if value else "f",
    int: int.__repr__,
    float: float.__repr__,
    datetime: datetime.isoformat,
    dict: _json,
    list: _json,
    Decimal: Decimal.__str__,
}


def copy_field(value: Any) -> str:
    """One value in COPY's text format, escaped."""
    render = _RENDERERS.get(type(value))
    if render is not None:
        return render(value)
    # A subclass (an IntEnum, a str subclass): the first renderer of a type it derives from.
    for kind, render in _RENDERERS.items():
        if isinstance(value, kind):
            return render(value)
    return str(value)


def copy_text(rows: Iterable[Sequence[Any]]) -> bytes:
    """Rows in PostgreSQL's COPY text format (tab-separated, ``\\N`` for NULL, escaped)."""
    return "".join("\t".join(map(copy_field, row)) + "\n" for row in rows).encode("utf-8")


class _Unusual(Exception):
    """A value whose Python type is not its column's usual one: render the line the slow way."""


def _unusual() -> str:
    raise _Unusual


#: A column's value formatted by its SQL type, when the value has the Python type that
#: :func:`copy_field` would format the same way (``{v}`` is the value; ``_unusual()`` raises).
_FORMATS: tuple[tuple[type, str], ...] = (
    (JSONB, "_dumps({v}).decode() if type({v}) is dict else _unusual()"),
    (Boolean, "(_TRUE if {v} else _FALSE) if type({v}) is bool else _unusual()"),
    (DateTime, "{v}.isoformat() if type({v}) is datetime else _unusual()"),
    (Numeric, "{v} if type({v}) in _NUMBERS else _unusual()"),  # Float is a Numeric
    (Integer, "{v} if type({v}) is int else _unusual()"),
)
_TEXT_FORMAT = "{v} if type({v}) is str else _unusual()"


def _format(column_type: Any) -> str:
    for kind, pattern in _FORMATS:
        if isinstance(column_type, kind):
            return pattern
    return _TEXT_FORMAT


class LineRenderer:
    """Renders events as COPY text lines of one table, fast (see the module docstring).

    ``attributes`` names the event attribute each column takes its value from; every other
    column is the prop of its name, or ``defaults[column]`` (else NULL) when the prop is
    missing or null. ``row`` gives the same values as a tuple, for the slow way.
    """

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        attributes: Mapping[str, str],
        defaults: Mapping[str, Any],
        row: Callable[[StoredEvent], Sequence[Any]],
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.row = row
        self._tabs = len(self.columns) - 1
        self._line = self._compile(attributes, defaults)

    def _compile(
        self, attributes: Mapping[str, str], defaults: Mapping[str, Any]
    ) -> Callable[[StoredEvent], tuple[str, int]]:
        namespace: dict[str, Any] = {
            "_dumps": orjson.dumps,
            "_unusual": _unusual,
            "_NULL": NULL,
            "_TRUE": "t",
            "_FALSE": "f",
            "_NUMBERS": (int, float, Decimal),
            "datetime": datetime,
        }
        body = ["def line(e):", "    p = e.props"]
        fields = []
        for i, name in enumerate(self.columns):
            if not name.isidentifier():  # the source is made of column names only
                raise ValueError(f"column {name!r} is not an identifier")
            value = f"v{i}"
            if name in attributes:
                body.append(f"    {value} = e.{attributes[name]}")
            else:
                body.append(f"    {value} = p.get({name!r})")
                if defaults.get(name) is not None:
                    namespace[f"d{i}"] = defaults[name]
                    body.append(f"    if {value} is None: {value} = d{i}")
            rendered = _format(self.table.columns[name].type).format(v=value)
            fields.append(f"{{_NULL if {value} is None else ({rendered})}}")
        nulls = " + ".join(f"(v{i} is None)" for i in range(len(self.columns)))
        body.append('    return f"' + "\\t".join(fields) + '", ' + nulls)
        exec("\n".join(body), namespace)  # noqa: S102 -- source built from column names above
        line: Callable[[StoredEvent], tuple[str, int]] = namespace["line"]
        return line

    def __call__(self, event: StoredEvent) -> str:
        """``event`` as one line of the table (no newline), escaped as COPY reads it."""
        try:
            line, nulls = self._line(event)
        except _Unusual:
            return self._escaped(event)
        # The only backslashes a line may hold are its NULLs' (``\N``).
        if (
            line.count("\t") != self._tabs
            or line.count("\\") != nulls
            or "\n" in line
            or "\r" in line
        ):
            return self._escaped(event)
        return line

    def _escaped(self, event: StoredEvent) -> str:
        return "\t".join(map(copy_field, self.row(event)))
