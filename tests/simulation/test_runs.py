"""Simulation runs (apps/simulation/services.py): validated before they are queued, replayed
chunk by chunk with progress, cancelled without a trace, run by a real Celery worker."""

import time
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.errors import InvalidInput
from apps.simulation.models import SimulationLine, SimulationRun
from apps.simulation.services import (
    STALE_AFTER,
    cancel_run,
    fail_stale_runs,
    run_chunk,
    run_simulation,
    select_accounts,
    start_chunks,
    start_run,
)
from tests.checksums import live_checksums
from tests.factories import AccountFactory
from tests.workers import real_worker

from .conftest import APR_1, FEB_1, FEB_5, MAR_5

DRAFT = """
version: 1
credit_types:
- {code: credits, name: Credits}
features:
- {code: api_call, name: API call, credit_type: credits, credits_per_unit: "1"}
- {code: export, name: Export, credit_type: credits, credits_per_unit: "10"}
plans:
- code: pro
  name: Pro
  price: 30
  included_credits: {credits: 1000}
  rollover: {percent: 50, cap: 300, expires_after_periods: 1}
  overage: {policy: allow, limit: 500, unit_price: "0.05"}
  features:
  - {feature: api_call, credits_per_unit: "1.5"}
  - {feature: export, credits_per_unit: "10", limit_per_period: 3}
"""
FEB_6, MAR_6 = FEB_5 + timedelta(days=1), MAR_5 + timedelta(days=1)


def not_simulations(checksums):
    return {t: v for t, v in checksums.items() if not t.startswith("simulation_")}


def test_a_run_replays_its_accounts_and_keeps_the_figures(one_month):
    run = start_run(title="API calls at 1.5", draft_text=DRAFT, starts_at=FEB_6, ends_at=MAR_6)
    assert run.status == SimulationRun.Status.QUEUED
    [change] = run.changes
    assert change.startswith("~ plan pro: version 2")
    assert change.endswith("features[api_call].credits_per_unit: '1' -> '1.5'")
    before = not_simulations(live_checksums())
    run = run_simulation(run_id=run.pk)
    assert not_simulations(live_checksums()) == before
    assert (run.status, run.accounts_done, run.error) == (SimulationRun.Status.DONE, 1, "")
    [line] = run.lines.all()
    assert (line.charged_change, line.change_percent, line.refused) == (D(450), D("48.4"), 0)
    assert (run.totals["accounts"], run.totals["accounts_changed"]) == (1, 1)
    assert D(run.totals["draft"]["charged"]) == D(1380)
    assert run.totals["draft"]["overage_billed"] == {"USD": "4.00"}


def test_a_bad_draft_or_range_is_refused_before_anything_is_queued(one_month):
    with pytest.raises(InvalidInput, match="not valid YAML"):
        start_run(title="x", draft_text="plans: [", starts_at=FEB_6, ends_at=MAR_6)
    with pytest.raises(InvalidInput, match="problem"):
        start_run(title="x", draft_text=DRAFT.replace("price: 30", "price: -3"),
                  starts_at=FEB_6, ends_at=MAR_6)  # fmt: skip
    with pytest.raises(InvalidInput, match="in the past"):
        start_run(title="x", draft_text=DRAFT, starts_at=FEB_6, ends_at=APR_1 + timedelta(1))
    with pytest.raises(InvalidInput, match="end after it starts"):
        start_run(title="x", draft_text=DRAFT, starts_at=MAR_6, ends_at=FEB_6)
    assert not SimulationRun.objects.exists()


def test_accounts_by_plan_list_or_seeded_sample(lived):
    everyone = sorted(a.pk for a in lived.accounts.values())
    on_pro = sorted(a.pk for n, a in lived.accounts.items() if n != "packer")
    assert select_accounts(starts_at=FEB_1, ends_at=APR_1) == everyone
    assert select_accounts(starts_at=FEB_1, ends_at=APR_1, plan="pro") == on_pro
    sample = select_accounts(starts_at=FEB_1, ends_at=APR_1, sample=2, seed=7)
    assert len(sample) == 2 and set(sample) <= set(everyone)
    assert select_accounts(starts_at=FEB_1, ends_at=APR_1, sample=2, seed=7) == sample
    with pytest.raises(InvalidInput, match="No account has id"):
        select_accounts(starts_at=FEB_1, ends_at=APR_1, account_ids=[everyone[0], 10**9])
    with pytest.raises(InvalidInput, match="Nobody was on plan"):
        select_accounts(starts_at=FEB_1, ends_at=APR_1, plan="enterprise")


