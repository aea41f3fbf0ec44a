"""Celery tasks for the registered jobs: one per job, named `registry.task_name(job)`, a thin
caller of `run_job`, scheduled by beat from the database (staff edit the schedules in the
admin: Periodic tasks). Celery's autodiscovery imports this module once every app is ready,
that is once every app has registered its jobs."""

from celery import shared_task
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.utils.dateparse import parse_datetime

from .models import RUN_TIME_LIMIT
from .registry import JOBS, run_job, task_name

# A run works in chunks that each commit, so a time limit costs at most the chunk it cuts.
LIMITS = {
    "soft_time_limit": RUN_TIME_LIMIT.total_seconds() - 60,
    "time_limit": RUN_TIME_LIMIT.total_seconds(),
    "acks_late": True,
}


def _task_for(job):
    @shared_task(bind=True, name=task_name(job), **LIMITS)
    def run(self, now=None):
        return run_job(
            job=job,
            trigger="beat",
            now=parse_datetime(now) if now else None,
            task_id=self.request.id or "",
        ).counts

    return run


if not apps.ready:  # a job registered after this point would have no task
    raise ImproperlyConfigured("import apps.jobs.tasks once every app is ready")

TASKS = {job: _task_for(job) for job in JOBS}
