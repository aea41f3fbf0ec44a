"""Revenue's scheduled jobs (apps/jobs/registry.py)."""

from apps.core.snapshots import one_snapshot
from apps.jobs.counts import JobCounts
from apps.jobs.registry import register

from .posting import post_revenue
from .verify import verify_revenue


def verify_revenue_job(*, now=None, on_chunk=None):
    """Revenue checked against a recomputation from the ledger on one snapshot, as `manage.py
    verify_revenue --no-post` checks it (posting is post_revenue's, on its own schedule): a
    difference fails the run."""
    counts = JobCounts()
    with one_snapshot():
        for problem in verify_revenue():
            counts.problem(problem)
    return counts


register("post_revenue", post_revenue, order=90)
register("verify_revenue", verify_revenue_job, order=98)
