"""After a day of billing — packs bought, refunded in part, disputed; a plan bought, used past
its credits, renewed by invoice.paid and by the job, switched; events repeated — the
`verify_ledger` command finds the whole ledger sound."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.checkout import switch_stripe_plan
from apps.billing.models import OverageCharge, Purchase
from apps.catalog.models import CreditPack, Plan
from apps.periods.services import renew_due_subscriptions
from apps.usage.services import consume
from apps.wallets.models import CreditGrant
from tests.factories import (
    AccountFactory,
    CreditPackFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
)
from tests.ledger import wallet_of
from tests.stripe_helpers import buy, control, refund, subscribe

from .conftest import FEB_28, JAN_31, MAR_31

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def catalog(db, offline_stripe, time_machine):
    time_machine.move_to(JAN_31, tick=False)
    credits = CreditTypeFactory(code="credits")
    feature = FeatureFactory(code="api_call", credit_type=credits)
    plans = []
    for code, price, included in (("scale", "20.00", 1000), ("larger", "90.00", 5000)):
        plan = PlanFactory(code=code, price=D(price), overage_policy="allow",
                           overage_limit=D(500), overage_unit_price=D("0.02"))  # fmt: skip
        PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=D(included))
        PlanFeatureFactory(plan=plan, feature=feature)
        plans.append(plan)
    pack = CreditPackFactory(code="pack_1000", credits=1000, price="10.00", credit_type=credits)
    sync_stripe_catalog()
    return [Plan.objects.get(pk=p.pk) for p in plans], CreditPack.objects.get(pk=pack.pk)


def test_verify_ledger_is_clean_after_the_billing_scenarios(
    authed_client, catalog, offline_stripe, stripe_events, webhook, time_machine
):
    (plan, larger), pack = catalog
    buyer, disputer, subscriber = (AccountFactory(external_id=n) for n in ("buyer", "disp", "sub"))

    # Packs: one refunded in part after some use, one disputed; every event twice.
    session = buy(authed_client, buyer, pack, offline_stripe)
    buy(authed_client, disputer, pack, offline_stripe)
    events = stripe_events.take()
    webhook.deliver(events + events[::-1])
    consume(account=buyer, feature="api_call", quantity=D(250))
    refund(offline_stripe, Purchase.objects.get(checkout_session_id=session), 400)
    charge = offline_stripe.get(
        "payment_intent", Purchase.objects.get(account=disputer).payment_intent_id
    )["latest_charge"]
    control(offline_stripe, f"charges/{charge}/dispute")
    webhook.deliver(stripe_events.take() * 2)

    # A plan used past its credits (overage), renewed by invoice.paid and then the job.
    stripe_id = subscribe(authed_client, subscriber, plan, offline_stripe)
    webhook.deliver(stripe_events.take())
    consume(account=subscriber, feature="api_call", quantity=D(1200))
    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())
    renew_due_subscriptions(now=FEB_28 + timedelta(hours=2))
    switch_stripe_plan(account=subscriber, plan=larger)
    webhook.deliver(stripe_events.take())
    time_machine.move_to(MAR_31 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    events = stripe_events.take()
    renew_due_subscriptions(now=MAR_31 + timedelta(hours=2))  # the job first, this time
    webhook.deliver(events + events)

    # The scenario did what it says before the check looks at it.
    assert wallet_of(buyer, pack.credit_type).balance == D(350)  # 1000 − 250 used − 400 refunded
    assert wallet_of(disputer, pack.credit_type).balance == D(0)
    assert OverageCharge.objects.filter(account=subscriber, credits=D(200)).count() == 1
    assert CreditGrant.objects.filter(account=subscriber, source="plan_period").count() == 3

    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "0 violation(s)" in out.getvalue()
    assert subscriber.subscriptions.get(status="active").plan == larger
