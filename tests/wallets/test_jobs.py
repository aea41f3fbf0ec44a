"""The ledger's daily verification (apps/wallets/jobs.py): the checks of `verify_ledger` run
by beat, a violation failing the run, which the job-run list and the metrics then show."""

import pytest

from apps.jobs.registry import run_job
from apps.wallets.models import Wallet
from tests.ledger import D, give, priced_account

pytestmark = pytest.mark.django_db


def test_a_sound_ledger_passes_and_a_broken_one_fails_the_run_naming_what_broke():
    account, _ = priced_account(credits=10)
    give(account, 5)
    assert run_job(job="verify_ledger", trigger="command").status == "succeeded"

    Wallet.objects.update(balance=D(99))  # what no service can write
    run = run_job(job="verify_ledger", trigger="command")

    assert (run.status, run.counts["problems"]) == ("failed", len(run.counts["errors"]))
    assert any("balance 99.000000 != Σ ledger" in error for error in run.counts["errors"])
