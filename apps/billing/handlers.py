"""CreditDesk's receivers of dj-stripe's webhook signals. dj-stripe has verified the
signature, re-read the object from Stripe's API and mirrored it before these run (its own
receivers are connected first), inside the transaction that records the event: a receiver
that fails rolls the event back, and Stripe delivers it again. Thin: each reads the mirrored
object and calls a service."""

from djstripe import models as djstripe
from djstripe.event_handlers import djstripe_receiver

from . import purchases, subscriptions


def _mirrored(model, event):
    return model.objects.filter(id=event.data.get("object", {}).get("id")).first()


@djstripe_receiver(
    [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    ]
)
def on_checkout_session(sender, event, **kwargs):
    session = _mirrored(djstripe.Session, event)
    if session is None:
        return
    purchases.record_checkout_session(session=session, event_type=event.type)
    if session.stripe_data.get("subscription"):
        subscriptions.ensure_subscription(stripe_id=session.stripe_data["subscription"])


@djstripe_receiver(
    [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
)
def on_subscription(sender, event, **kwargs):
    subscription = _mirrored(djstripe.Subscription, event)
    if subscription is not None:
        subscriptions.record_stripe_subscription(data=subscription.stripe_data)


@djstripe_receiver(["invoice.paid", "invoice.payment_failed"])
def on_invoice(sender, event, **kwargs):
    invoice = _mirrored(djstripe.Invoice, event)
    if invoice is not None:
        subscriptions.record_invoice(data=invoice.stripe_data)


@djstripe_receiver(["charge.refunded", "charge.refund.updated", "charge.updated"])
def on_charge(sender, event, **kwargs):
    charge = _mirrored(djstripe.Charge, event)
    if charge is not None:
        purchases.record_charge(charge=charge)


@djstripe_receiver(["charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"])
def on_dispute(sender, event, **kwargs):
    dispute = _mirrored(djstripe.Dispute, event)
    if dispute is not None and dispute.payment_intent_id:
        purchases.record_payment_reversal(payment_intent_id=dispute.payment_intent_id)


@djstripe_receiver("payment_intent.succeeded")
def on_payment_intent(sender, event, **kwargs):
    payment_intent = _mirrored(djstripe.PaymentIntent, event)
    if payment_intent is not None:
        purchases.record_payment_intent(payment_intent=payment_intent)
