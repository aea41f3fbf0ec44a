"""The beat schedule of the ledger's verification (apps/wallets/jobs.py): daily."""

from django.db import migrations

from apps.jobs.beat_schedules import schedule_jobs


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0010_dates_on_the_demo_clock"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_jobs(
            [("Verify the ledger", "periods.verify_ledger", 24 * 60)],
            description="CreditDesk: the ledger's invariants checked; a violation fails the "
            "run (docs/ledger.md, docs/metrics.md).",
        )
    ]
