"""Made the consume functions answer `feature_not_enabled` before `feature_is_boolean`, as the
portable path does (PostgreSQL). No migration patches function text any more: the rule is in
apps/usage/sql/consume.sql and consume_batch.sql, installed by 0007 (docs/ledger.md, "Where each rule
lives")."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("usage", "0005_expired_grants_close_in_python")]

    operations = []
