"""Beat's runs that find nothing to do are counted on one row, not listed one by one. A run
that did something, failed, is still running or was started by hand keeps its own row; the
next idle run after it starts a new idle row."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.core import clock
from apps.jobs.counts import JobCounts
from apps.jobs.models import RUN_TIME_LIMIT, JobRun
from apps.jobs.registry import run_job
from apps.jobs.selectors import idle_summary
from apps.jobs.services import LOST, finish_run, start_run
from apps.usage.services import reserve
from tests.factories import JobRunFactory
from tests.ledger import priced_account, race

pytestmark = pytest.mark.django_db

T = datetime(2026, 3, 2, 10, 2, tzinfo=UTC)


def minute(n):
    return T + timedelta(minutes=n)


@pytest.fixture
def beat(time_machine):
    """`beat(at=…, counts=…)`: a run of expire_grants that starts at `at` and finishes two
    seconds later having counted `counts` (nothing, by default)."""

    def run(*, at, counts=None, trigger="beat"):
        time_machine.move_to(at, tick=False)
        started = start_run(job="expire_grants", trigger=trigger, as_of=at)
        time_machine.move_to(at + timedelta(seconds=2), tick=False)
        return finish_run(run=started, counts=counts or JobCounts())

    return run


def rows():
    """(idle runs, status, first start, last start) of each row, oldest first."""
    runs = JobRun.objects.filter(job="expire_grants").order_by("started_at")
    return [(r.idle_runs, r.status, r.started_at, r.last_started_at) for r in runs]


def test_consecutive_idle_runs_make_one_row_with_their_count_and_times(beat):
    for n in range(57):  # 10:02, 10:03, … 10:58
        returned = beat(at=minute(n))
    [row] = JobRun.objects.all()
    assert returned == row  # the row that records the run
    assert (row.idle_runs, row.status, row.counts) == (57, "succeeded", {})
    assert (row.started_at, row.last_started_at) == (minute(0), minute(56))
    assert (row.finished_at, row.as_of) == (minute(56) + timedelta(seconds=2), minute(56))
    assert idle_summary(run=row, now=minute(60)) == "nothing due × 57 (10:02–10:58)"


def test_a_run_that_counted_only_its_transactions_did_nothing(beat):
    beat(at=minute(0))
    beat(at=minute(1), counts=JobCounts(chunks=2))
    assert rows() == [(2, "succeeded", minute(0), minute(1))]


def test_a_run_that_did_something_splits_the_idle_runs_and_keeps_its_own_row(beat):
    for n in range(3):
        beat(at=minute(n))
    beat(at=minute(3), counts=JobCounts(chunks=1, grants_expired=1, expired=Decimal(40)))
    for n in range(4, 6):
        beat(at=minute(n))
    assert rows() == [
        (3, "succeeded", minute(0), minute(2)),
        (0, "succeeded", minute(3), None),
        (2, "succeeded", minute(4), minute(5)),
    ]
    assert JobRun.objects.get(idle_runs=0).counts == {
        "grants_expired": 1, "expired": "40", "chunks": 1
    }  # fmt: skip


def test_a_failed_run_is_never_folded_and_the_idle_runs_after_it_start_a_new_row(beat):
    beat(at=minute(0))
    beat(at=minute(1), counts=JobCounts(failures=1, errors=["grant 7: ValueError: no"]))
    beat(at=minute(2), counts=JobCounts(failures=1))
    beat(at=minute(3))
    assert rows() == [
        (1, "succeeded", minute(0), minute(0)),
        (0, "failed", minute(1), None),
        (0, "failed", minute(2), None),
        (1, "succeeded", minute(3), minute(3)),
    ]


def test_a_run_still_running_keeps_its_row_and_the_idle_runs_beside_it_fold(beat, time_machine):
    beat(at=minute(0))
    time_machine.move_to(minute(1), tick=False)
    slow = start_run(job="expire_grants", trigger="beat", as_of=minute(1))
    beat(at=minute(2))
    assert rows() == [
        (2, "succeeded", minute(0), minute(2)),
        (0, "running", minute(1), None),
    ]
    time_machine.move_to(minute(3), tick=False)
    finish_run(run=slow, counts=JobCounts())  # idle too: folded, at its own time
    assert rows() == [(3, "succeeded", minute(0), minute(2))]


def test_runs_started_by_hand_keep_their_rows(beat):
    beat(at=minute(0))
    beat(at=minute(1), trigger="command")
    beat(at=minute(2), trigger="admin")
    beat(at=minute(3))
    assert rows() == [
        (1, "succeeded", minute(0), minute(0)),
        (0, "succeeded", minute(1), None),
        (0, "succeeded", minute(2), None),
        (1, "succeeded", minute(3), minute(3)),
    ]


def test_beat_runs_of_a_real_job_fold_around_the_run_that_released_a_hold():
    account, feature = priced_account(credits=10)
    job = "release_expired_reservations"
    for _ in range(2):
        assert run_job(job=job, trigger="beat").counts == {}
    reserve(account=account, feature=feature.code, quantity=1, ttl_seconds=60)
    later = clock.now() + timedelta(minutes=5)
    run_job(job=job, trigger="beat", now=later)
    run_job(job=job, trigger="beat", now=later)
    runs = JobRun.objects.filter(job=job).order_by("started_at")
    assert [(r.idle_runs, r.counts.get("reservations_released")) for r in runs] == [
        (2, None),
        (0, 1),
        (1, None),
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("before", [0, 1], ids=["first idle runs", "after an idle row"])
def test_copies_finishing_idle_runs_at_once_are_counted_on_one_row(beat, before):
    for n in range(before):
        beat(at=minute(n))
    started = [start_run(job="expire_grants", trigger="beat", as_of=minute(1)) for _ in range(8)]
    results = race([lambda run=run: finish_run(run=run, counts=JobCounts()) for run in started],
                   workers=8)  # fmt: skip
    assert not [r for r in results if isinstance(r, Exception)], results
    [row] = JobRun.objects.all()
    assert (row.idle_runs, row.status) == (before + 8, "succeeded")
    connection.close()


def test_a_run_by_beat_left_running_past_its_time_limit_is_closed_as_lost_by_the_next():
    now = timezone.now()
    lost = JobRunFactory(job="expire_grants", status="running", finished_at=None,
                         started_at=now - RUN_TIME_LIMIT - timedelta(minutes=1))  # fmt: skip
    young = JobRunFactory(job="expire_grants", status="running", finished_at=None,
                          started_at=now - timedelta(minutes=10))  # fmt: skip
    by_hand = JobRunFactory(job="expire_grants", status="running", finished_at=None,
                            trigger="command", started_at=now - timedelta(hours=2))  # fmt: skip
    run_job(job="expire_grants", trigger="beat")
    for run in (lost, young, by_hand):
        run.refresh_from_db()
    assert (lost.status, lost.error) == (JobRun.Status.FAILED, LOST)
    assert young.status == by_hand.status == JobRun.Status.RUNNING
