"""Reading an append-only table incrementally without missing a row that commits late.

Row ids are taken when a row is inserted, not when it commits, so "every id above the last
one read" skips a row whose transaction was still open at the last read. On PostgreSQL each
row records the id of the transaction that wrote it (`CurrentTransactionId`, a column
default), and a reader keeps the snapshot it read at (`pg_current_snapshot()`: which
transactions had committed). The rows to read next are those whose transaction is visible in
the new snapshot and was not in the old one: a transaction still open at the last read is
picked up once it commits, however long it ran, and nothing is read twice. The reader's own
transaction counts as committed (what it reads commits with what it writes).

SQLite runs one writer at a time, so ids arrive in commit order and the last id read is
enough.
"""

from dataclasses import dataclass

from django.contrib.postgres.indexes import BrinIndex
from django.db import connection, models
from django.utils.deconstruct import deconstructible


@deconstructible(path="apps.core.horizon.CurrentTransactionId")
class CurrentTransactionId(models.Value):
    """Column default: the writing transaction's 64-bit id on PostgreSQL, NULL on SQLite.
    A Value, so that SQLite can add the column in place (it rebuilds a table for any other
    kind of default, and would lose the table's triggers)."""

    def __init__(self):
        super().__init__(None, output_field=models.BigIntegerField())

    def as_postgresql(self, compiler, connection):
        return "(pg_current_xact_id()::text)::bigint", []


class BrinOnPostgres(BrinIndex):
    """A BRIN index on PostgreSQL (a few bytes per range of rows, next to nothing to keep up
    on insert); a plain index elsewhere."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor != "postgresql":
            return models.Index.create_sql(self, model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)


@dataclass(frozen=True)
class Position:
    """Where a reader stands: a PostgreSQL snapshot as text (`xmin:xmax:xip,...`) and the
    reader's own transaction id if it had one (its rows up to `last_id` count as read), or
    the last row id on SQLite. Empty: nothing read yet."""

    snapshot: str = ""
    own: int | None = None
    last_id: int = 0


def current(model):
    """The position that reading `model` up to now reaches."""
    last = model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    if connection.vendor != "postgresql":
        return Position(last_id=last)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_current_snapshot()::text, (pg_current_xact_id_if_assigned()::text)::bigint"
        )
        snapshot, own = cursor.fetchone()
    return Position(snapshot=_running(snapshot, own), own=own, last_id=last)


def _running(snapshot, own):
    """`snapshot` with the reader's own transaction listed as running. PostgreSQL leaves a
    transaction out of its own snapshot's running list, so pg_visible_in_snapshot() calls it
    committed as soon as a later one has ended; its rows are read by id instead (`last_id`)."""
    if own is None:
        return snapshot
    xmin, xmax, xip = snapshot.split(":")
    running = {int(x) for x in xip.split(",") if x}
    if int(xmin) <= own < int(xmax):
        running.add(own)
    return f"{xmin}:{xmax}:{','.join(str(x) for x in sorted(running))}"


def _read_by(position, xid, table):
    """SQL (and params): the row had committed at `position`, or is the reader's own."""
    sql, params = f"pg_visible_in_snapshot({xid}, %s::pg_snapshot)", [position.snapshot]
    if position.own is not None:
        sql = f'({sql} OR ({xid} = %s::text::xid8 AND "{table}"."id" <= %s))'
        params += [str(position.own), position.last_id]
    return sql, params


def between(queryset, *, after, upto, column="txid"):
    """The rows of `queryset` that committed after position `after` and by `upto`."""
    if connection.vendor != "postgresql":
        return queryset.filter(pk__gt=after.last_id, pk__lte=upto.last_id)
    table = queryset.model._meta.db_table
    xid = f'("{table}"."{column}"::text)::xid8'
    sql, params = _read_by(upto, xid, table)
    where = [sql]
    if after.snapshot:
        lowest = int(after.snapshot.split(":")[0])  # no older transaction was still running
        queryset = queryset.filter(**{f"{column}__gte": lowest})  # the BRIN index's range
        sql, more = _read_by(after, xid, table)
        where.append(f"NOT {sql}")
        params += more
    return queryset.extra(where=where, params=params)  # noqa: S610 - fixed text, bound values
