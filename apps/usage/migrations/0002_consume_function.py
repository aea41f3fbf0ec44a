"""Installed `creditdesk_consume`, the first single-consume function (PostgreSQL). Its text is
no longer kept: consume functions live in apps/usage/sql, rendered from the Python constants
and installed by InstallSQLFunction migrations (0007 on). Databases migrated before keep the
function for app processes of the previous release; the next release drops it
(docs/ledger.md, "Where each rule lives"). A database migrated from scratch never had it."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial"), ("wallets", "0002_ledger_append_only")]

    operations = []
