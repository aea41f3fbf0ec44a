"""Fewer indexes on the two append-only tables every consume writes to (each index is one more
write per row); the foreign keys themselves stay. SQLite rebuilds the altered table, which
drops its triggers: the append-only triggers of 0002 are created again after it."""

from importlib import import_module

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('usage', '0004_fewer_indexes_on_hot_tables'),
        ('wallets', '0002_ledger_append_only'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='ledgerentry',
            name='account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.account'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='acting_user',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='reservation',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='ledger_entries', to='wallets.reservation'),
        ),
        migrations.AlterField(
            model_name='ledgerentry',
            name='wallet',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='ledger_entries', to='wallets.wallet'),
        ),
        migrations.AddIndex(
            model_name='ledgerentry',
            index=models.Index(condition=models.Q(('reservation__isnull', False)), fields=['reservation'], name='ledger_reservation'),
        ),
        migrations.AddIndex(
            model_name='ledgerentry',
            index=models.Index(condition=models.Q(('acting_user__isnull', False)), fields=['acting_user'], name='ledger_staff'),
        ),
        migrations.RunPython(
            lambda apps, schema_editor: _restore_sqlite_triggers(schema_editor),
            migrations.RunPython.noop,
        ),
    ]


def _restore_sqlite_triggers(schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    append_only = import_module("apps.wallets.migrations.0002_ledger_append_only")
    for name in ("wallets_ledger_entry_no_update", "wallets_ledger_entry_no_delete"):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
    for statement in append_only.SQLITE_FORWARD:
        schema_editor.execute(statement)