def test_a_cancelled_run_leaves_nothing_behind(lived):
    run = start_run(title="cancel me", draft_text=DRAFT, starts_at=FEB_1, ends_at=APR_1,
                    chunk_size=2)  # fmt: skip
    chunks = []

    def cancel_after_the_first_chunk(run_id):
        chunks.append(SimulationLine.objects.filter(run_id=run_id).count())
        cancel_run(run_id=run_id)

    run = run_simulation(run_id=run.pk, on_chunk=cancel_after_the_first_chunk)
    assert chunks == [2]  # the first chunk was written, then the cancel came
    assert (run.status, run.accounts_done, run.totals) == (SimulationRun.Status.CANCELED, 0, {})
    assert not SimulationLine.objects.exists()
    # A queued run is cancelled at once; no worker will start it afterwards.
    queued = start_run(title="never", draft_text=DRAFT, starts_at=FEB_1, ends_at=APR_1)
    assert cancel_run(run_id=queued.pk).status == SimulationRun.Status.CANCELED
    assert run_simulation(run_id=queued.pk) is None


def test_chunks_are_written_once_and_the_last_one_writes_the_totals(lived):
    """As the Celery tasks do it: a task per chunk, in any order, one delivered twice."""
    run = start_run(title="chunks", draft_text=DRAFT, starts_at=FEB_1, ends_at=APR_1,
                    chunk_size=2)  # fmt: skip
    assert start_chunks(run_id=run.pk) and not start_chunks(run_id=run.pk)
    assert run_chunk(run_id=run.pk, index=2)
    assert not run_chunk(run_id=run.pk, index=2)  # delivered again: nothing written twice
    assert run_chunk(run_id=run.pk, index=0)
    assert not run_chunk(run_id=run.pk, index=1)  # the last: the run is done
    run.refresh_from_db()
    assert (run.status, run.accounts_done, sorted(run.chunks_done)) == ("done", 5, [0, 1, 2])
    assert run.lines.count() == 5 and run.totals["accounts"] == 5


def test_a_run_whose_workers_went_silent_ends_as_failed_with_nothing_kept(lived):
    """A worker died after the first chunk: the job ends the run; a run that reported
    within the last ten minutes is left to its workers."""
    dead = start_run(title="dead", draft_text=DRAFT, starts_at=FEB_1, ends_at=APR_1,
                     chunk_size=2)  # fmt: skip
    alive = start_run(title="alive", draft_text=DRAFT, starts_at=FEB_1, ends_at=APR_1)
    assert start_chunks(run_id=dead.pk) and start_chunks(run_id=alive.pk)
    assert run_chunk(run_id=dead.pk, index=0)  # then its worker is gone
    later = timezone.now() + STALE_AFTER + timedelta(seconds=1)
    SimulationRun.objects.filter(pk=alive.pk).update(heartbeat_at=later - timedelta(minutes=1))
    assert fail_stale_runs(now=later).stale_simulations == 1
    dead.refresh_from_db()
    assert (dead.status, dead.accounts_done, dead.lines.count()) == ("failed", 0, 0)
    assert "stopped reporting for 10 minutes" in dead.error
    assert SimulationRun.objects.get(pk=alive.pk).status == SimulationRun.Status.RUNNING


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_started_run_is_replayed_by_a_real_worker(one_month):
    """The run's task queues a task per chunk (two accounts, a chunk each) on the broker."""
    ids = [one_month.accounts["a"].pk, AccountFactory(external_id="b").pk]  # b: no usage
    with real_worker():
        run = start_run(title="worker", draft_text=DRAFT, starts_at=FEB_6, ends_at=MAR_6,
                        account_ids=ids, chunk_size=1)  # fmt: skip
        for _ in range(200):
            run.refresh_from_db()
            if run.status in SimulationRun.FINISHED:
                break
            time.sleep(0.1)
    assert (run.status, run.accounts_done, run.chunks) == (SimulationRun.Status.DONE, 2, 2)
    connection.close()
