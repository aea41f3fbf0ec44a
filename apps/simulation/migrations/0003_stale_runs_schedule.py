"""The beat schedule of the job that ends simulation runs whose workers went silent
(apps/simulation/services.fail_stale_runs): every five minutes."""

from django.db import migrations

from apps.jobs.beat_schedules import schedule_jobs


class Migration(migrations.Migration):
    dependencies = [
        ("simulation", "0002_permissions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_jobs(
            [("Fail stale simulation runs", "periods.fail_stale_simulations", 5)],
            description="CreditDesk: a simulation run whose workers stopped reporting ends as "
            "failed (docs/simulator.md).",
        )
    ]
