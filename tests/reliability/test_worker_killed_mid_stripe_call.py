"""A Celery worker SIGKILLed while its call to Stripe is in flight: Stripe has done what was
asked (an invoice item for an overage, a PaymentIntent for an auto-recharge), the answer never
reached the worker. The job's next run, on a new worker, asks again with the same idempotency
key, Stripe answers with what it already made, and CreditDesk records it: one invoice item,
one charge, one grant. Real processes: `celery worker`s one after the other, Redis, the test's
PostgreSQL, the offline Stripe (its answer held back until the worker is dead)."""

from datetime import timedelta
from decimal import Decimal

import pytest

from apps.accounts.models import Subscription
from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.checkout import stripe_customer
from apps.billing.models import AutoRecharge, OverageCharge, Purchase
from apps.billing.recharge import RESUME_AFTER
from apps.core import clock
from apps.jobs.models import JobRun
from apps.jobs.tasks import TASKS
from apps.wallets.models import CreditGrant
from tests.factories import CreditPackFactory, CreditTypeFactory
from tests.ledger import assert_ledger_sound, give, priced_account, wallet_of
from tests.reliability.load import killed_worker, reaching_offline_stripe, run_on_a_new_worker
from tests.workers import empty_queue

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
D = Decimal


@pytest.fixture
def worker_env(offline_stripe, tmp_path):
    empty_queue()
    return reaching_offline_stripe(tmp_path, offline_stripe.url)


def test_a_worker_killed_mid_overage_invoicing_bills_the_overage_once(
    offline_stripe, worker_env, tmp_path
):
    account, _ = priced_account(external_id="acme", plan=True)
    Subscription.objects.filter(account=account).update(stripe_subscription_id="sub_offline")
    stripe_customer(account=account)
    # A pending charge as a renewal records it. Its grant (here a plain one) matters only as
    # the idempotency key of its Stripe call.
    grant = give(account, 200)
    charge = OverageCharge.objects.create(
        account=account, subscription=Subscription.objects.get(account=account), grant=grant,
        credits=D(200), unit_price=D("0.02"), amount=D("4.00"), currency="USD",
    )  # fmt: skip
    hold = offline_stripe.hold_next_answer("invoiceitems")

    try:  # killed once Stripe has made the item, its answer held back
        with killed_worker(tmp_path / "first.log", hold.reached.is_set, **worker_env):
            TASKS["send_overage_charges"].apply_async()
    finally:
        hold.release()  # to a worker that is gone

    charge.refresh_from_db()
    assert (charge.status, charge.attempts) == (OverageCharge.Status.PENDING, 0)
    (made,) = offline_stripe.all("invoiceitem").values()  # Stripe made it; nobody heard

    rerun = run_on_a_new_worker("send_overage_charges", tmp_path / "second.log", env=worker_env)

    assert (rerun.status, rerun.counts.get("invoice_items")) == (JobRun.Status.SUCCEEDED, 1)
    charge.refresh_from_db()
    assert (charge.status, charge.stripe_invoice_item_id) == (OverageCharge.Status.SENT, made["id"])
    assert list(offline_stripe.all("invoiceitem")) == [made["id"]]  # billed once
    assert made["amount"] == 400
    assert_ledger_sound()
    print(
        f"\nWorker killed mid overage invoicing: the invoice item {made['id']} was made at "
        f"Stripe, its answer lost with the worker, the charge left pending; the next run got "
        f"the same item back by its idempotency key: 1 invoice item at Stripe, charge sent"
    )


def test_a_worker_killed_mid_auto_recharge_charges_and_grants_once(
    offline_stripe, worker_env, tmp_path
):
    pack = CreditPackFactory(code="pack_1000", credits=1000, price="10.00",
                             credit_type=CreditTypeFactory(code="credits"))  # fmt: skip
    sync_stripe_catalog()
    account, _ = priced_account(external_id="acme")
    offline_stripe.run(offline_stripe.save_card, stripe_customer(account=account).id)
    give(account, 150, credit_type=pack.credit_type)  # below the threshold of 200
    pack.refresh_from_db()  # its Stripe price
    recharge = AutoRecharge.objects.create(account=account, credit_pack=pack, threshold=D(200),
                                           monthly_cap=D(100))  # fmt: skip
    hold = offline_stripe.hold_next_answer("payment_intents")

    try:  # killed once Stripe has charged, its answer held back
        with killed_worker(tmp_path / "first.log", hold.reached.is_set, **worker_env):
            TASKS["run_auto_recharges"].apply_async()
    finally:
        hold.release()

    recharge.refresh_from_db()
    assert (recharge.attempt, recharge.charging_since is not None) == (1, True)  # claimed
    (intent,) = offline_stripe.all("payment_intent").values()  # charged; nobody heard
    assert intent["status"] == "succeeded"
    assert not Purchase.objects.filter(account=account, origin="auto_recharge").exists()
    assert wallet_of(account, pack.credit_type).balance == D(150)

    # Until RESUME_AFTER the attempt counts as in flight; then the next run finishes it.
    clock.advance(by=RESUME_AFTER + timedelta(minutes=1))
    rerun = run_on_a_new_worker("run_auto_recharges", tmp_path / "second.log", env=worker_env)

    assert (rerun.status, rerun.counts.get("recharges")) == (JobRun.Status.SUCCEEDED, 1)
    assert list(offline_stripe.all("payment_intent")) == [intent["id"]]  # charged once
    bought = Purchase.objects.get(account=account, origin="auto_recharge")
    assert (bought.status, bought.payment_intent_id) == ("paid", intent["id"])
    assert CreditGrant.objects.filter(reference=intent["id"]).count() == 1  # granted once
    assert wallet_of(account, pack.credit_type).balance == D(1150)
    recharge.refresh_from_db()
    assert recharge.charging_since is None
    assert_ledger_sound()
    print(
        f"\nWorker killed mid auto-recharge: PaymentIntent {intent['id']} succeeded at Stripe, "
        f"its answer lost with the worker, the attempt left claimed; after {RESUME_AFTER} the "
        f"next run got the same intent back by its idempotency key: 1 charge, 1 grant of "
        f"1,000 credits"
    )
