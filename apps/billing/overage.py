"""Overage billing: the OverageCharges a renewal records (apps/periods/services.py) and the
job that sends them to Stripe as invoice items (docs/billing.md)."""

import stripe

from apps.core import clock
from apps.core.outbox import publish
from apps.jobs.counts import JobCounts
from apps.jobs.registry import task_name

from .checkout import stripe_customer
from .gateway import in_smallest_unit, stripe_request, to_minor_units
from .models import OverageCharge


def record_overage_charges(*, charges):
    """One OverageCharge per `(subscription, overage grant)`, in the renewal's transaction
    (one statement): the charge exists exactly when the debt was settled by billing it. Its
    amount is in what Stripe can bill: cents, or whole yen in a zero-decimal currency."""
    OverageCharge.objects.bulk_create(
        [
            OverageCharge(
                account_id=subscription.account_id,
                subscription=subscription,
                grant=grant,
                credits=grant.amount,
                unit_price=grant.unit_price,
                amount=grant.basis_amount,  # the overage grant's basis: one rounding rule
                currency=grant.currency,
            )
            for subscription, grant in charges
        ]
    )
    _send_soon()


def _send_soon():
    """Queue the job that sends the charges, through the outbox: after the renewal commits,
    and never failing the renewal when the broker is down (beat runs the job anyway)."""
    publish(task_name("send_overage_charges"))


def send_overage_charges(*, now=None, on_chunk=None, chunk_size=100):
    """Send every pending charge to Stripe as an invoice item on its subscription (the next
    invoice carries it). Manual plans have no Stripe invoice: their charges are marked
    not billed for finance to invoice. A Stripe failure leaves the charge pending for the
    next run. The Stripe call is made outside any transaction; the idempotency key (the
    overage grant's id) makes a repeat after a crash return the same invoice item."""
    counts = JobCounts()
    after = 0
    while True:
        charges = list(
            OverageCharge.objects.filter(status=OverageCharge.Status.PENDING, pk__gt=after)
            .select_related("subscription", "account", "grant__wallet__credit_type")
            .order_by("pk")[:chunk_size]
        )
        if not charges:
            break
        for charge in charges:
            # A charge recorded before amounts were kept in the currency's smallest unit
            # (70.35 JPY) is billed rounded, not left pending forever.
            charge.amount = in_smallest_unit(charge.amount, charge.currency)
            _send(charge, counts)
        after = charges[-1].pk
        counts.chunks += 1
        if on_chunk is not None:
            on_chunk(counts)
    return counts


def _send(charge, counts):
    subscription = charge.subscription
    if not subscription.stripe_subscription_id or charge.amount <= 0:
        charge.status = OverageCharge.Status.NOT_BILLED
        charge.note = (
            "Rounds to nothing."
            if charge.amount <= 0
            else "Manual plan: invoice it outside Stripe."
        )
        charge.save(update_fields=["status", "note", "amount"])
        return
    credit_type = charge.grant.wallet.credit_type
    try:
        item = stripe_request(
            stripe.InvoiceItem.create,
            idempotency_key=f"creditdesk-overage-{charge.grant_id}",
            customer=stripe_customer(account=charge.account).id,
            subscription=subscription.stripe_subscription_id,
            amount=to_minor_units(charge.amount, charge.currency),
            currency=charge.currency.lower(),
            description=f"Overage: {charge.credits.normalize()} {credit_type.name} at "
            f"{charge.unit_price.normalize()} {charge.currency}",
            metadata={"creditdesk_account": charge.account.external_id,
                      "creditdesk_grant": str(charge.grant_id)},
        )  # fmt: skip
    except Exception as error:  # noqa: BLE001  (kept pending with the error; retried next run)
        charge.attempts += 1
        charge.note = f"{type(error).__name__}: {error}"[:2000]
        charge.save(update_fields=["attempts", "note"])
        counts.fail(f"overage charge {charge.pk}", error)
        return
    charge.status = OverageCharge.Status.SENT
    charge.stripe_invoice_item_id = item["id"]
    charge.sent_at = clock.now()
    charge.attempts += 1
    charge.save(update_fields=["status", "stripe_invoice_item_id", "sent_at", "attempts", "amount"])
    counts.invoice_items += 1
