"""The beat schedule of revenue's verification against the ledger (apps/revenue/jobs.py):
daily."""

from django.db import migrations

from apps.jobs.beat_schedules import schedule_jobs


class Migration(migrations.Migration):
    dependencies = [
        ("revenue", "0006_dates_on_the_demo_clock"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_jobs(
            [("Verify revenue", "periods.verify_revenue", 24 * 60)],
            description="CreditDesk: revenue checked against the ledger; a difference fails "
            "the run (docs/revenue.md, docs/metrics.md).",
        )
    ]
