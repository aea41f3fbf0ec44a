"""Refunds in revenue, through Stripe's real events: what a refund's claw-back takes of the
credits left releases deferred revenue; the cash refunded beyond it paid for credits already
used, and comes out of recognised revenue (docs/revenue.md, "Refunds")."""

from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from apps.billing.models import Purchase
from apps.revenue.models import CashRefund, RevenueLine
from apps.revenue.months import month_of
from apps.revenue.posting import post_revenue
from apps.revenue.selectors import month_figures
from apps.revenue.verify import verify_revenue
from apps.usage.services import consume
from tests.factories import FeatureFactory
from tests.stripe_helpers import buy, refund

pytestmark = pytest.mark.django_db
D = Decimal


def figures():
    post_revenue()
    f = month_figures(month=month_of(timezone.now()))[("USD",)]
    return {"billed": f.billed, "recognised": f.recognised, "refunded": f.refunded,
            "breakage": f.breakage, "closing": f.closing_deferred}  # fmt: skip


@pytest.fixture
def used_900(authed_client, account, pack, offline_stripe, stripe_events, webhook):
    """$10 for 1,000 credits, paid through Stripe; 900 used."""
    FeatureFactory(code="api_call", credit_type=pack.credit_type)
    buy(authed_client, account, pack, offline_stripe)
    webhook.deliver(stripe_events.take())
    consume(account=account, feature="api_call", quantity=D(900))
    return Purchase.objects.get()


def test_a_refund_beyond_the_credits_left_comes_out_of_recognised_revenue(
    used_900, offline_stripe, stripe_events, webhook
):
    assert figures() == {"billed": D("10.00"), "recognised": D("9.00"), "refunded": 0,
                         "breakage": 0, "closing": D("1.00")}  # fmt: skip
    refund(offline_stripe, used_900, 500)  # 5.00 back: 500 credits' worth, 100 are left
    events = stripe_events.take()
    webhook.deliver(events + events)  # a repeated event pays nothing back twice
    assert verify_revenue() == []  # recorded, not posted yet: nothing to check against
    assert figures() == {"billed": D("10.00"), "recognised": D("5.00"), "refunded": D("5.00"),
                         "breakage": 0, "closing": 0}  # fmt: skip
    assert list(CashRefund.objects.values_list("amount", flat=True)) == [D("5.00")]
    lines = dict(RevenueLine.objects.exclude(kind__in=["granted", "consumed"])
                 .values_list("kind", "amount"))  # fmt: skip
    assert lines == {"clawed_back": D("1.00"), "refund_cash": D("4.00"),
                     "refund_reversal": D("-4.00")}  # fmt: skip
    assert verify_revenue() == []


def test_a_refund_of_credits_still_left_only_releases_deferred_revenue(
    used_900, offline_stripe, stripe_events, webhook
):
    refund(offline_stripe, used_900, 100)  # 1.00: the 100 credits left, exactly
    webhook.deliver(stripe_events.take())
    assert figures() == {"billed": D("10.00"), "recognised": D("9.00"), "refunded": D("1.00"),
                         "breakage": 0, "closing": 0}  # fmt: skip
    assert not RevenueLine.objects.filter(kind="refund_cash").exclude(amount=0).exists()


def test_a_won_dispute_undoes_the_refund_of_recognised_revenue(
    used_900, offline_stripe, stripe_events, webhook
):
    charge_id = offline_stripe.get("payment_intent", used_900.payment_intent_id)["latest_charge"]
    base = f"{offline_stripe.url}/_offline"
    disputed = requests.post(f"{base}/charges/{charge_id}/dispute", timeout=10).json()["id"]
    webhook.deliver(stripe_events.take())
    assert figures()["recognised"] == D("0.00")  # 10.00 charged back: 1.00 deferred, 9.00 used
    requests.post(f"{base}/disputes/{disputed}/close", data={"status": "won"}, timeout=10)
    webhook.deliver(stripe_events.take())
    # The 100 credits come back as a grant billed at their basis (1.00); the 9.00 of
    # recognised revenue the chargeback had taken out is recognised again.
    assert figures() == {"billed": D("11.00"), "recognised": D("9.00"), "refunded": D("1.00"),
                         "breakage": 0, "closing": D("1.00")}  # fmt: skip
    assert sum(CashRefund.objects.values_list("amount", flat=True)) == D("1.00")
    assert verify_revenue() == []
