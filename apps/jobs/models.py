"""A record of every scheduled job run, so that ops and finance can see what renewed,
rolled over and expired, and what failed. Beat's runs that found nothing to do are counted
on one row rather than listed one by one (apps/jobs/services.py, `finish_run`)."""

from datetime import timedelta

from django.db import models

# Celery ends a run by beat after this (its task's hard time limit, tasks.py): a row of beat's
# still running past it belongs to a worker that was killed or lost.
RUN_TIME_LIMIT = timedelta(minutes=16)


class JobRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    job = models.CharField(max_length=64)
    trigger = models.CharField(
        max_length=32, help_text="beat, command or admin: who started the run."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    as_of = models.DateTimeField(help_text="The moment the run treated as now.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    idle_runs = models.PositiveIntegerField(
        default=0,
        help_text="How many runs by beat that found nothing to do this row stands for (0: a "
        "run that did something, failed, is running or was started by hand).",
    )
    last_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last of the idle runs counted here started."
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["job", "-started_at"], name="jobrun_job_newest")]

    def __str__(self):
        return f"{self.job} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"

    @property
    def is_idle(self):
        """A row counting beat's runs that found nothing to do."""
        return self.idle_runs > 0

    @property
    def duration(self):
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at
