"""The ledger is append-only in the database itself, whatever code or person writes to it."""

from django.db import migrations

PG_FORWARD = """
CREATE FUNCTION wallets_ledger_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'ledger entries are append-only: ' || TG_OP || ' rejected',
        ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER wallets_ledger_entry_append_only
    BEFORE UPDATE OR DELETE ON wallets_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION wallets_ledger_entry_append_only();
"""
PG_BACKWARD = """
DROP TRIGGER wallets_ledger_entry_append_only ON wallets_ledgerentry;
DROP FUNCTION wallets_ledger_entry_append_only();
"""
SQLITE_FORWARD = [
    """CREATE TRIGGER wallets_ledger_entry_no_update BEFORE UPDATE ON wallets_ledgerentry
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: UPDATE rejected'); END""",
    """CREATE TRIGGER wallets_ledger_entry_no_delete BEFORE DELETE ON wallets_ledgerentry
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: DELETE rejected'); END""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER wallets_ledger_entry_no_update",
    "DROP TRIGGER wallets_ledger_entry_no_delete",
]


def forward(apps, schema_editor):
    statements = PG_FORWARD if schema_editor.connection.vendor == "postgresql" else SQLITE_FORWARD
    _run(schema_editor, statements)


def backward(apps, schema_editor):
    statements = PG_BACKWARD if schema_editor.connection.vendor == "postgresql" else SQLITE_BACKWARD
    _run(schema_editor, statements)


def _run(schema_editor, statements):
    if isinstance(statements, str):
        statements = [statements]
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]
