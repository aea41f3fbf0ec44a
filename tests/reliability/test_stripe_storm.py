"""A Stripe storm: about a thousand webhook events from many customers buying packs (some
refunded in part or whole) and plans (renewed, failed, recovered, canceled at once or at the
period's end); 30 % of them delivered twice, all shuffled, from eight threads at once through
dj-stripe's real webhook view on a threaded HTTP server, so that events about one customer,
purchase or subscription are processed concurrently on PostgreSQL. Stripe retries for three
days, so a storm holds what happened in a few days: one at the end of January (the
purchases), one at the end of February (the renewals). Afterwards every purchase and every
paid invoice has granted its credits exactly once and every subscription is in Stripe's final
state."""

import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
import stripe

from apps.accounts.models import Subscription
from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.gateway import connect_stripe_webhook, from_timestamp
from apps.billing.models import Purchase
from apps.billing.subscriptions import STATUSES
from apps.periods.services import period_reference
from apps.revenue.posting import post_revenue
from apps.revenue.verify import verify_revenue
from apps.wallets.models import CreditGrant
from tests.factories import (
    AccountFactory,
    CreditPackFactory,
    CreditTypeFactory,
    PlanAllowanceFactory,
    PlanFactory,
)
from tests.ledger import assert_ledger_sound
from tests.stripe_helpers import KEY, buy, control, signed, subscribe

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
D = Decimal
CUSTOMERS = 45
DUPLICATED = 0.30  # of the events, delivered a second time
THREADS = 8
SEED = 20260131
JAN_31 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
FEB_28 = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def catalog(caplog, offline_stripe, time_machine):
    # The Stripe client logs each of its thousands of requests: they would bury the figures.
    caplog.set_level(logging.WARNING, logger="stripe")
    time_machine.move_to(JAN_31, tick=True)
    credits = CreditTypeFactory(code="credits")
    small = CreditPackFactory(code="pack_1000", credits=1000, price="10.00", credit_type=credits)
    large = CreditPackFactory(code="pack_5000", credits=5000, price="40.00", credit_type=credits)
    plan = PlanFactory(code="pro", price=D("20.00"), billing_interval="month")
    PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=D(1000))
    sync_stripe_catalog()
    for item in (small, large, plan):
        item.refresh_from_db()
    return small, large, plan


class Storm:
    """Delivers held events as a storm: a share of them twice, shuffled (seeded), from
    THREADS threads at once, each event signed as Stripe signs it. Keeps every answer."""

    def __init__(self, url, secret):
        self.url, self.secret = url, secret
        self.random = random.Random(SEED)
        self.events, self.answers, self.seconds = [], [], 0.0
        self.local = threading.local()

    def __call__(self, events):
        deliveries = events + self.random.sample(events, round(len(events) * DUPLICATED))
        self.random.shuffle(deliveries)
        started = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            self.answers += pool.map(self.post, deliveries)
        self.seconds += time.monotonic() - started
        self.events += events

    def post(self, event):
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        body, signature = signed(event, self.secret)
        answer = self.local.session.post(
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": signature},
            timeout=60,
        )
        return event["type"], answer.status_code, answer.text[:200]


def paid_invoices(offline_stripe, stripe_id):
    """The period starts Stripe was paid for (its paid invoices of more than 0)."""
    return [
        from_timestamp(i["lines"]["data"][0]["period"]["start"])
        for i in offline_stripe.all("invoice").values()
        if i["parent"]["subscription_details"]["subscription"] == stripe_id
        and i["status"] == "paid" and i["total"] > 0
    ]  # fmt: skip


def refund_all(offline_stripe, refunds):
    """Refund each Checkout Session's payment in part or whole: {session id: cents}."""
    for session_id, cents in refunds.items():
        intent = offline_stripe.get("checkout.session", session_id)["payment_intent"]
        stripe.Refund.create(api_key=KEY, payment_intent=intent, amount=cents)


