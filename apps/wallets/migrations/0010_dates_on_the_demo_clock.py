"""A grant's effective_at and a ledger entry's and a reservation's created_at take their
default from the demo clock (apps/core/clock.py). A Python-side default only, so state only:
on SQLite an AlterField would rebuild these tables and drop the ledger's append-only
triggers."""

import apps.core.clock
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('wallets', '0009_ledger_txid_autosummarize'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='creditgrant',
                    name='effective_at',
                    field=models.DateTimeField(default=apps.core.clock.now),
                ),
                migrations.AlterField(
                    model_name='ledgerentry',
                    name='created_at',
                    field=models.DateTimeField(default=apps.core.clock.now),
                ),
                migrations.AlterField(
                    model_name='reservation',
                    name='created_at',
                    field=models.DateTimeField(default=apps.core.clock.now),
                ),
            ],
        ),
    ]
