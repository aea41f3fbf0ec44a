"""Model titles — the admin's page headings, breadcrumbs, select boxes and history — read
numbers as the screens do (apps/core/humanize.py): `10,000 credits`, never `10000.000000`."""

from decimal import Decimal

import pytest

from apps.billing.models import OverageCharge
from apps.usage.models import UsageEvent
from apps.usage.services import consume
from apps.wallets.models import LedgerEntry
from apps.wallets.services import grant_credits
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
)

pytestmark = pytest.mark.django_db
D = Decimal


def test_a_plan_allowance_reads_its_credits_per_period():
    allowance = PlanAllowanceFactory(credits_per_period=D("10000"), credit_type__code="gpu_min")
    allowance.refresh_from_db()  # as stored: 10000.000000
    assert str(allowance) == "10,000 gpu_min / period"


def test_a_grant_its_ledger_entry_and_a_usage_event_read_in_credits():
    credit_type = CreditTypeFactory(code="credits")
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D("0.5"))
    account = AccountFactory()
    grant, _ = grant_credits(account=account, credit_type=credit_type, amount=D("12000"),
                             source="promo")  # fmt: skip
    consume(account=account, feature="api_call", quantity=D(3))
    grant.refresh_from_db()
    assert str(grant) == f"Promotion grant #{grant.pk} (11,998.5 of 12,000 credits left)"
    entry = LedgerEntry.objects.get(grant=grant, kind="grant")
    assert str(entry) == f"grant 12,000 credits (#{entry.pk})"
    event = UsageEvent.objects.get()
    assert str(event) == f"3 × feature #{event.feature_id} = 1.5 credits"


def test_an_overage_charge_reads_its_credits():
    charge = OverageCharge(account=AccountFactory(name="Acme"), credits=D("2500.500000"))
    assert str(charge) == "Overage of 2,500.5 credits for Acme"
