"""The offline Stripe's answers to Stripe's API calls (`POST /v1/<resource>`, updates,
cancelling a subscription), mixed into `OfflineStripe`."""

import json
import secrets
import time

from .wire import ACCOUNT_ID, API_VERSION, StripeError, flag


class ApiObjects:
    """Create and update the objects CreditDesk and dj-stripe ask for; each emits the events
    Stripe would."""

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
                obj[key] = flag(value)
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
            active=flag(params.get("active", True)),
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
            active=flag(params.get("active", True)),
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
        if price["currency"] != item["price"]["currency"]:
            raise StripeError(400, "A subscription's prices must all be in its currency.",
                              param="items[0][price]")  # fmt: skip
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
