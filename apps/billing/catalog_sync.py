"""Catalog sync: each plan and credit pack as a Stripe Product and Price, mirrored by
dj-stripe and stored on the item (docs/billing.md)."""

from dataclasses import dataclass, field

import stripe
from django.db import transaction
from djstripe import models as djstripe

from apps.catalog.models import CreditPack, Plan
from apps.core.errors import PaymentProviderError

from .gateway import api_key, call_stripe, stripe_request, to_minor_units


@dataclass
class CatalogSync:
    created: list = field(default_factory=list)
    repriced: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    archived: list = field(default_factory=list)

    def summary(self):
        return ", ".join(
            f"{len(items)} {name}"
            for name, items in (("created", self.created), ("repriced", self.repriced),
                                ("unchanged", self.unchanged), ("archived", self.archived))
        )  # fmt: skip


def wanted_price(item):
    wanted = {
        "unit_amount": to_minor_units(item.price, item.currency),
        "currency": item.currency.lower(),
        "recurring": None,
    }
    if isinstance(item, Plan):
        wanted["recurring"] = {"interval": item.billing_interval, "interval_count": 1}
    return wanted


def price_matches(price, wanted):
    data = price.stripe_data
    recurring = data.get("recurring") or None
    return (
        data.get("active", True)
        and data.get("unit_amount") == wanted["unit_amount"]
        and data.get("currency") == wanted["currency"]
        and (recurring or {}).get("interval") == (wanted["recurring"] or {}).get("interval")
    )


def sync_stripe_catalog(*, plans=None, packs=None):
    """Give every active plan (a recurring Price) and credit pack (a one-time Price) a Stripe
    Product and Price, mirrored by dj-stripe and stored on the item. Idempotent: a product's
    id is derived from the item's code; a price that no longer matches the item (Stripe
    prices are immutable) is replaced and the old one archived; inactive items' prices are
    archived. Returns a CatalogSync."""
    report = CatalogSync()
    plans = Plan.objects.all() if plans is None else plans
    packs = CreditPack.objects.all() if packs is None else packs
    for kind, items in (("plan", plans), ("pack", packs)):
        for item in items.select_related("stripe_price"):
            _sync_item(kind, item, report)
    return report


def item_name(kind, item):
    """How Stripe's objects name an item. Each plan version has its own Price (subscribers
    of an earlier version keep paying theirs); version 1 keeps the name it had before plans
    had versions. A contract (one per account, replaced in place) goes by its id."""
    if kind == "contract":
        return str(item.pk)
    return item.code if kind == "pack" or item.version == 1 else item.label


def _title(kind, item):
    """What Stripe's dashboard shows for the item."""
    return str(item) if kind == "contract" else item.name


def price_tag(kind, item):
    """The `creditdesk_item` metadata of the item's Prices: how a Price is known as sold."""
    return f"{kind}:{item_name(kind, item)}"


def _sync_item(kind, item, report):
    name = item_name(kind, item)
    label = f"{kind} {name}"
    current = item.stripe_price
    if not item.active:
        if current is not None and current.stripe_data.get("active", True):
            _archive(current)
            report.archived.append(label)
        return
    wanted = wanted_price(item)
    product = product_of(kind, item)
    if current is not None and price_matches(current, wanted):
        report.unchanged.append(label)
        return
    replace_price(kind=kind, item=item, product_id=product["id"], wanted=wanted, current=current)
    if current is not None:
        report.repriced.append(label)
    else:
        report.created.append(label)


def replace_price(*, kind, item, product_id, wanted, current):
    """A new Stripe Price for `item` (Stripe prices are immutable), mirrored by dj-stripe and
    stored on the item; `current`, the one it replaces, archived. The idempotency key names
    the price and the one it replaces, so a retry after a lost answer gets the same price."""
    name = item_name(kind, item)
    params = {
        "product": product_id,
        "unit_amount": wanted["unit_amount"],
        "currency": wanted["currency"],
        "nickname": _title(kind, item),
        "metadata": {"creditdesk_item": price_tag(kind, item)},
    }
    if wanted["recurring"]:
        params["recurring"] = wanted["recurring"]
    key = f"creditdesk-price-{kind}-{name}-{wanted['unit_amount']}-{wanted['currency']}-"
    key += f"{(wanted['recurring'] or {}).get('interval', 'once')}-{current.id if current else ''}"
    price = call_stripe(stripe.Price.create, idempotency_key=key, **params)
    with transaction.atomic(durable=True):
        mirrored = djstripe.Price.sync_from_stripe_data(price, api_key=api_key())
        type(item).objects.filter(pk=item.pk).update(stripe_price=mirrored)
    if current is not None:
        _archive(current)
    return mirrored


def product_prefix(kind):
    """How the ids of CreditDesk's Stripe Products of `kind` (plan, pack, contract) begin."""
    return f"creditdesk_{kind}_"


def product_of(kind, item):
    """The item's Stripe Product, created with an id derived from its code (so a retry or a
    second sync finds it), its name kept in step."""
    code = item.pk if kind == "contract" else item.code
    product_id = f"{product_prefix(kind)}{code}".replace(".", "_")
    wanted = {"name": _title(kind, item), "metadata": {"creditdesk_item": f"{kind}:{code}"}}
    try:
        product = stripe_request(stripe.Product.retrieve, product_id, missing_ok=True)
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise PaymentProviderError(f"Stripe: {error.user_message}") from None
        product = call_stripe(stripe.Product.create, id=product_id, **wanted)
    except stripe.StripeError as error:
        raise PaymentProviderError(f"Stripe: {error.user_message}") from None
    else:
        if product["name"] != wanted["name"] or not product["active"]:
            product = call_stripe(stripe.Product.modify, id=product_id, active=True, **wanted)
    with transaction.atomic(durable=True):
        djstripe.Product.sync_from_stripe_data(product, api_key=api_key())
    return product


def _archive(price):
    archived = call_stripe(stripe.Price.modify, id=price.id, active=False)
    with transaction.atomic(durable=True):
        djstripe.Price.sync_from_stripe_data(archived, api_key=api_key())
