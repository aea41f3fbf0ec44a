"""What a Stripe-backed subscription pays: its plan's Stripe Price, or its account's contract's
own when the contract sets a price (docs/contracts.md, "Billed through Stripe").

A period's terms are those in force when it starts (apps/catalog/contracts.period_terms), and
Stripe bills each period at the price its subscription item holds when the period begins, with
no proration. So the item is kept on the price of the *next* period, the one starting at
`current_period_end`: the contract's when the contract is live then, else the plan's. The job
here does it after every contract change (the CONTRACT_CHANGED topic queues it) and hourly (a
contract's window is dated, and each renewal brings a new next period). An invoice is
checked against the same rule (`sales_at`) before anything is granted for it."""

import logging
from dataclasses import dataclass
from decimal import Decimal

import stripe
from django.db import transaction
from django.db.models import Q
from djstripe import models as djstripe

from apps.accounts.models import Subscription
from apps.catalog.models import Contract
from apps.core.errors import DomainError, InvalidInput
from apps.core.outbox import publish
from apps.jobs.counts import JobCounts
from apps.jobs.registry import task_name

from .catalog_sync import price_matches, price_tag, product_of, replace_price
from .gateway import api_key, call_stripe, to_minor_units

logger = logging.getLogger(__name__)

CONTRACT_PRODUCTS = "creditdesk_contract_"  # the id prefix of contracts' Stripe Products


@dataclass(frozen=True)
class Sale:
    """A Stripe price an invoice may bill as sold: the price's tag (`creditdesk_item`), the
    amount in the currency's smallest unit (None: the price's own, as for a plan version,
    whose price never changes once sold) and what `purchase.mismatch` reports as sold."""

    tag: str
    currency: str
    amount: int | None
    plan_code: str
    price: Decimal

    def matches(self, line, price_data):
        """Whether an invoice line at a Stripe price (`price_data`) bills this sale."""
        tag = (price_data.get("metadata") or {}).get("creditdesk_item")
        amount = price_data.get("unit_amount") if self.amount is None else self.amount
        return (
            tag == self.tag
            and line.get("quantity") == 1
            and line.get("amount") == amount
            and (line.get("currency") or "").upper() == self.currency
        )


def _live_priced_contract(account_id, at):
    contract = Contract.objects.filter(account_id=account_id).select_related("stripe_price").first()
    if contract is None or contract.price is None or not contract.live_at(at):
        return None
    return contract


def sales_at(*, account_id, plans, at):
    """What a Stripe invoice for the period starting at `at` may bill: the account's contract's
    price when the contract is live then and sets one, else the price of one of `plans` (the
    subscription's plan, or the one scheduled to follow it)."""
    plans = [plan for plan in plans if plan is not None]
    contract = _live_priced_contract(account_id, at)
    if contract is not None:
        code = plans[0].code if plans else ""
        return [
            Sale(tag=price_tag("contract", contract), currency=contract.currency,
                 amount=to_minor_units(contract.price, contract.currency), plan_code=code,
                 price=contract.price)
        ]  # fmt: skip
    return [
        Sale(tag=price_tag("plan", plan), currency=plan.currency, amount=None,
             plan_code=plan.code, price=plan.price)
        for plan in plans
    ]  # fmt: skip


def price_due(*, account_id, plan, at):
    """The Stripe price id a period of `plan` starting at `at` is billed at: the contract's
    (created or replaced at Stripe when its price or the plan's interval changed) when a
    priced contract is live then, else the plan's. A contract in another currency than the
    plan's is refused: Stripe bills a subscription in one currency."""
    contract = _live_priced_contract(account_id, at)
    if contract is None:
        return plan.stripe_price_id
    if contract.currency != plan.currency:
        raise InvalidInput(
            f"The contract's price is in {contract.currency} and Stripe bills this "
            f"subscription in {plan.currency}: give the contract a price in {plan.currency}.",
            details={"currency": ["not the subscription's currency"]},
        )
    wanted = {
        "unit_amount": to_minor_units(contract.price, contract.currency),
        "currency": contract.currency.lower(),
        "recurring": {"interval": plan.billing_interval, "interval_count": 1},
    }
    current = contract.stripe_price
    if current is not None and price_matches(current, wanted):
        return current.id
    product = product_of("contract", contract)
    return replace_price(
        kind="contract", item=contract, product_id=product["id"], wanted=wanted, current=current
    ).id


def bill_at_stripe(*, stripe_subscription_id, plan):
    """Stripe bills the subscription's next period at what it sells for: `plan`'s price (a
    plan or another version of one), or the account's contract's when that is live when the
    period starts; without proration, so the period already paid for keeps its price. Returns
    whether Stripe's subscription changed. Called outside any transaction."""
    ours = Subscription.objects.get(stripe_subscription_id=stripe_subscription_id)
    wanted = price_due(account_id=ours.account_id, plan=plan, at=ours.current_period_end)
    remote = call_stripe(stripe.Subscription.retrieve, id=stripe_subscription_id)
    item = remote["items"]["data"][0]
    metadata = {"plan": plan.code, "plan_version": str(plan.version)}
    known = dict(remote.get("metadata") or {})
    if stripe_price_id(item) == wanted and known == {**known, **metadata}:
        return False
    changed = call_stripe(
        stripe.Subscription.modify,
        id=stripe_subscription_id,
        items=[{"id": item["id"], "price": wanted}],
        proration_behavior="none",
        metadata=metadata,
    )
    with transaction.atomic(durable=True):
        djstripe.Subscription.sync_from_stripe_data(changed, api_key=api_key())
    return True


def stripe_price_id(item):
    """The price id of a Stripe subscription item or invoice line (a Price, or its id)."""
    price = ((item.get("pricing") or {}).get("price_details") or {}).get("price") or item.get(
        "price"
    )
    return price if price is None or isinstance(price, str) else price["id"]


def bill_contracts_at_stripe(*, now=None, on_chunk=None):
    """Put every Stripe-backed subscription whose account has a priced contract, or which
    pays a contract's price, on the price of its next period (`bill_at_stripe`). One that
    Stripe refuses, or whose contract is in another currency, is counted as a failure and
    tried again on the next run. Returns JobCounts."""
    counts = JobCounts()
    on_contract_prices = djstripe.SubscriptionItem.objects.filter(
        price__product__id__startswith=CONTRACT_PRODUCTS
    ).values("subscription_id")
    due = (
        Subscription.objects.filter(
            status__in=Subscription.LIVE_STATUSES, stripe_subscription_id__isnull=False
        )
        .filter(
            Q(account__contract__price__isnull=False)
            | Q(stripe_subscription_id__in=on_contract_prices)
        )
        .select_related("account", "plan", "scheduled_plan")
        .order_by("pk")
    )
    for subscription in due:
        try:
            changed = bill_at_stripe(
                stripe_subscription_id=subscription.stripe_subscription_id,
                plan=subscription.scheduled_plan or subscription.plan,
            )
        except DomainError as error:
            counts.fail(subscription.account.external_id, error)
        else:
            counts.stripe_prices += changed
    counts.chunks += 1
    if on_chunk is not None:
        on_chunk(counts)
    return counts


def bill_contract_soon(*, account_id):
    """A contract was put, replaced or removed (in the caller's transaction): the job runs
    once it commits, through the outbox (a broker that is down delays it to beat's run)."""
    publish(task_name("bill_contracts_at_stripe"))
