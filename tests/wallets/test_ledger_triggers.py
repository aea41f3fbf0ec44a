"""The ledger is append-only in the database itself: TRUNCATE is refused too (PostgreSQL),
and `check_db_role` tells whether the app runs as a role that could not change the ledger
even without the triggers."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from apps.wallets.models import LedgerEntry
from tests.factories import AccountFactory
from tests.ledger import give

pytestmark = pytest.mark.django_db

TABLE = LedgerEntry._meta.db_table


def refuse_flush_override(cursor):
    """The test settings let the test runner's flush empty the ledger; a real session does not
    have that setting: drop it for the rest of this test's transaction."""
    cursor.execute("SET LOCAL creditdesk.ledger_truncate = ''")


@pytest.mark.postgres
def test_truncating_the_ledger_is_refused():
    give(AccountFactory(), 1)
    with connection.cursor() as cursor:
        refuse_flush_override(cursor)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE waits for no FK check
        refused = pytest.raises(IntegrityError, match="append-only: TRUNCATE rejected")
        with refused, transaction.atomic():
            cursor.execute(f"TRUNCATE {TABLE} CASCADE")
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        assert cursor.fetchone()[0] == 1


# UPDATE and DELETE: tests/wallets/test_grants.py (the same rule, on every database).


# --- the database role ------------------------------------------------------------------------


def app_role(cursor, *, revoke=("UPDATE", "DELETE", "TRUNCATE")):
    """A login role that does not own the tables, granted what the app needs, with `revoke`
    taken back on the ledger. Created in this test's transaction: rolled back after it."""
    role = f"{connection.settings_dict['NAME']}_app"[:63]
    cursor.execute(f'CREATE ROLE "{role}" LOGIN')
    cursor.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    cursor.execute(
        f'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO "{role}"'
    )
    cursor.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    if revoke:
        cursor.execute(f'REVOKE {", ".join(revoke)} ON {TABLE} FROM "{role}"')
    cursor.execute(f'SET LOCAL ROLE "{role}"')
    return role


def check_db_role():
    out = StringIO()
    call_command("check_db_role", stdout=out)
    return out.getvalue()


@pytest.mark.postgres
def test_check_db_role_passes_for_a_non_owner_role_without_update_delete_truncate():
    give(AccountFactory(), 1)
    with connection.cursor() as cursor:
        refuse_flush_override(cursor)
        role = app_role(cursor)
        assert f"{role}: ok" in check_db_role()
        # Even a session that turns every trigger off on purpose gets nowhere.
        cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass", [TABLE])
        triggers = ",".join(name for (name,) in cursor.fetchall())
        cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", ["{" + triggers + "}"])
        cursor.execute("SET LOCAL creditdesk.ledger_truncate = 'allow'")
        for statement in (f"UPDATE {TABLE} SET reason = 'x'", f"TRUNCATE {TABLE}"):
            with pytest.raises(Exception, match="permission denied"), transaction.atomic():
                cursor.execute(statement)  # refused by the grants, before any trigger


@pytest.mark.postgres
def test_check_db_role_fails_for_the_owner_of_the_tables():
    with pytest.raises(CommandError) as failed:
        check_db_role()
    message = str(failed.value)
    assert "owns" in message and "superuser" in message
    assert "may UPDATE, DELETE, TRUNCATE" in message


@pytest.mark.postgres
def test_check_db_role_fails_for_a_role_that_may_still_truncate_the_ledger():
    with connection.cursor() as cursor:
        app_role(cursor, revoke=("UPDATE", "DELETE"))
        with pytest.raises(CommandError, match="may TRUNCATE"):
            check_db_role()
