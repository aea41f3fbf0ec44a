"""The job runs as ops read them: which runs need attention (failed, or stuck: running longer
than their job's beat interval), which jobs need it (no success within LAG_INTERVALS of their
intervals, or a latest run that failed), and an idle row in words. Times are real time, as
the rows' own (started_at, finished_at), not the demo clock."""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.core.humanize import group_digits

from .models import RUN_TIME_LIMIT, JobRun
from .registry import JOBS, task_name

LAG_INTERVALS = 3  # a job that has not succeeded for this many of its intervals lags
# A job beat does not run is stuck after its task's hard time limit.
STUCK_WITHOUT_SCHEDULE = RUN_TIME_LIMIT


@dataclass(frozen=True)
class JobAlert:
    job: str
    level: str  # the admin's message levels: "error" (its latest run failed), "warning" (lag)
    text: str


def beat_intervals():
    """{job: how often beat runs it}, from django-celery-beat's enabled interval schedules
    (staff edit them in the admin: Periodic tasks). A job beat does not run is left out."""
    jobs = {task_name(job): job for job in JOBS}
    schedules = PeriodicTask.objects.filter(enabled=True, task__in=jobs, interval__isnull=False)
    intervals = {}
    for task, every, period in schedules.values_list("task", "interval__every", "interval__period"):
        interval = timedelta(**{period: every})  # days, hours, minutes, seconds, microseconds
        intervals[jobs[task]] = min(interval, intervals.get(jobs[task], interval))
    return intervals


def stuck_runs(*, now=None, intervals=None):
    """A condition on JobRun: still running after its job's interval (or, for a job beat does
    not run, its time limit) — stuck, or killed without a word (a worker's hard kill)."""
    now = now or timezone.now()
    intervals = beat_intervals() if intervals is None else intervals
    late = Q(started_at__lt=now - STUCK_WITHOUT_SCHEDULE) & ~Q(job__in=list(intervals))
    for job, interval in intervals.items():
        late |= Q(job=job, started_at__lt=now - interval)
    return Q(status=JobRun.Status.RUNNING) & late


def needing_attention(*, runs, now=None, intervals=None):
    """The runs of `runs` that failed or are stuck."""
    return runs.filter(Q(status=JobRun.Status.FAILED) | stuck_runs(now=now, intervals=intervals))


def marked_stuck(*, runs, now=None, intervals=None):
    """`runs`, each with `stuck` (True or False)."""
    condition = stuck_runs(now=now, intervals=intervals)
    return runs.annotate(stuck=ExpressionWrapper(condition, output_field=BooleanField()))


def finished_runs(*, job):
    """The job's finished runs (succeeded or failed), latest first."""
    return (
        JobRun.objects.filter(job=job)
        .exclude(status=JobRun.Status.RUNNING)
        .order_by("-started_at", "-pk")
    )


def job_alerts(*, now=None, intervals=None):
    """A JobAlert for each registered job whose latest finished run failed, or which beat runs
    and whose latest finished run succeeded longer ago than LAG_INTERVALS of its intervals.
    A job that has never finished a run (a new install) has nothing to say yet."""
    now = now or timezone.now()
    intervals = beat_intervals() if intervals is None else intervals
    alerts = []
    for job in JOBS:
        latest = finished_runs(job=job).only("status", "finished_at").first()
        if latest is None:
            continue
        if latest.status == JobRun.Status.FAILED:
            when = moment(latest.finished_at, today=now)
            alerts.append(JobAlert(job, "error", f"{job}: its latest run failed ({when})."))
            continue
        interval = intervals.get(job)
        if interval is not None and now - latest.finished_at > LAG_INTERVALS * interval:
            alerts.append(
                JobAlert(
                    job,
                    "warning",
                    f"{job}: no success for {span(now - latest.finished_at)} "
                    f"(beat runs it every {span(interval)}).",
                )
            )
    return alerts


def idle_summary(*, run, now=None):
    """An idle row in words: `nothing due × 57 (10:02–10:59)`, `nothing due (10:02)`."""
    first = moment(run.started_at, today=now or timezone.now())
    last = moment(run.last_started_at or run.started_at, today=run.started_at)
    times = first if last == first else f"{first}–{last}"
    count = f" × {group_digits(run.idle_runs)}" if run.idle_runs > 1 else ""
    return f"nothing due{count} ({times})"


def moment(value, *, today):
    """`10:02` on the day of `today` (local time), `2026-03-01 10:02` on another."""
    local = timezone.localtime(value)
    if local.date() == timezone.localtime(today).date():
        return f"{local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def span(delta):
    """A length of time as people say it: `45 s`, `5 min`, `2 h 10 min`, `3 days`."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{group_digits(hours // 24)} days"
