"""Installed `creditdesk_consume_batch` and replaced `creditdesk_consume` (PostgreSQL). Their
text is no longer kept: consume functions live in apps/usage/sql, rendered from the Python
constants and installed by InstallSQLFunction migrations (0007 on). Databases migrated before
keep both functions for app processes of the previous release; the next release drops them
(docs/ledger.md, "Where each rule lives")."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("usage", "0002_consume_function")]

    operations = []
