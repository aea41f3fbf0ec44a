"""Revenue's daily verification (apps/revenue/jobs.py): `verify_revenue --no-post` run by beat
on one snapshot, a difference failing the run."""

from decimal import Decimal

import pytest

from apps.jobs.registry import run_job
from apps.revenue.models import RevenueLine
from apps.usage.services import consume
from apps.wallets.services import grant_credits
from tests.factories import AccountFactory, CreditTypeFactory, FeatureFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.mark.revenue_tampered
def test_revenue_that_agrees_passes_and_a_tampered_line_fails_the_run():
    credit_type = CreditTypeFactory(code="api")
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D(1))
    account = AccountFactory()
    grant_credits(account=account, credit_type=credit_type, amount=D(1000), source="purchase",
                  basis_amount=D("10.00"))  # fmt: skip
    consume(account=account, feature="api_call", quantity=D(250))
    assert run_job(job="post_revenue", trigger="command").counts["posted"] > 0
    assert run_job(job="verify_revenue", trigger="command").status == "succeeded"

    RevenueLine.objects.filter(kind="consumed").update(amount=D("9.99"))
    run = run_job(job="verify_revenue", trigger="command")

    assert run.status == "failed"
    assert run.counts["problems"] == len(run.counts["errors"]) > 0
    assert not RevenueLine.objects.filter(kind="consumed").exclude(amount=D("9.99")).exists()
