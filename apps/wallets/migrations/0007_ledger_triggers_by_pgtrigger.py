"""The ledger's PostgreSQL triggers, now declared on the model with django-pgtrigger: the
hand-written UPDATE/DELETE trigger of 0002 is replaced by the same rule, and a statement-level
BEFORE TRUNCATE trigger is added. SQLite keeps its own triggers (0002, 0003)."""

from importlib import import_module

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

OLD_PG_TRIGGER = """
DROP TRIGGER IF EXISTS wallets_ledger_entry_append_only ON wallets_ledgerentry;
DROP FUNCTION IF EXISTS wallets_ledger_entry_append_only();
"""


def drop_hand_written_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(OLD_PG_TRIGGER)


def restore_hand_written_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        append_only = import_module("apps.wallets.migrations.0002_ledger_append_only")
        schema_editor.execute(append_only.PG_FORWARD)


class Migration(migrations.Migration):

    dependencies = [
        ('wallets', '0006_grant_api_key'),
    ]

    operations = [
        migrations.RunPython(drop_hand_written_trigger, restore_hand_written_trigger),
        pgtrigger.migrations.AddTrigger(
            model_name='ledgerentry',
            trigger=pgtrigger.compiler.Trigger(name='append_only', sql=pgtrigger.compiler.UpsertTriggerSql(func="\n    RAISE EXCEPTION USING\n        MESSAGE = 'ledger entries are append-only: ' || TG_OP || ' rejected',\n        ERRCODE = 'restrict_violation';\n", hash='cd856e6b95bee31718f8f232af39273083be1faf', operation='UPDATE OR DELETE', pgid='pgtrigger_append_only_00500', table='wallets_ledgerentry', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='ledgerentry',
            trigger=pgtrigger.compiler.Trigger(name='no_truncate', sql=pgtrigger.compiler.UpsertTriggerSql(func="\n                IF current_setting('creditdesk.ledger_truncate', true) = 'allow' THEN\n                    RETURN NULL;\n                END IF;\n                \n    RAISE EXCEPTION USING\n        MESSAGE = 'ledger entries are append-only: ' || TG_OP || ' rejected',\n        ERRCODE = 'restrict_violation';\n\n                ", hash='7084d024e17800575f010b4e0c82bc611d778ea4', level='STATEMENT', operation='TRUNCATE', pgid='pgtrigger_no_truncate_ab5d9', table='wallets_ledgerentry', when='BEFORE')),
        ),
    ]
