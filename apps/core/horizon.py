"""Reading an append-only table incrementally without missing a row that commits late.

Row ids are taken when a row is inserted, not when it commits, so "every id above the last
one read" skips a row whose transaction was still open at the last read. On PostgreSQL each
row records the id of the transaction that wrote it (`CurrentTransactionId`, a column
default); every transaction older than the oldest one still running has ended, so the rows
whose transaction id is below that horizon can no longer change: a reader takes them, up to
the horizon, and next time starts from it. SQLite runs one writer at a time, so ids already
arrive in commit order and the id is the horizon.
"""

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


def horizon():
    """The transaction id below which every writer has ended (PostgreSQL); None on SQLite,
    where the reader goes by row id."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")
        return cursor.fetchone()[0]
