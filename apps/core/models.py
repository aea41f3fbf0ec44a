from django.db import models
from django.utils import timezone


class OutboxTask(models.Model):
    """A Celery task not yet handed to the broker (apps/core/outbox.py). Written in the
    transaction that makes the task due, deleted once the broker took it; a row that stays
    is one the broker could not take, and the sweeper (job `publish_outbox`) sends it later.
    `key` makes a task with the same arguments wait here once, however often it is asked for."""

    key = models.CharField(max_length=64, unique=True)  # sha256 of (task, args, kwargs)
    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)  # failed publishes so far
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return f"{self.task}{tuple(self.args)}"
