"""Made `creditdesk_consume` and `creditdesk_consume_batch` raise SQLSTATE CD001 when a wallet
holds a grant past its expiry, so that the Python ledger engine closes it (PostgreSQL). No
migration patches function text any more: the rule is in apps/usage/sql/consume.sql and
consume_batch.sql, installed by 0007 (docs/ledger.md, "Where each rule lives")."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0004_fewer_indexes_on_hot_tables"),
        ("wallets", "0004_grant_rollover_terms"),
    ]

    operations = []
