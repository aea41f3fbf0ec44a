"""The ledger's BRIN index on txid summarizes each range of pages once it fills.

A BRIN range left unsummarized matches every query: PostgreSQL summarizes ranges only when
the index is built, on VACUUM, or, with `autosummarize`, as soon as inserts move on to the
next range (autovacuum runs it). Without it every posting run read the whole ledger added
since the last vacuum: 2.0-2.6 s for an empty run over 10 M entries that no vacuum had
summarized (bench/RESULTS.md), 0.1 ms once summarized.

Not atomic: the ranges already there are summarized first (ShareUpdateExclusiveLock on the
table, which inserts do not wait for), then the option is set (a brief exclusive lock on the
index, which inserts do wait for), each in its own transaction.
"""

from django.db import migrations

import apps.core.horizon


def summarize_and_autosummarize(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SELECT brin_summarize_new_values('ledger_txid'::regclass)")
        schema_editor.execute("ALTER INDEX ledger_txid SET (autosummarize = on)")


def reset_autosummarize(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER INDEX ledger_txid RESET (autosummarize)")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("wallets", "0008_grant_cost_basis_and_ledger_txid"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(summarize_and_autosummarize, reset_autosummarize),
            ],
            state_operations=[
                migrations.RemoveIndex(model_name="ledgerentry", name="ledger_txid"),
                migrations.AddIndex(
                    model_name="ledgerentry",
                    index=apps.core.horizon.BrinOnPostgres(
                        autosummarize=True, fields=["txid"], name="ledger_txid"
                    ),
                ),
            ],
        ),
    ]
