"""The trial.ending notice's beat schedule (apps/periods/trials.py): hourly is close enough
for a notice three days ahead."""

from django.db import migrations

from apps.jobs.beat_schedules import schedule_jobs


class Migration(migrations.Migration):
    dependencies = [
        ("periods", "0005_grant_cost_bases"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_jobs(
            [("Notify trials ending", "periods.notify_trials_ending", 60)],
            description="CreditDesk trial.ending notices (docs/periods.md, Trials).",
        )
    ]
