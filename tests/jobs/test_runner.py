"""The chunk runner on real rows: a chunk per transaction, and a chunk that fails retried one
row at a time, so that one bad row costs only itself (JobRun rows stand in for any rows)."""

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from apps.jobs.counts import JobCounts
from apps.jobs.models import JobRun
from apps.jobs.runner import run_in_chunks

pytestmark = pytest.mark.django_db

RUNNING, SUCCEEDED = JobRun.Status.RUNNING, JobRun.Status.SUCCEEDED


def rows(*names):
    now = timezone.now()
    return [JobRun.objects.create(job=name, trigger="test", as_of=now).pk for name in names]


def due():
    return JobRun.objects.filter(status=RUNNING)


def lock(keys, *, skip_locked):
    return list(due().filter(pk__in=keys).order_by("pk").select_for_update(skip_locked=skip_locked))


def finisher(counts, *, failing_with=ValueError):
    """Work that finishes each row, counting it in `renewed`, and fails on a row named bad."""

    def work(locked):
        for row in locked:
            row.status = SUCCEEDED
            row.save(update_fields=["status"])
            counts.renewed += 1
            if row.job == "bad":
                raise failing_with("cannot finish")

    return work


def statuses():
    return dict(JobRun.objects.values_list("job", "status"))


def test_a_chunk_that_fails_is_retried_row_by_row_and_the_bad_row_costs_only_itself():
    *_, bad, _ = rows("a", "b", "c", "bad", "d")
    counts, progress, failed = JobCounts(), [], set()
    run_in_chunks(due=due(), lock=lock, work=finisher(counts), counts=counts, chunk_size=2,
                  on_chunk=lambda c: progress.append(c.renewed), failed=failed,
                  label="run")  # fmt: skip
    assert statuses() == {"a": SUCCEEDED, "b": SUCCEEDED, "c": SUCCEEDED, "bad": RUNNING,
                          "d": SUCCEEDED}  # fmt: skip
    # The failed chunk (c, bad) was rolled back and its count with it: c counts once.
    assert (counts.renewed, counts.chunks, counts.failures) == (4, 3, 1)
    assert counts.errors == [f"run {bad}: ValueError: cannot finish"]
    assert progress == [2, 3, 4]
    assert failed == {bad}  # not retried by the second pass, nor by another worker


def test_a_time_limit_stops_the_run_without_a_retry():
    rows("a", "bad", "c")
    counts = JobCounts()
    work = finisher(counts, failing_with=SoftTimeLimitExceeded)
    with pytest.raises(SoftTimeLimitExceeded):
        run_in_chunks(due=due(), lock=lock, work=work, counts=counts, chunk_size=10)
    assert set(statuses().values()) == {RUNNING}  # the chunk it cut wrote nothing
    assert counts.failures == 0
