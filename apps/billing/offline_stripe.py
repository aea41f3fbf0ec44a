"""The offline Stripe: a small stand-in for Stripe's HTTP API, for the demo (`make run`, no
keys configured) and the tests. The real `stripe` client talks to it over HTTP (its
`api_base` points here); it answers the calls CreditDesk and dj-stripe make with
Stripe-shaped JSON, serves a local "pay" page for Checkout Sessions, and sends the resulting
events to every registered webhook endpoint, signed exactly as Stripe signs them
(`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`), so they pass
through dj-stripe's real webhook view.

It keeps its objects in memory (and, for the demo, in a JSON file so a restart keeps them).
It is not a Stripe emulator: it knows the objects and the few state changes this project
uses, and answers everything else with Stripe's 404 error. `/_offline/...` routes play what
happens outside the API in real Stripe (a renewal, a failed payment, a dispute).
"""

import hashlib
import hmac
import html
import json
import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests

from apps.periods.calendar import boundary

logger = logging.getLogger(__name__)

API_VERSION = "2026-05-27.dahlia"  # dj-stripe 2.11's default
ACCOUNT_ID = "acct_offline"

PREFIXES = {
    "product": "prod",
    "price": "price",
    "customer": "cus",
    "checkout.session": "cs_test",
    "payment_intent": "pi",
    "payment_method": "pm",
    "charge": "ch",
    "refund": "re",
    "dispute": "dp",
    "subscription": "sub",
    "subscription_item": "si",
    "invoice": "in",
    "invoiceitem": "ii",
    "event": "evt",
    "webhook_endpoint": "we",
}

# REST resource path -> object type
RESOURCES = {
    "products": "product",
    "prices": "price",
    "customers": "customer",
    "checkout/sessions": "checkout.session",
    "payment_intents": "payment_intent",
    "payment_methods": "payment_method",
    "charges": "charge",
    "refunds": "refund",
    "disputes": "dispute",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "invoiceitems": "invoiceitem",
    "events": "event",
    "webhook_endpoints": "webhook_endpoint",
}


