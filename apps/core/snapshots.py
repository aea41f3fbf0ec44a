"""Checks made of several queries that must agree with each other."""

from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def one_snapshot():
    """A durable, read-only transaction whose statements all see the database as it was at
    the first: a check of several queries (verify_ledger, verify_revenue) then compares
    figures of one moment, never two sides of a consume or a posting run that committed
    between its queries (read committed gives each statement a snapshot of its own). On
    SQLite a transaction is one snapshot already. Inside an enclosing transaction (a test's)
    the isolation is that transaction's, which has already begun."""
    outermost = not connection.in_atomic_block
    with transaction.atomic(durable=True):
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield
