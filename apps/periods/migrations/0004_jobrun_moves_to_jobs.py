"""JobRun moves to the jobs app (apps/jobs/migrations/0001_initial.py takes it over): the
table is renamed with its rows; the model leaves this app's state."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("periods", "0003_outbox_schedule"),
        ("core", "0003_job_and_webhook_permissions"),  # grants periods.view_jobrun: before
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.AlterModelTable("JobRun", "jobs_jobrun")],
            state_operations=[migrations.DeleteModel("JobRun")],
        )
    ]
