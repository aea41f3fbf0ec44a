"""Streaming exports: any list as CSV or JSON Lines, at any size, in constant memory.

`export_chunks(queryset, columns=..., fmt=...)` yields the file as UTF-8 chunks, one per batch
of rows, for a `StreamingHttpResponse` (the admin's export links) or a file (`export_ledger`).

How the rows are read. By keyset pagination on the primary key: each batch is its own short
query, `WHERE pk > <last pk sent> ORDER BY pk LIMIT <batch>`, through `values_list` (tuples,
no model instances), so memory holds one batch whatever the number of rows. Not
`QuerySet.iterator()`: on PostgreSQL it streams through a server-side cursor, which needs the
whole export inside one transaction (or a WITH HOLD cursor that PostgreSQL materializes at
commit), cannot go through a transaction-pooling connection pooler, and keeps one snapshot
open for minutes, which holds back vacuum and the revenue posting horizon
(apps/core/horizon.py waits for the oldest running transaction). Keyset batches hold none of
that, and each batch is as fast as the first (an OFFSET would rescan every earlier row).

What that means for the content. The export runs in primary-key order (oldest first), up to
the highest primary key present when it started, so it always ends. It is not one snapshot:
a row inserted during the export with a lower id than the last one sent (a transaction that
commits late) is not in it. For a closed period, export a range that ended before the export
started (`export_ledger --to`), whose rows have all committed.

Values are exact, never formatted for people (that is apps/core/humanize.py):

- decimals as plain exact text (`format_decimal`: 1000.000000 -> "1000", -0.5 -> "-0.5");
  money with its two places ("29.00"); in JSON Lines both are strings, never floats;
- date-times in ISO 8601, UTC, with a `Z`: "2026-12-02T18:22:43.123456Z";
- ids as ids (JSON numbers); choices as their stored value ("consume"), not the label;
- a missing value is an empty CSV cell, `null` in JSON Lines.

CSV injection. A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and some with
a tab or carriage return) as a formula, so a text cell that starts with one of those, or
with an apostrophe, gets a leading apostrophe: `=HYPERLINK(...)` is written as
`'=HYPERLINK(...)`. Reading the text back exactly: drop one leading apostrophe from a text
cell that has one. Numbers, ids and date-times are never escaped (a negative amount stays
`-5`): they are written by this module, never taken from input. JSON Lines is for programs
and is written unescaped.
"""

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Literal

from django.db.models import Max

from .decimals import format_decimal, format_money

BATCH_SIZE = 2_000

TEXT = "text"
DECIMAL = "decimal"
MONEY = "money"
DATETIME = "datetime"
ID = "id"
NUMBER = "number"  # an integer count (attempts), a JSON number like an id

FORMATS = {
    # format: (file extension, content type)
    "csv": ("csv", "text/csv; charset=utf-8"),
    "jsonl": ("jsonl", "application/jsonl; charset=utf-8"),
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


@dataclass(frozen=True)
class Column:
    """One column of an export: its name (the CSV header, the JSON key), the field it reads
    (a `values_list` lookup such as "account__external_id"; the name by default) and its
    kind, which decides how the value is written."""

    name: str
    lookup: str = ""
    kind: Literal["text", "decimal", "money", "datetime", "id", "number"] = TEXT

    @property
    def field(self):
        return self.lookup or self.name


def _datetime(value):
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(value):
    return value if isinstance(value, str) else str(value)


_EXACT = {
    TEXT: _text,
    DECIMAL: format_decimal,
    MONEY: format_money,
    DATETIME: _datetime,
    ID: int,
    NUMBER: int,
}


def csv_safe(text):
    """A text cell a spreadsheet will not run as a formula (see the module docstring)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _converters(columns, fmt):
    """One function per column: the stored value -> what the format writes."""
    converters = []
    for column in columns:
        exact = _EXACT[column.kind]
        if fmt == "csv" and column.kind == TEXT:

            def convert(value, exact=exact):
                return "" if value is None else csv_safe(exact(value))

        elif fmt == "csv":

            def convert(value, exact=exact):
                return "" if value is None else exact(value)

        else:

            def convert(value, exact=exact):
                return None if value is None else exact(value)

        converters.append(convert)
    return converters


def batches(queryset, *, fields, batch_size=BATCH_SIZE):
    """The rows of `queryset` as tuples of `fields`, in batches, by keyset pagination on the
    primary key (see the module docstring)."""
    model = queryset.model
    last = model._default_manager.aggregate(last=Max("pk"))["last"]
    if last is None:
        return
    rows = queryset.order_by("pk").filter(pk__lte=last).values_list("pk", *fields)
    after = None
    while True:
        batch = list((rows if after is None else rows.filter(pk__gt=after))[:batch_size])
        if not batch:
            return
        yield [row[1:] for row in batch]
        if len(batch) < batch_size:
            return
        after = batch[-1][0]


class _Line:
    """A file object for csv.writer that hands back what was written."""

    def write(self, text):
        return text


def export_chunks(queryset, *, columns, fmt, batch_size=BATCH_SIZE):
    """The export of `queryset` in format `fmt` ("csv" or "jsonl"), as UTF-8 chunks: the CSV
    header first, then one chunk per batch of rows."""
    fields = [column.field for column in columns]
    return write_chunks(
        batches(queryset, fields=fields, batch_size=batch_size), columns=columns, fmt=fmt
    )


def write_chunks(row_batches, *, columns, fmt):
    """Batches of rows (tuples of the columns' values, as stored) written in format `fmt`, as
    UTF-8 chunks: the CSV header first, then one chunk per batch. For exports that are not
    one queryset's rows (the revenue schedule); `export_chunks` writes through it."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")
    return _write_chunks(row_batches, columns=columns, fmt=fmt)


def _write_chunks(row_batches, *, columns, fmt):
    converters = _converters(columns, fmt)
    names = [column.name for column in columns]
    if fmt == "csv":
        writer = csv.writer(_Line())
        yield writer.writerow(names).encode()
    for batch in row_batches:
        chunk = io.StringIO()
        for row in batch:
            values = [convert(value) for convert, value in zip(converters, row, strict=True)]
            if fmt == "csv":
                chunk.write(writer.writerow(values))
            else:
                chunk.write(json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False))
                chunk.write("\n")
        yield chunk.getvalue().encode()


def exact_values(row, *, columns):
    """One row's values as the exports write them, unescaped (JSON Lines' values; None for a
    missing value): for a plain-text table of the same rows."""
    return [
        convert(value) for convert, value in zip(_converters(columns, "jsonl"), row, strict=True)
    ]


def export_filename(name, fmt, *, day):
    """`ledger-entries-2026-12-02.csv`: the list's name and the day of the export."""
    return f"{name}-{day.isoformat()}.{FORMATS[fmt][0]}"


def content_type(fmt):
    return FORMATS[fmt][1]
