"""The scheduled jobs as Prometheus sees them (docs/metrics.md), read from their runs
(apps/jobs) at scrape time: a job runs in a Celery worker, whose counters no web process
sees, but its JobRun rows say how it went. Registered with the scrape (apps/core/metrics.py)
from this app's ready(); read at scrape time, when every app has registered its jobs.

A few small queries a scrape: one or two per job on the runs' (job, started_at) index, one pass
over the runs for those running or failed within the hour."""

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from apps.core.metrics import gauge

from .models import JobRun
from .registry import JOBS
from .selectors import beat_intervals, finished_runs, stuck_runs

RECENT = timedelta(hours=1)
RUNNING, SUCCEEDED, FAILED = JobRun.Status.RUNNING, JobRun.Status.SUCCEEDED, JobRun.Status.FAILED


def job_gauges():
    now = timezone.now()  # the runs' times are real time, not the demo clock
    intervals = beat_intervals()
    since_success = gauge(
        "creditdesk_job_seconds_since_success",
        "Seconds since the job's last successful run finished (no sample: it never succeeded).",
        ["job"],
    )
    last_run = gauge(
        "creditdesk_job_last_run_status",
        "1 for the status of the job's latest finished run, 0 for the other.",
        ["job", "status"],
    )
    interval = gauge(
        "creditdesk_job_interval_seconds",
        "How often beat runs the job (no sample: beat does not run it).",
        ["job"],
    )
    failed = gauge(
        "creditdesk_job_failed_runs_last_hour",
        "Runs of the job that failed within the last hour.",
        ["job"],
    )
    problems = gauge(
        "creditdesk_job_last_run_problems",
        "Differences the job's latest finished run found: the verifications (verify_ledger, "
        "verify_revenue) count each broken invariant; other jobs find none.",
        ["job"],
    )
    running = gauge("creditdesk_job_runs_in_progress", "Runs of the job still running.", ["job"])
    stuck = gauge(
        "creditdesk_job_runs_stuck",
        "Runs still running after the job's interval (or, for a job beat does not "
        "run, its time limit): stuck, or killed without a word.",
        ["job"],
    )
    recent = {row["job"]: row for row in _recent_runs(now, intervals)}
    for job in JOBS:
        row = recent.get(job, {})
        failed.add_metric([job], row.get("failed", 0))
        running.add_metric([job], row.get("running", 0))
        stuck.add_metric([job], row.get("stuck", 0))
        if job in intervals:
            interval.add_metric([job], intervals[job].total_seconds())
        latest_status, latest_counts, success_at = _latest(job)
        if latest_status is not None:
            for status in (SUCCEEDED, FAILED):
                last_run.add_metric([job, status], 1 if status == latest_status else 0)
            problems.add_metric([job], latest_counts.get("problems", 0))
        if success_at is not None:
            since_success.add_metric([job], (now - success_at).total_seconds())
    return [since_success, last_run, problems, interval, failed, running, stuck]


def _recent_runs(now, intervals):
    failed = Q(status=FAILED, finished_at__gte=now - RECENT)
    return (
        JobRun.objects.filter(Q(status=RUNNING) | failed)
        .values("job")
        .annotate(
            failed=Count("pk", filter=failed),
            running=Count("pk", filter=Q(status=RUNNING)),
            stuck=Count("pk", filter=stuck_runs(now=now, intervals=intervals)),
        )
        .order_by()
    )


def _latest(job):
    """(the status and counts of the job's latest finished run, when its latest success
    finished), as the admin's job alerts order runs (apps/jobs/selectors.py); Nones for a
    job without them."""
    finished = finished_runs(job=job)
    latest = finished.values_list("status", "counts", "finished_at").first()
    if latest is None:
        return None, None, None
    status, counts, finished_at = latest
    if status != SUCCEEDED:
        succeeded = finished.filter(status=SUCCEEDED)
        finished_at = succeeded.values_list("finished_at", flat=True).first()
    return status, counts, finished_at
