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


EXPORT_PERMISSION = "core.export_data"


class DataExport(models.Model):
    """No table: it holds the permission to export lists in bulk, `core.export_data`
    (docs/exports.md, "Who may export"). Viewing a list is reading records one screen at a
    time; exporting takes every matching row out of CreditDesk at once, so it is a right of
    its own, given to Finance."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("export_data", "Can export lists in bulk (CSV, JSON Lines)")]

    def __str__(self):
        return "data export"
