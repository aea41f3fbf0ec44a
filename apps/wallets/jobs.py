"""The wallets' scheduled jobs (apps/jobs/registry.py)."""

from apps.core.snapshots import one_snapshot
from apps.jobs.counts import JobCounts
from apps.jobs.registry import register

from .selectors import ledger_violations
from .services import expire_grants


def verify_ledger(*, now=None, on_chunk=None):
    """Every invariant of docs/ledger.md checked on one snapshot, as `manage.py verify_ledger`
    checks them: a violation fails the run, which the job-run list and the metrics show."""
    counts = JobCounts()
    with one_snapshot():
        for problem in ledger_violations():
            counts.problem(problem)
    return counts


register("expire_grants", expire_grants, order=20)
register("verify_ledger", verify_ledger, order=97)
