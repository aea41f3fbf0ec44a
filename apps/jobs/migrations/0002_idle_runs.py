"""A row may count beat's runs of a job that found nothing to do (apps/jobs/services.py):
how many, and when the last of them started. Every row so far stands for one run."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='jobrun',
            name='idle_runs',
            field=models.PositiveIntegerField(default=0, help_text='How many runs by beat that found nothing to do this row stands for (0: a run that did something, failed, is running or was started by hand).'),
        ),
        migrations.AddField(
            model_name='jobrun',
            name='last_started_at',
            field=models.DateTimeField(blank=True, help_text='When the last of the idle runs counted here started.', null=True),
        ),
    ]