def test_a_storm_of_duplicated_shuffled_concurrent_events_grants_everything_exactly_once(
    authed_client, catalog, offline_stripe, stripe_events, wsgi_server, time_machine
):
    small, large, plan = catalog
    base_url, _ = wsgi_server
    endpoint, _ = connect_stripe_webhook(base_url=base_url)
    storm = Storm(f"{base_url}/stripe/webhook/{endpoint.djstripe_uuid}/", endpoint.secret)
    refunded = {}  # session id -> amount refunded (cents)

    # End of January: packs bought (some refunded in part), plans bought; a few canceled at
    # once, a few at the period's end.
    accounts = [AccountFactory(external_id=f"storm-{n}") for n in range(CUSTOMERS)]
    bought, subscribed = [], {}
    for n, account in enumerate(accounts):
        bought.append(buy(authed_client, account, small, offline_stripe))
        if n % 2:
            bought.append(buy(authed_client, account, large, offline_stripe))
        if n % 9 == 2:
            refunded[bought[-1]] = 300  # 3.00 of its price
        if n % 8 == 7:
            continue  # packs only
        subscribed[n] = subscribe(authed_client, account, plan, offline_stripe)
        if n % 10 == 3:
            stripe.Subscription.modify(subscribed[n], api_key=KEY, cancel_at_period_end=True)
        if n % 12 == 4:
            stripe.Subscription.cancel(subscribed[n], api_key=KEY)
    refund_all(offline_stripe, refunded)
    storm(stripe_events.take())

    # End of February: Stripe renews every plan (some payments fail, a few are paid after
    # all; a plan set to cancel at the period's end ends instead), more packs are bought,
    # some refunded at once.
    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=True)
    more = {}
    for n, stripe_id in subscribed.items():
        if offline_stripe.get("subscription", stripe_id)["status"] == "canceled":
            continue
        if n % 5 == 1:
            control(offline_stripe, f"subscriptions/{stripe_id}/fail")
            if n % 10 == 1:
                invoice = offline_stripe.get("subscription", stripe_id)["latest_invoice"]
                control(offline_stripe, f"invoices/{invoice}/pay")
        else:
            control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    for n, account in enumerate(accounts):
        if n % 3 == 0:
            more[n] = buy(authed_client, account, small, offline_stripe)
            if n % 6 == 0:
                refunded[more[n]] = 1000  # the whole pack, before its events are in
    refund_all(offline_stripe, {s: refunded[s] for s in more.values() if s in refunded})
    bought += more.values()
    storm(stripe_events.take())

    statuses = Counter(status for _, status, _ in storm.answers)
    assert set(statuses) == {200}, [a for a in storm.answers if a[1] != 200][:5]
    # Every pack: one grant (none by its PaymentIntent as well) of its credits, less the
    # refunded share clawed back once.
    packs = CreditGrant.objects.filter(source=CreditGrant.Source.PURCHASE)
    assert Counter(packs.values_list("reference", flat=True)) == Counter(bought)
    for purchase in Purchase.objects.select_related("grant"):
        assert purchase.status == Purchase.Status.PAID
        assert purchase.grant.amount == purchase.credits
        share = D(refunded.get(purchase.checkout_session_id, 0)) / (purchase.price * 100)
        assert purchase.credits_clawed_back == purchase.credits * share
    # Every subscription: Stripe's status, and a period granted for each invoice paid.
    for stripe_id in subscribed.values():
        theirs = offline_stripe.get("subscription", stripe_id)
        ours = Subscription.objects.filter(stripe_subscription_id=stripe_id).first()
        assert ours is not None, (stripe_id, theirs["status"])
        assert ours.status == STATUSES[theirs["status"]], stripe_id
        granted = CreditGrant.objects.filter(reference__startswith=f"period:{ours.pk}:")
        assert sorted(granted.values_list("reference", flat=True)) == sorted(
            period_reference(ours.pk, start, "credits")
            for start in paid_invoices(offline_stripe, stripe_id)
        )
    assert_ledger_sound()
    post_revenue()
    assert verify_revenue() == []

    grants = CreditGrant.objects.filter(account__in=accounts)
    print(
        f"\nStripe storm: {len(storm.events)} events in two storms, "
        f"{len(storm.answers) - len(storm.events)} of them twice; {len(storm.answers)} "
        f"deliveries from {THREADS} threads, answers {dict(statuses)}; "
        f"{grants.filter(source='purchase').count()} pack grants for {len(bought)} packs, "
        f"{grants.filter(source='plan_period').count()} period grants for "
        f"{len(subscribed)} subscriptions "
        f"({dict(Counter(Subscription.objects.values_list('status', flat=True)))}); "
        f"delivered in {storm.seconds:.1f} s"
    )
