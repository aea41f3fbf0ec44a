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
from apps.catalog.contracts import prices_the_period
from apps.catalog.models import Contract
from apps.core import clock
from apps.core.errors import InvalidInput
from apps.core.outbox import publish
from apps.jobs.counts import JobCounts
from apps.jobs.registry import task_name

from .catalog_sync import price_matches, price_tag, product_of, product_prefix, replace_price
from .gateway import api_key, call_stripe, first_item, subscription_period, to_minor_units

logger = logging.getLogger(__name__)

CONTRACT_PRODUCTS = product_prefix("contract")


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


def _contract(account_id):
    return Contract.objects.filter(account_id=account_id).select_related("stripe_price").first()


def sales_at(*, account_id, plans, at):
    """What a Stripe invoice for the period starting at `at` may bill: the account's contract's
    price when the contract prices the period (live then, with a price in the plan's
    currency: contracts.prices_the_period), else the price of one of `plans` (the
    subscription's plan, or the one scheduled to follow it)."""
    plans = [plan for plan in plans if plan is not None]
    contract = _contract(account_id)
    if prices_the_period(contract, at, currency=plans[0].currency):
        return [_contract_sale(contract, plans[0])]
    return [_plan_sale(plan) for plan in plans]


def starting_sales(*, account_id, plan):
    """What a new Stripe subscription may start at: its plan's price, or its account's
    contract's. Checkout picked one when the session opened (up to half an hour earlier;
    the contract may have started or ended since), and refusing the subscription would leave
    the customer billed for nothing; from its first renewal on, the job and `sales_at` hold
    it to the rule."""
    contract = _contract(account_id)
    priced = contract is not None and contract.price is not None
    return [_plan_sale(plan), *([_contract_sale(contract, plan)] if priced else [])]


def _plan_sale(plan):
    return Sale(tag=price_tag("plan", plan), currency=plan.currency, amount=None,
                plan_code=plan.code, price=plan.price)  # fmt: skip


def _contract_sale(contract, plan):
    return Sale(tag=price_tag("contract", contract), currency=contract.currency,
                amount=to_minor_units(contract.price, contract.currency), plan_code=plan.code,
                price=contract.price)  # fmt: skip


def price_due(*, account_id, plan, at):
    """The Stripe price id a period of `plan` starting at `at` is billed at: the contract's
    when it prices the period (its Stripe price created, or replaced when its price or the
    plan's interval changed), else the plan's."""
    contract = _contract(account_id)
    if not prices_the_period(contract, at, currency=plan.currency):
        return plan.stripe_price_id
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
    plan or another version of one), or the account's contract's when that prices the
    period; without proration, so the period already paid for keeps its price. Returns
    whether Stripe's subscription changed. Called outside any transaction."""
    return _bill(stripe_subscription_id, plan)


def _bill(stripe_subscription_id, plan, *, contracts_only=False):
    """`contracts_only` (the job): move a subscription onto its contract's price or off a
    contract's, and leave any plan price alone (a subscriber kept on an older price of its
    plan stays there). The plan is read here, not by the caller: a switch scheduled or
    cancelled meanwhile is seen."""
    ours = Subscription.objects.select_related("plan", "scheduled_plan").get(
        stripe_subscription_id=stripe_subscription_id
    )
    plan = plan or ours.scheduled_plan or ours.plan
    remote = call_stripe(stripe.Subscription.retrieve, id=stripe_subscription_id).to_dict()
    item = first_item(remote)
    # The next period begins when Stripe's current one ends (ours may lag: a held renewal).
    _, begins = subscription_period(remote)
    wanted = price_due(account_id=ours.account_id, plan=plan, at=begins or ours.current_period_end)
    if contracts_only and wanted == plan.stripe_price_id and not pays_a_contract(item):
        return False
    known = remote.get("metadata") or {}
    metadata = {"plan": plan.code, "plan_version": str(plan.version)}
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


def price_data(price_id):
    """The Stripe data of a price, as dj-stripe mirrors it ({} for one it never saw)."""
    price = djstripe.Price.objects.filter(id=price_id).first() if price_id else None
    return price.stripe_data if price is not None else {}


def pays_a_contract(item):
    """Whether a Stripe subscription item (JSON) is at a contract's price."""
    price = item.get("price") or {}
    product = price.get("product") if isinstance(price, dict) else price_data(price).get("product")
    product = product.get("id") if isinstance(product, dict) else product
    return (product or "").startswith(CONTRACT_PRODUCTS)


def bill_contracts_at_stripe(*, now=None, on_chunk=None):
    """Put every Stripe-backed subscription whose account has a priced contract not yet
    ended, or which pays a contract's price, on the price of its next period (`_bill`). One
    that Stripe refuses, or whose contract is priced in another currency than its plan (not
    billed at Stripe: the plan's price stays), is counted as a failure with the reason and
    tried again on the next run. Returns JobCounts."""
    now = now or clock.now()
    counts = JobCounts()
    on_contract_prices = djstripe.SubscriptionItem.objects.filter(
        price__product__id__startswith=CONTRACT_PRODUCTS
    ).values("subscription_id")
    priced = Q(account__contract__price__isnull=False) & (
        Q(account__contract__ends_at__isnull=True) | Q(account__contract__ends_at__gt=now)
    )
    due = (
        Subscription.objects.filter(
            status__in=Subscription.LIVE_STATUSES, stripe_subscription_id__isnull=False
        )
        .filter(priced | Q(stripe_subscription_id__in=on_contract_prices))
        .select_related("account__contract", "plan", "scheduled_plan")
        .order_by("pk")
    )
    for subscription in due:
        try:
            counts.stripe_prices += _bill(
                subscription.stripe_subscription_id, None, contracts_only=True
            )
        except Exception as error:  # noqa: BLE001 - one subscription costs only itself
            counts.fail(subscription.account.external_id, error)
        if problem := _currency_problem(subscription):
            counts.fail(subscription.account.external_id, problem)
    counts.chunks += 1
    if on_chunk is not None:
        on_chunk(counts)
    return counts


def _currency_problem(subscription):
    """Why a priced contract is not billed at Stripe, if it is not for its currency."""
    contract = getattr(subscription.account, "contract", None)
    plan = subscription.scheduled_plan or subscription.plan
    if contract is None or contract.price is None or contract.currency == plan.currency:
        return None
    problem = InvalidInput(
        f"The contract's price is in {contract.currency} and Stripe bills this subscription in "
        f"{plan.currency}: the plan's price is billed until the contract has a price in "
        f"{plan.currency}."
    )
    logger.warning("%s: %s", subscription.account.external_id, problem.message)
    return problem


def bill_contract_soon(*, account_id):
    """A contract was put, replaced or removed (in the caller's transaction): the job runs
    once it commits, through the outbox (a broker that is down delays it to beat's run)."""
    publish(task_name("bill_contracts_at_stripe"))
