"""Writing a job run's row (JobRun): started when the run starts, its counts saved after
every chunk (a run that dies shows how far it got), finished with its outcome.

Beat runs most jobs every minute or few, and most of those runs find nothing to do. Such a
run is *idle*: it succeeded and counted nothing but `chunks` (how many transactions it took,
not what it did). An idle run started by beat is folded when it finishes: if the job's latest
finished row is itself an idle row of beat's, that row counts one run more and stretches to
this run's times, and the run's own row is deleted; otherwise the run's row stays as a new
idle row counting one. A run that did something, failed, is still running, or was started by
hand (the command, the admin) keeps its own row, and the next idle run after it starts a new
idle row."""

import traceback

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from .models import RUN_TIME_LIMIT, JobRun

FOLDED_TRIGGER = "beat"  # runs someone started by hand are theirs to see, one by one
NOT_WHAT_IT_DID = {"chunks"}  # a count of transactions, not of work done
MAX_ERROR_CHARS = 4000
LOST = (
    "No word from this run within its time limit: its worker was killed or lost. The job's "
    "next runs pick up what it left undone."
)


def start_run(*, job, trigger, as_of, task_id=""):
    """The row of a run that starts now; rows of the job's runs by beat that a killed worker
    left running are closed as failed first (Celery would have ended them by now)."""
    now = timezone.now()
    JobRun.objects.filter(
        job=job, trigger=FOLDED_TRIGGER, status=JobRun.Status.RUNNING,
        started_at__lt=now - RUN_TIME_LIMIT,
    ).update(status=JobRun.Status.FAILED, finished_at=now, error=LOST)  # fmt: skip
    return JobRun.objects.create(job=job, trigger=trigger, as_of=as_of, task_id=task_id or "")


def save_progress(*, run, counts):
    """Save what the run has done so far (JobCounts), after a chunk."""
    JobRun.objects.filter(pk=run.pk).update(counts=counts.as_dict())


def fail_run(*, run, error):
    """Record what stopped the run (an exception, a time limit, a kill)."""
    run.status = JobRun.Status.FAILED
    run.error = "".join(traceback.format_exception(error))[-MAX_ERROR_CHARS:]
    run.finished_at = timezone.now()  # real time, as started_at: the run's duration
    run.save(update_fields=["status", "error", "finished_at"])


def is_idle(*, status, counts):
    """Whether a finished run found nothing to do: it succeeded and its counts (a JobCounts
    `as_dict()`) hold nothing but the transactions it took."""
    return status == JobRun.Status.SUCCEEDED and set(counts) <= NOT_WHAT_IT_DID


def finish_run(*, run, counts):
    """Record the run's outcome (JobCounts): failed if any row failed. Returns the row that
    records the run now: its own, or the idle row it was folded into."""
    run.counts = counts.as_dict()
    run.status = JobRun.Status.FAILED if counts.failures else JobRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    if run.trigger != FOLDED_TRIGGER or not is_idle(status=run.status, counts=run.counts):
        run.save(update_fields=["counts", "status", "finished_at"])
        return run
    with transaction.atomic(durable=True):
        _lock_folds_of(run.job)
        into = (
            JobRun.objects.filter(job=run.job)
            .exclude(pk=run.pk)
            .exclude(status=JobRun.Status.RUNNING)  # undecided yet: it may still be folded
            .order_by("-started_at", "-pk")
            .first()
        )
        if into is not None and into.is_idle and _fold(run, into=into):
            JobRun.objects.filter(pk=run.pk).delete()
            return JobRun.objects.get(pk=into.pk)
        run.idle_runs, run.last_started_at = 1, run.started_at
        run.save(update_fields=["counts", "status", "finished_at", "idle_runs",
                                "last_started_at"])  # fmt: skip
        return run


def _fold(run, *, into):
    """Count `run` on the idle row `into`, if that row is still an idle one (a conditional
    UPDATE, each value computed by the database from the row as it is then). The times are
    the earliest and latest of both: two copies of a job may finish in either order."""
    return JobRun.objects.filter(
        pk=into.pk, status=JobRun.Status.SUCCEEDED, idle_runs__gt=0
    ).update(
        idle_runs=F("idle_runs") + 1,
        started_at=Least("started_at", run.started_at),
        last_started_at=Greatest("last_started_at", run.started_at),
        finished_at=Greatest("finished_at", run.finished_at),
        as_of=Greatest("as_of", run.as_of),
    )


def _lock_folds_of(job):
    """Let one idle run of `job` at a time decide where it is counted, until its transaction
    ends. Two copies of a job can finish at once: each must see the other's row, folded or
    kept, or both would keep their own, or fold into a row the other is deleting. A row lock
    cannot do it (the row to fold into may not exist yet); a transaction-level advisory lock
    can, and works through PgBouncer's transaction pooling. SQLite writes one at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext('jobs.jobrun'), hashtext(%s))", [job]
            )
