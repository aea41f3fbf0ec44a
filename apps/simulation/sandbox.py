"""A draft catalog that only the simulator sees: the catalog's tables shadowed, for one
database connection and one transaction, by temporary copies holding the draft.

Both PostgreSQL and SQLite look a table name up in the connection's temporary tables first,
so inside `draft_catalog` every reader of the catalog (the terms function of
apps/usage/sql/terms.sql, the ORM) reads the draft through the same SQL and the same code
as live traffic reads the live catalog: the rules are not written a second time. The draft
is written by the catalog's own import (`import_catalog`), so a draft file is validated and
versioned exactly as publishing it would be. The transaction always rolls back: the copies,
and anything written to them, vanish, and no other connection ever saw them.
"""

import re
from contextlib import contextmanager

from django.apps import apps
from django.db import connection, transaction

from apps.accounts.models import Account, Subscription
from apps.catalog.contracts import put_contract
from apps.catalog.models import Plan
from apps.catalog.services import import_catalog

# The apps whose tables a draft shadows: the catalog (its history included, which the
# import writes) and the subscriptions, which the simulator points at the draft's versions
# (with `update()`, which writes no history).
SHADOWED_APPS = ("catalog",)
# The outbox too: a draft contract tells billing, which queues a task there (rolled back, but
# a row in the live table would hold its unique key, and SQLite's write lock, for a chunk).
SHADOWED_MODELS = ("accounts.Subscription", "core.OutboxTask")


# A foreign key in SQLite's CREATE TABLE: a temporary table may not point at a table of
# another schema (the accounts its contracts name), and the live rows it copies are valid.
SQLITE_REFERENCE = re.compile(
    r'\s+REFERENCES\s+"\w+"\s*\("\w+"\)(\s+DEFERRABLE INITIALLY DEFERRED)?'
)


def shadowed_tables():
    """`(table, primary key column)` for each table a draft copies, sorted: every concrete
    table of SHADOWED_APPS (history and many-to-many tables included) and of SHADOWED_MODELS."""
    models = [
        model
        for label in SHADOWED_APPS
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
    ]
    models += [apps.get_model(label) for label in SHADOWED_MODELS]
    return sorted(
        {
            (m._meta.db_table, m._meta.pk.column)
            for m in models
            if m._meta.managed and not m._meta.proxy
        }
    )


@contextmanager
def draft_catalog(*, raw, contracts=None, reason="simulation draft"):
    """Inside: this connection reads the catalog file `raw` (the `import_catalog` format,
    parsed) as the catalog; with `raw` None, the live catalog as it is (the simulator's own
    check replays it). `contracts`: `{account id: contract body}` (docs/contracts.md),
    each put on its account over the draft. Yields the import's result (what the draft changes;
    None without a draft catalog). Nothing is written anywhere else, and everything is
    rolled back on leaving."""
    # Its own transaction (durable: never a part of a caller's, whose writes it would undo).
    with transaction.atomic(durable=True):
        connection.in_draft_catalog = True
        try:
            live = _live_schema()
            for table, pk in shadowed_tables():
                _shadow(table, pk, live)
            result = None
            if raw is not None:
                result = import_catalog(raw=raw, in_caller_transaction=True, reason=reason)
                # What the pricing team asks is what the draft would have done to its
                # customers: every subscriber of a plan it changes on the draft's version,
                # not grandfathered. A plan it leaves alone keeps its subscribers where they
                # are, as in reality.
                changed = {c.code for c in result.changes if c.section == "plans"}
                for plan in Plan.objects.filter(current=True, code__in=changed):
                    Subscription.objects.filter(plan__code=plan.code).exclude(plan=plan).update(
                        plan=plan
                    )
            accounts = Account.objects.in_bulk(list(contracts or {}))
            for account_id, body in (contracts or {}).items():
                put_contract(account=accounts[account_id], raw=body, reason=reason,
                             in_caller_transaction=True)  # fmt: skip
            yield result
        finally:
            connection.in_draft_catalog = False
            transaction.set_rollback(True)


def subscriptions_as_of(*, account_ids, live):
    """Inside `draft_catalog`: the accounts' subscriptions as they stood at a past moment,
    so that the terms function reads the terms of then. `live`: `{subscription id: status}`
    of those live then (at most one per account); every other subscription of the accounts
    ended. Only the sandbox's copy is written."""
    # Marked on this thread's connection itself: the only one whose subscriptions are copies.
    if not getattr(connection, "in_draft_catalog", False):
        raise RuntimeError("subscriptions_as_of outside draft_catalog would write live rows")
    # Ended first: one live subscription per account holds at every step (a unique index).
    Subscription.objects.filter(account_id__in=account_ids).exclude(
        status=Subscription.Status.CANCELED
    ).update(status=Subscription.Status.CANCELED)
    by_status = {}
    for pk, status in live.items():
        by_status.setdefault(status, []).append(pk)
    for status, ids in by_status.items():
        Subscription.objects.filter(pk__in=ids).update(status=status)


def _live_schema():
    """Where the live tables are: PostgreSQL's current schema, SQLite's main database."""
    if connection.vendor != "postgresql":
        return "main"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return cursor.fetchone()[0]


def _shadow(table, pk, schema):
    # Table and column names come from the models (shadowed_tables), never from input.
    quoted = connection.ops.quote_name(table)
    live = f"{connection.ops.quote_name(schema)}.{quoted}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE TEMPORARY TABLE {quoted} (LIKE {live} INCLUDING ALL) ON COMMIT DROP"
            )
            cursor.execute(f"INSERT INTO pg_temp.{quoted} SELECT * FROM {live}")  # noqa: S608
            # The copy has an identity sequence of its own, starting at 1: new draft rows
            # must not take an id a copied row has.
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('pg_temp.{quoted}', %s), "  # noqa: S608
                f"COALESCE((SELECT max({connection.ops.quote_name(pk)}) FROM pg_temp.{quoted}), "
                "0) + 1, false)",
                [pk],
            )
        else:
            cursor.execute(
                "SELECT sql FROM main.sqlite_master WHERE name = %s AND type = 'table'",
                [table],
            )
            (create,) = cursor.fetchone()
            create = SQLITE_REFERENCE.sub("", create)
            cursor.execute(create.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
            cursor.execute(f"INSERT INTO temp.{quoted} SELECT * FROM {live}")  # noqa: S608
            cursor.execute(
                "SELECT sql FROM main.sqlite_master WHERE tbl_name = %s AND type = 'index' "
                "AND sql IS NOT NULL",
                [table],
            )
            for (index,) in cursor.fetchall():
                # Unique constraints are indexes of their own on SQLite; the import relies on
                # them as on the live tables. Index names are per schema: prefix them.
                cursor.execute(index.replace('INDEX "', 'INDEX temp."', 1))
