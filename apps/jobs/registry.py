"""The scheduled jobs by name, and running one (recorded as a JobRun by services.py).

Every app registers its own jobs from its `AppConfig.ready()` (`apps/<app>/jobs.py`); this
app imports none of them. `order` is the place of a job in a run of them all (the
`run_period_jobs` command): renewal first, so that the expiry job finds only what renewal
did not close; the outbox sweeper last, so that it sends what the jobs before it could not
publish. Beat runs each job on its own schedule, through its Celery task (tasks.py)."""

from collections.abc import Callable
from dataclasses import dataclass

from apps.core import clock

from . import services

# Beat's rows in the database and messages already queued name the tasks so: they keep the
# prefix of the app that used to run every job.
TASK_PREFIX = "periods."


@dataclass(frozen=True)
class Job:
    name: str
    function: Callable  # function(*, now, on_chunk, [chunk_size]) -> JobCounts
    order: int


JOBS = {}  # name -> Job, in run order


def task_name(job):
    """The Celery task that runs `job` (a job's name)."""
    return f"{TASK_PREFIX}{job}"


def register(name, function, *, order):
    """Add a job. Registering the same job twice is a no-op; two jobs may share neither a
    name nor an order (a run of them all must have one order)."""
    job = Job(name=name, function=function, order=order)
    if JOBS.get(name) == job:
        return job
    if name in JOBS:
        raise ValueError(f"job {name!r} is already registered")
    if any(other.order == order for other in JOBS.values()):
        raise ValueError(f"job {name!r}: order {order} is taken")
    ordered = sorted([*JOBS.values(), job], key=lambda j: j.order)
    JOBS.clear()
    JOBS.update((j.name, j) for j in ordered)
    return job


def run_job(*, job, trigger, now=None, task_id="", chunk_size=None):
    """Run one job, recording it as a JobRun whose counts are saved after every chunk (a
    run that dies shows how far it got); a run by beat that found nothing to do is counted on
    the job's idle row (services.py). Returns the JobRun that records the run; re-raises what
    stopped it."""
    function = JOBS[job].function
    as_of = now or clock.now()
    run = services.start_run(job=job, trigger=trigger, as_of=as_of, task_id=task_id)

    def progress(counts):
        services.save_progress(run=run, counts=counts)

    options = {"chunk_size": chunk_size} if chunk_size else {}
    try:
        counts = function(now=as_of, on_chunk=progress, **options)
    except BaseException as error:  # a time limit or a kill too: record it, then stop
        services.fail_run(run=run, error=error)
        raise
    return services.finish_run(run=run, counts=counts)