def sign(payload, secret, timestamp=None):
    """The `Stripe-Signature` header Stripe sends with `payload` (a str) for an endpoint."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def decode_form(body):
    """Stripe's form encoding (`metadata[a]=b`, `line_items[0][price]=p`) back to JSON-like
    data: bracketed integer keys become lists."""
    root = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head, _, rest = key.partition("[")
        path = [head] + (rest[:-1].split("][") if rest else [])
        node = root
        for part, following in zip(path, path[1:] + [None], strict=True):
            if following is None:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


class StripeError(Exception):
    def __init__(self, status, message, *, code=None, param=None, kind="invalid_request_error"):
        super().__init__(message)
        self.status, self.body = (
            status,
            {"error": {"type": kind, "message": message, "code": code, "param": param}},
        )


def _missing(kind, object_id):
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id")


def _flag(value):
    return value in (True, "true", "True", "1")


class OfflineStripe:
    """The stand-in's state and its operations. `deliver(event)` sends an event; by default to
    every registered endpoint over HTTP (tests pass their own to hold events back)."""

    def __init__(self, *, state_file=None, deliver=None):
        self.lock = threading.RLock()
        self.state_file = Path(state_file) if state_file else None
        self.deliver = deliver or self.post_to_endpoints
        self.objects = {}
        self.idempotent = {}  # Idempotency-Key -> answer, replayed as Stripe does
        if self.state_file and self.state_file.exists():
            self.objects = json.loads(self.state_file.read_text())

    # --- storage ---------------------------------------------------------------------------

    def reset(self):
        with self.lock:
            self.objects = {}
            self.idempotent = {}

    def _save(self):
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.objects))
            tmp.replace(self.state_file)

    def all(self, kind):
        return self.objects.setdefault(kind, {})

    def get(self, kind, object_id):
        found = self.all(kind).get(object_id)
        if found is None:
            raise _missing(kind.replace("checkout.", ""), object_id)
        return found

    def new(self, kind, object_id=None, **fields):
        object_id = object_id or f"{PREFIXES[kind]}_{secrets.token_hex(12)}"
        if object_id in self.all(kind):
            raise StripeError(
                400, f"A {kind} with id {object_id} already exists.", code="resource_already_exists"
            )
        obj = {
            "id": object_id,
            "object": kind,
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
        }
        obj.update(fields)
        self.all(kind)[object_id] = obj
        return obj

    # --- events ----------------------------------------------------------------------------

    def emit(self, event_type, obj, previous=None):
        data = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        event = self.new(
            "event",
            type=event_type,
            api_version=API_VERSION,
            data=data,
            pending_webhooks=len(self.endpoints()),
            request={"id": None, "idempotency_key": None},
        )
        event.pop("metadata")
        self._outbox.append(event)
        return event

    def endpoints(self):
        return [e for e in self.all("webhook_endpoint").values() if e["status"] == "enabled"]

    def post_to_endpoints(self, event):
        """Send like Stripe: to each enabled endpoint, signed with its secret; a failure is
        retried a few times with backoff in the background."""
        payload = json.dumps(event)
        for endpoint in self.endpoints():
            wanted = endpoint["enabled_events"]
            if "*" not in wanted and event["type"] not in wanted:
                continue
            threading.Thread(
                target=self._post, args=(endpoint, payload), daemon=True, name="offline-webhook"
            ).start()

    @staticmethod
    def _post(endpoint, payload, attempts=6):
        for attempt in range(attempts):
            try:
                answer = requests.post(
                    endpoint["url"],
                    data=payload.encode(),
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "Stripe-Signature": sign(payload, endpoint["secret"]),
                        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    },
                    timeout=30,
                    allow_redirects=False,
                )
                if 200 <= answer.status_code < 300:
                    return
                logger.warning("webhook to %s answered %s", endpoint["url"], answer.status_code)
            except requests.RequestException as error:
                logger.warning("webhook to %s failed: %s", endpoint["url"], error)
            time.sleep(2**attempt)

    def run(self, operation, *args, **kwargs):
        """One operation under the lock; its events go out after the state is saved."""
        with self.lock:
            self._outbox = []
            try:
                result = operation(*args, **kwargs)
            finally:
                events, self._outbox = self._outbox, []
                self._save()
        for event in events:
            self.deliver(event)
        return result

    # --- API objects -----------------------------------------------------------------------

    def account(self):
        return {
            "id": ACCOUNT_ID,
            "object": "account",
            "business_profile": {"name": "CreditDesk (offline Stripe)"},
            "charges_enabled": True,
            "payouts_enabled": False,
            "country": "US",
            "default_currency": "usd",
            "details_submitted": True,
            "email": None,
            "settings": {"dashboard": {"display_name": "CreditDesk (offline)"}},
            "type": "standard",
            "metadata": {},
            "created": 0,
        }

    def create(self, kind, params):
        create = getattr(self, f"create_{kind.replace('.', '_')}", None)
        if create is None:
            raise StripeError(404, f"Unrecognized request URL (POST: /v1/{kind}s)")
        return create(params)

    def update(self, kind, object_id, params):
        if kind == "subscription" and "items" in params:
            return self.change_subscription_price(object_id, params)
        obj = self.get(kind, object_id)
        previous = {k: obj.get(k) for k in params if k != "expand"}
        for key, value in params.items():
            if key == "expand":
                continue
            if key == "metadata":
                obj["metadata"] = {**obj["metadata"], **value}
                obj["metadata"] = {k: v for k, v in obj["metadata"].items() if v != ""}
            elif key in ("active", "cancel_at_period_end", "livemode"):
                obj[key] = _flag(value)
            else:
                obj[key] = value
        if kind == "subscription" and "cancel_at_period_end" in params:
            self.emit("customer.subscription.updated", obj, previous)
        elif kind in ("product", "price", "customer"):
            self.emit(f"{kind}.updated", obj, previous)
        return obj

    def create_product(self, params):
        product = self.new(
            "product",
            params.get("id"),
            name=params.get("name", ""),
            description=params.get("description") or None,
            active=_flag(params.get("active", True)),
            metadata=params.get("metadata", {}),
            type="service",
            images=[],
            url=None,
            updated=int(time.time()),
        )
        self.emit("product.created", product)
        return product

    def create_price(self, params):
        recurring = params.get("recurring")
        if recurring:
            recurring = {
                "interval": recurring["interval"],
                "interval_count": int(recurring.get("interval_count", 1)),
                "usage_type": "licensed",
                "aggregate_usage": None,
                "meter": None,
            }
        self.get("product", params["product"])
        price = self.new(
            "price",
            product=params["product"],
            unit_amount=int(params["unit_amount"]),
            unit_amount_decimal=str(params["unit_amount"]),
            currency=params["currency"].lower(),
            active=_flag(params.get("active", True)),
            type="recurring" if recurring else "one_time",
            recurring=recurring,
            billing_scheme="per_unit",
            nickname=params.get("nickname"),
            lookup_key=params.get("lookup_key"),
            tax_behavior="unspecified",
            metadata=params.get("metadata", {}),
        )
        self.emit("price.created", price)
        return price

    def create_customer(self, params):
        customer = self.new(
            "customer",
            email=params.get("email") or None,
            name=params.get("name") or None,
            description=params.get("description") or None,
            metadata=params.get("metadata", {}),
            balance=0,
            currency=None,
            delinquent=False,
            invoice_settings={"default_payment_method": None},
            default_source=None,
        )
        self.emit("customer.created", customer)
        return customer

    def create_checkout_session(self, params):
        mode = params.get("mode", "payment")
        items = params.get("line_items") or []
        if len(items) != 1:
            raise StripeError(400, "Give exactly one line item.", param="line_items")
        price = self.get("price", items[0]["price"])
        quantity = int(items[0].get("quantity", 1))
        if (mode == "subscription") != (price["type"] == "recurring"):
            raise StripeError(400, f"A {price['type']} price cannot be used in {mode} mode.")
        customer = params.get("customer")
        if customer:
            self.get("customer", customer)
        session = self.new(
            "checkout.session",
            mode=mode,
            status="open",
            payment_status="unpaid",
            customer=customer,
            customer_email=params.get("customer_email"),
            client_reference_id=params.get("client_reference_id"),
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
            currency=price["currency"],
            amount_subtotal=price["unit_amount"] * quantity,
            amount_total=price["unit_amount"] * quantity,
            metadata=params.get("metadata", {}),
            payment_intent=None,
            subscription=None,
            invoice=None,
            expires_at=int(params.get("expires_at") or time.time() + 24 * 3600),
            # What the pay page shows and completes with (not in Stripe's object).
            line_items_offline=[{"price": price["id"], "quantity": quantity}],
            payment_intent_data=params.get("payment_intent_data", {}),
            subscription_data=params.get("subscription_data", {}),
            setup_future_usage=(params.get("payment_intent_data") or {}).get("setup_future_usage"),
        )
        session["url"] = f"{self.base_url}/pay/{session['id']}"
        return session

    def create_refund(self, params):
        charge = self.get(
            "charge",
            params.get("charge")
            or self.get("payment_intent", params["payment_intent"])["latest_charge"],
        )
        left = charge["amount"] - charge["amount_refunded"]
        amount = int(params.get("amount", left))
        if not 0 < amount <= left:
            raise StripeError(400, f"Refund amount must be 1-{left}.", param="amount")
        refund = self.new(
            "refund",
            amount=amount,
            charge=charge["id"],
            payment_intent=charge["payment_intent"],
            currency=charge["currency"],
            status="succeeded",
            reason=params.get("reason"),
            metadata=params.get("metadata", {}),
        )
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.emit("refund.created", refund)
        self.emit("charge.refunded", charge, previous)
        return refund

    def create_webhook_endpoint(self, params):
        return self.new(
            "webhook_endpoint",
            url=params["url"],
            enabled_events=params.get("enabled_events") or ["*"],
            api_version=params.get("api_version") or API_VERSION,
            description=params.get("description"),
            metadata=params.get("metadata", {}),
            status="enabled",
            application=None,
            secret=f"whsec_{secrets.token_hex(24)}",
        )

    def create_payment_intent(self, params):
        """An off-session charge of a saved card (auto-recharge): succeeds at once unless the
        card was saved as a declining one."""
        customer = self.get("customer", params["customer"])
        method = (
            params.get("payment_method") or customer["invoice_settings"]["default_payment_method"]
        )
        if not method:
            raise StripeError(400, "The customer has no saved payment method.", kind="card_error")
        declines = self.get("payment_method", method)["card"]["last4"] == "0002"
        intent = self._payment(
            customer["id"],
            int(params["amount"]),
            params["currency"],
            metadata=params.get("metadata", {}),
            payment_method=method,
            succeeded=not declines,
        )
        if declines:
            raise StripeError(
                402,
                "Your card was declined.",
                code="card_declined",
                kind="card_error",
                param="payment_method",
            )
        return intent

    def change_subscription_price(self, object_id, params):
        """A plan switch (`items[0][id]`, `items[0][price]`): the item moves to the new price
        at once, as Stripe does with proration (the proration itself is not modelled)."""
        subscription = self.get("subscription", object_id)
        wanted = params["items"][0]
        item = next((i for i in subscription["items"]["data"] if i["id"] == wanted.get("id")),
                    None)  # fmt: skip
        if item is None:
            raise StripeError(400, "No such subscription item.", param="items[0][id]")
        price = self.get("price", wanted["price"])
        previous = {"items": json.loads(json.dumps(subscription["items"]))}
        item["price"] = price
        if params.get("metadata"):
            subscription["metadata"] = {**subscription["metadata"], **params["metadata"]}
            previous["metadata"] = {}
        self.emit("customer.subscription.updated", subscription, previous)
        return subscription

    def cancel_subscription(self, object_id):
        subscription = self.get("subscription", object_id)
        previous = {"status": subscription["status"]}
        now = int(time.time())
        subscription.update(status="canceled", ended_at=now, canceled_at=now)
        self.emit("customer.subscription.deleted", subscription, previous)
        return subscription

    # --- what the customer or the world does -----------------------------------------------

    @property
    def base_url(self):
        return getattr(self, "_base_url", "http://127.0.0.1:12111")

    def pay(self, session_id, *, card="4242"):
        """The customer pays a Checkout Session (the pay page's button)."""
        session = self.get("checkout.session", session_id)
        if session["status"] != "open":
            raise StripeError(400, "This Checkout Session is no longer open.")
        customer = (
            session["customer"]
            or self.create_customer({"email": session.get("customer_email") or ""})["id"]
        )
        method = self.new(
            "payment_method",
            type="card",
            customer=customer,
            card={
                "brand": "visa",
                "last4": card,
                "exp_month": 12,
                "exp_year": 2034,
                "country": "US",
                "funding": "credit",
            },  # fmt: skip
            billing_details={"email": session.get("customer_email"), "name": None},
        )
        item = session["line_items_offline"][0]
        price = self.get("price", item["price"])
        amount = price["unit_amount"] * item["quantity"]
        session.update(customer=customer, status="complete", payment_status="paid")
        if session["mode"] == "payment":
            intent = self._payment(
                customer,
                amount,
                price["currency"],
                metadata=session["payment_intent_data"].get("metadata", {}),
                payment_method=method["id"],
            )
            session["payment_intent"] = intent["id"]
            if session["setup_future_usage"]:
                self._save_card(customer, method)
        else:
            self._save_card(customer, method)
            subscription = self._subscribe(session, customer, price, item["quantity"])
            session["subscription"] = subscription["id"]
            session["invoice"] = subscription["latest_invoice"]
        self.emit("checkout.session.completed", session)
        return session

    def fail_async(self, session_id):
        """The customer pays by a delayed method (a bank debit): the session completes
        unpaid, and the payment fails days later."""
        session = self.get("checkout.session", session_id)
        if session["status"] != "open":
            raise StripeError(400, "This Checkout Session is no longer open.")
        session.update(status="complete", payment_status="unpaid")
        self.emit("checkout.session.completed", session)
        self.emit("checkout.session.async_payment_failed", session)
        return session

    def expire_session(self, session_id):
        """A Checkout Session nobody paid reaches its expires_at (or is expired by the API)."""
        session = self.get("checkout.session", session_id)
        if session["status"] != "open":
            raise StripeError(400, "Only an open Checkout Session can be expired.")
        session["status"] = "expired"
        self.emit("checkout.session.expired", session)
        return session

    def _save_card(self, customer_id, method):
        customer = self.get("customer", customer_id)
        previous = {"invoice_settings": dict(customer["invoice_settings"])}
        customer["invoice_settings"]["default_payment_method"] = method["id"]
        self.emit("payment_method.attached", method)
        self.emit("customer.updated", customer, previous)

    def _payment(self, customer, amount, currency, *, metadata, payment_method, succeeded=True,
                 description=None):  # fmt: skip
        intent = self.new(
            "payment_intent",
            amount=amount,
            amount_received=amount if succeeded else 0,
            currency=currency,
            customer=customer,
            description=description,
            metadata=metadata,
            payment_method=payment_method,
            payment_method_types=["card"],
            status="succeeded" if succeeded else "requires_payment_method",
            capture_method="automatic",
            confirmation_method="automatic",
            latest_charge=None,
            last_payment_error=None if succeeded else {"code": "card_declined"},
        )
        charge = self.new(
            "charge",
            amount=amount,
            amount_captured=amount if succeeded else 0,
            amount_refunded=0,
            currency=currency,
            customer=customer,
            payment_intent=intent["id"],
            payment_method=payment_method,
            paid=succeeded,
            captured=succeeded,
            refunded=False,
            disputed=False,
            status="succeeded" if succeeded else "failed",
            failure_code=None if succeeded else "card_declined",
            failure_message=None if succeeded else "Your card was declined.",
            balance_transaction=None,
            billing_details={"email": None, "name": None, "address": None, "phone": None},
            payment_method_details={"type": "card", "card": {"brand": "visa", "last4": "4242"}},
            outcome={"type": "authorized" if succeeded else "issuer_declined"},
            description=description,
            metadata=metadata,
        )
        intent["latest_charge"] = charge["id"]
        self.emit("charge.succeeded" if succeeded else "charge.failed", charge)
        self.emit(
            "payment_intent.succeeded" if succeeded else "payment_intent.payment_failed", intent
        )
        return intent

    def _subscribe(self, session, customer, price, quantity):
        now = int(time.time())
        start, end = self._period(price, now, 0), self._period(price, now, 1)
        subscription = self.new(
            "subscription",
            customer=customer,
            status="active",
            cancel_at_period_end=False,
            canceled_at=None,
            ended_at=None,
            billing_cycle_anchor=now,
            collection_method="charge_automatically",
            current_period_start=start,
            current_period_end=end,
            start_date=now,
            latest_invoice=None,
            default_payment_method=self.get("customer", customer)["invoice_settings"][
                "default_payment_method"
            ],
            metadata=session["subscription_data"].get("metadata", {}),
            items={"object": "list", "data": [], "has_more": False},
        )
        subscription["items"]["data"].append(
            {
                "id": f"si_{secrets.token_hex(7)}",
                "object": "subscription_item",
                "price": price,
                "quantity": quantity,
                "subscription": subscription["id"],
                "current_period_start": start,
                "current_period_end": end,
                "created": now,
                "metadata": {},
            }
        )
        self.emit("customer.subscription.created", subscription)
        self._invoice(subscription, "subscription_create")
        return subscription

    @staticmethod
    def _period(price, anchor, index):
        moment = boundary(
            anchor=datetime.fromtimestamp(anchor, UTC),
            interval=price["recurring"]["interval"],
            index=index,
        )
        return int(moment.timestamp())

    def _invoice(self, subscription, reason, *, succeeded=True):
        item = subscription["items"]["data"][0]
        price, quantity = item["price"], item["quantity"]
        amount = price["unit_amount"] * quantity
        pending = [
            i for i in self.all("invoiceitem").values()
            if i["customer"] == subscription["customer"] and i["invoice"] is None
        ]  # fmt: skip
        amount += sum(i["amount"] for i in pending)
        period = {"start": item["current_period_start"], "end": item["current_period_end"]}
        invoice = self.new(
            "invoice",
            customer=subscription["customer"],
            status="draft",
            billing_reason=reason,
            collection_method="charge_automatically",
            currency=price["currency"],
            amount_due=amount,
            amount_paid=0,
            amount_remaining=amount,
            subtotal=amount,
            total=amount,
            attempt_count=0,
            attempted=False,
            paid=False,
            period_start=period["start"],
            period_end=period["end"],
            parent={
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": subscription["id"],
                    "metadata": subscription["metadata"],
                },
            },
            lines={
                "object": "list",
                "has_more": False,
                "data": [
                    {
                        "id": f"il_{secrets.token_hex(7)}",
                        "object": "line_item",
                        "amount": price["unit_amount"] * quantity,
                        "currency": price["currency"],
                        "quantity": quantity,
                        "period": period,
                        "pricing": {"price_details": {"price": price["id"]}},
                        "description": f"{quantity} × {price.get('nickname') or price['id']}",
                    }
                ]
                + [
                    {
                        "id": f"il_{i['id']}",
                        "object": "line_item",
                        "amount": i["amount"],
                        "currency": i["currency"],
                        "quantity": 1,
                        "period": period,
                        "description": i["description"],
                        "invoice_item": i["id"],
                    }
                    for i in pending
                ],
            },
            hosted_invoice_url=f"{self.base_url}/invoices/{{id}}",
            invoice_pdf=None,
            number=f"OFFLINE-{len(self.all('invoice')) + 1:04d}",
            status_transitions={"paid_at": None, "finalized_at": int(time.time())},
            webhooks_delivered_at=int(time.time()),
        )
        invoice["hosted_invoice_url"] = f"{self.base_url}/invoices/{invoice['id']}"
        for i in pending:
            i["invoice"] = invoice["id"]
        intent = self._payment(
            subscription["customer"],
            amount,
            price["currency"],
            metadata={},
            payment_method=subscription["default_payment_method"],
            succeeded=succeeded,
            description=f"Invoice {invoice['number']}",
        )
        invoice["payments"] = {
            "object": "list",
            "data": [{"payment": {"type": "payment_intent", "payment_intent": intent["id"]}}],
        }
        invoice.update(attempt_count=1, attempted=True)
        subscription["latest_invoice"] = invoice["id"]
        if succeeded:
            invoice.update(status="paid", paid=True, amount_paid=amount, amount_remaining=0)
            invoice["status_transitions"]["paid_at"] = int(time.time())
            self.emit("invoice.paid", invoice)
            self.emit("invoice.payment_succeeded", invoice)
        else:
            invoice.update(status="open")
            self.emit("invoice.payment_failed", invoice)
        return invoice

    def renew(self, subscription_id, *, succeeded=True):
        """The subscription's period ends: Stripe moves it on and bills the new period."""
        subscription = self.get("subscription", subscription_id)
        if subscription["status"] == "canceled":
            raise StripeError(400, "A canceled subscription does not renew.")
        item = subscription["items"]["data"][0]
        previous = {
            "current_period_start": subscription["current_period_start"],
            "current_period_end": subscription["current_period_end"],
            "status": subscription["status"],
        }
        if subscription["cancel_at_period_end"]:
            subscription.update(status="canceled", ended_at=subscription["current_period_end"])
            self.emit("customer.subscription.deleted", subscription, previous)
            return subscription
        anchor, end = subscription["billing_cycle_anchor"], subscription["current_period_end"]
        index = 1
        while self._period(item["price"], anchor, index) <= end:
            index += 1
        new_end = self._period(item["price"], anchor, index)
        for holder in (subscription, item):
            holder.update(current_period_start=end, current_period_end=new_end)
        self._invoice(subscription, "subscription_cycle", succeeded=succeeded)
        subscription["status"] = "active" if succeeded else "past_due"
        self.emit("customer.subscription.updated", subscription, previous)
        return subscription

    def retry_invoice(self, invoice_id):
        """A past-due invoice paid after all (the customer updated the card)."""
        invoice = self.get("invoice", invoice_id)
        if invoice["status"] != "open":
            raise StripeError(400, "Only an open invoice can be paid.")
        subscription_id = invoice["parent"]["subscription_details"]["subscription"]
        subscription = self.get("subscription", subscription_id)
        self._payment(
            invoice["customer"],
            invoice["amount_due"],
            invoice["currency"],
            metadata={},
            payment_method=subscription["default_payment_method"],
            description=f"Invoice {invoice['number']}",
        )
        invoice.update(status="paid", paid=True, amount_paid=invoice["amount_due"],
                       amount_remaining=0, attempt_count=invoice["attempt_count"] + 1)  # fmt: skip
        invoice["status_transitions"]["paid_at"] = int(time.time())
        self.emit("invoice.paid", invoice)
        previous = {"status": subscription["status"]}
        subscription["status"] = "active"
        self.emit("customer.subscription.updated", subscription, previous)
        return invoice

    def dispute(self, charge_id, *, amount=None, status="needs_response"):
        """A chargeback (`needs_response`) or an inquiry (`warning_needs_response`)."""
        charge = self.get("charge", charge_id)
        dispute = self.new(
            "dispute",
            charge=charge["id"],
            payment_intent=charge["payment_intent"],
            amount=int(amount or charge["amount"]),
            currency=charge["currency"],
            reason="fraudulent",
            status=status,
            is_charge_refundable=False,
            balance_transactions=[],
            evidence={},
            evidence_details={
                "due_by": int(time.time()) + 7 * 86400,
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },  # fmt: skip
        )
        charge["disputed"] = True
        self.emit("charge.dispute.created", dispute)
        return dispute

    def close_dispute(self, dispute_id, status):
        """The bank decided (`won`, `lost`) or an inquiry ended (`warning_closed`)."""
        dispute = self.get("dispute", dispute_id)
        if status not in ("won", "lost", "warning_closed"):
            raise StripeError(400, "A dispute closes as won, lost or warning_closed.")
        previous = {"status": dispute["status"]}
        dispute["status"] = status
        self.emit("charge.dispute.closed", dispute, previous)
        return dispute

    def create_invoiceitem(self, params):
        self.get("customer", params["customer"])
        return self.new(
            "invoiceitem",
            customer=params["customer"],
            subscription=params.get("subscription"),
            amount=int(params["amount"]),
            currency=params["currency"].lower(),
            description=params.get("description"),
            metadata=params.get("metadata", {}),
            invoice=None,
            period={"start": int(time.time()), "end": int(time.time())},
            quantity=1,
        )


# --- HTTP ----------------------------------------------------------------------------------


class OfflineStripeApp:
    """The WSGI application in front of an `OfflineStripe`."""

    def __init__(self, stripe):
        self.stripe = stripe

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        query = environ.get("QUERY_STRING", "")
        try:
            if path.startswith("/v1/"):
                if not environ.get("HTTP_AUTHORIZATION", "").startswith("Bearer sk_"):
                    raise StripeError(401, "Invalid API Key provided.")
                key = environ.get("HTTP_IDEMPOTENCY_KEY")
                replayed = self.stripe.idempotent.get(key) if method == "POST" else None
                if replayed is None:
                    params = decode_form(body if method == "POST" else query)
                    answer = self.stripe.run(self.api, method, path[4:], params)
                    if key and method == "POST":
                        self.stripe.idempotent[key] = answer
                return self._json(start_response, 200, replayed or answer)
            if path.startswith("/pay/"):
                return self.pay_page(start_response, method, path[5:], decode_form(body))
            if path.startswith("/_offline/") and method == "POST":
                return self._json(
                    start_response, 200, self.stripe.run(self.control, path[10:], decode_form(body))
                )
            if path in ("", "/"):
                return self._html(start_response, 200, "Offline Stripe", "<p>Running.</p>")
            raise _missing("route", path)
        except StripeError as error:
            return self._json(start_response, error.status, error.body)

    def api(self, method, path, params):
        stripe = self.stripe
        if path == "account" and method == "GET":
            return stripe.account()
        for prefix, kind in sorted(RESOURCES.items(), key=lambda r: -len(r[0])):
            if path == prefix:
                if method == "POST":
                    return stripe.create(kind, params)
                return self._list(kind, params)
            if path.startswith(prefix + "/"):
                object_id, _, nested = path[len(prefix) + 1 :].partition("/")
                if nested:  # a nested list (a customer's cards, a product's features)
                    if method != "GET" or "/" in nested:
                        break
                    stripe.get(kind, object_id)
                    found = []
                    if (kind, nested) == ("customer", "payment_methods"):
                        found = [m for m in stripe.all("payment_method").values()
                                 if m["customer"] == object_id]  # fmt: skip
                    return {"object": "list", "url": f"/v1/{path}", "has_more": False,
                            "data": found}  # fmt: skip
                if method == "GET":
                    return stripe.get(kind, object_id)
                if method == "POST":
                    return stripe.update(kind, object_id, params)
                if method == "DELETE" and kind == "subscription":
                    return stripe.cancel_subscription(object_id)
                break
        raise StripeError(404, f"Unrecognized request URL ({method}: /v1/{path})")

    def _list(self, kind, params):
        limit = int(params.get("limit", 10))
        found = [
            o for o in self.stripe.all(kind).values()
            if all(str(o.get(k)) == v for k, v in params.items()
                   if k not in ("limit", "starting_after", "expand"))
        ]  # fmt: skip
        found.sort(key=lambda o: o["created"], reverse=True)
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        return {
            "object": "list",
            "url": f"/v1/{kind}s",
            "has_more": len(found) > limit,
            "data": found[:limit],
        }

    def control(self, path, params):
        """What happens outside the API: `subscriptions/<id>/renew`, `.../fail`,
        `invoices/<id>/pay`, `charges/<id>/dispute`, `disputes/<id>/close`,
        `checkout_sessions/<id>/pay|expire|fail_async`."""
        kind, _, rest = path.partition("/")
        object_id, _, action = rest.partition("/")
        actions = {
            ("subscriptions", "renew"): lambda: self.stripe.renew(object_id),
            ("subscriptions", "fail"): lambda: self.stripe.renew(object_id, succeeded=False),
            ("invoices", "pay"): lambda: self.stripe.retry_invoice(object_id),
            ("charges", "dispute"): lambda: self.stripe.dispute(
                object_id,
                amount=params.get("amount"),
                status=params.get("status", "needs_response"),
            ),
            ("disputes", "close"): lambda: self.stripe.close_dispute(
                object_id, params.get("status", "won")
            ),
            ("checkout_sessions", "pay"): lambda: self.stripe.pay(
                object_id, card=params.get("card", "4242")
            ),
            ("checkout_sessions", "expire"): lambda: self.stripe.expire_session(object_id),
            ("checkout_sessions", "fail_async"): lambda: self.stripe.fail_async(object_id),
        }
        action = actions.get((kind, action))
        if action is None:
            raise _missing("control", path)
        return action()

    def pay_page(self, start_response, method, session_id, form):
        stripe = self.stripe
        with stripe.lock:
            session = stripe.get("checkout.session", session_id)
            price = stripe.get("price", session["line_items_offline"][0]["price"])
            product = stripe.get("product", price["product"])
        if method == "POST":
            if form.get("action") == "cancel":
                return self._redirect(start_response, session["cancel_url"])
            stripe.run(stripe.pay, session_id, card=form.get("card", "4242"))
            url = (session["success_url"] or "/").replace("{CHECKOUT_SESSION_ID}", session_id)
            return self._redirect(start_response, url)
        amount = f"{session['amount_total'] / 100:,.2f} {session['currency'].upper()}"
        every = f" every {price['recurring']['interval']}" if price.get("recurring") else ""
        if session["status"] != "open":
            return self._html(start_response, 410, "Already paid",
                              "<p>This checkout is complete.</p>")  # fmt: skip
        body = f"""
<p class="mode">Offline Stripe · test mode · no real money moves</p>
<h1>{html.escape(product["name"])}</h1>
<p class="amount">{html.escape(amount)}{every}</p>
<form method="post">
  <label for="card">Card</label>
  <select id="card" name="card">
    <option value="4242">Visa ending 4242 (succeeds)</option>
    <option value="0002">Visa ending 0002 (saved; later off-session charges decline)</option>
  </select>
  <button type="submit" name="action" value="pay" id="pay">Pay {html.escape(amount)}</button>
  <button type="submit" name="action" value="cancel" class="secondary">Cancel</button>
</form>"""
        return self._html(start_response, 200, f"Pay {product['name']}", body)

    @staticmethod
    def _json(start_response, status, body):
        data = json.dumps(body).encode()
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
             ("Request-Id", f"req_{secrets.token_hex(8)}"), ("Stripe-Version", API_VERSION)],
        )  # fmt: skip
        return [data]

    @staticmethod
    def _redirect(start_response, url):
        start_response("303 See Other", [("Location", url), ("Content-Length", "0")])
        return [b""]

    @staticmethod
    def _html(start_response, status, title, body):
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>
body{{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;
color:#1a1f36}}
.mode{{background:#fff4e5;color:#8a4b00;padding:.4rem .6rem;border-radius:4px;font-size:.85rem}}
.amount{{font-size:1.6rem;font-weight:600}} label{{display:block;margin:.5rem 0 .2rem}}
select,button{{font:inherit;padding:.55rem;width:100%;margin-bottom:.6rem}}
button{{background:#635bff;color:#fff;border:0;border-radius:6px;cursor:pointer}}
button.secondary{{background:#e3e8ee;color:#1a1f36}}</style></head><body>{body}</body></html>"""
        data = page.encode()
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data)))],
        )
        return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        logger.debug(format, *args)


def serve(stripe, *, host="127.0.0.1", port=0):
    """Start serving `stripe` on a thread; returns the server (`server.url`, `.shutdown()`)."""
    server = make_server(host, port, OfflineStripeApp(stripe), _ThreadingServer, _QuietHandler)
    server.url = f"http://{host}:{server.server_port}"
    stripe._base_url = server.url
    threading.Thread(target=server.serve_forever, daemon=True, name="offline-stripe").start()
    return server
