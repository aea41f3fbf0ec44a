"""What happens at Stripe outside the API, played by the offline Stripe: the customer pays
(or fails to pay) a Checkout Session, a subscription renews and is invoiced, a charge is
disputed. Mixed into `OfflineStripe`."""

import secrets
import time
from datetime import UTC, datetime

from apps.periods.calendar import boundary

from .wire import StripeError


class World:
    """The customer's and the world's moves; `/_offline/...` routes call them."""

    def pay(self, session_id, *, card="4242"):
        """The customer pays a Checkout Session (the pay page's button)."""
        session = self.get("checkout.session", session_id)
        if session["status"] != "open":
            raise StripeError(400, "This Checkout Session is no longer open.")
        customer = (
            session["customer"]
            or self.create_customer({"email": session.get("customer_email") or ""})["id"]
        )
        method = self._card(customer, card, email=session.get("customer_email"))
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

    def save_card(self, customer_id, *, card="4242"):
        """A card saved on the customer for off-session charges, as a paid Checkout that asked
        for it saves one (card "0002" declines)."""
        method = self._card(customer_id, card)
        self._save_card(customer_id, method)
        return method

    def _card(self, customer_id, last4, *, email=None):
        return self.new(
            "payment_method",
            type="card",
            customer=customer_id,
            card={
                "brand": "visa",
                "last4": last4,
                "exp_month": 12,
                "exp_year": 2034,
                "country": "US",
                "funding": "credit",
            },  # fmt: skip
            billing_details={"email": email, "name": None},
        )

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
        trial_days = session["subscription_data"].get("trial_period_days")
        if trial_days:  # Stripe's trial: a first period that ends with it, billed 0
            end = now + int(trial_days) * 86400
        subscription = self.new(
            "subscription",
            customer=customer,
            status="trialing" if trial_days else "active",
            trial_end=end if trial_days else None,
            cancel_at_period_end=False,
            canceled_at=None,
            ended_at=None,
            billing_cycle_anchor=end if trial_days else now,
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
        self._invoice(subscription, "subscription_create", trial=bool(trial_days))
        return subscription

    @staticmethod
    def _period(price, anchor, index):
        moment = boundary(
            anchor=datetime.fromtimestamp(anchor, UTC),
            interval=price["recurring"]["interval"],
            index=index,
        )
        return int(moment.timestamp())

    def _invoice(self, subscription, reason, *, succeeded=True, trial=False):
        item = subscription["items"]["data"][0]
        price, quantity = item["price"], item["quantity"]
        amount = 0 if trial else price["unit_amount"] * quantity
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
                        "amount": 0 if trial else price["unit_amount"] * quantity,
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
        invoice["payments"] = {"object": "list", "data": []}
        if amount:  # Stripe marks an invoice of 0 (a trial's) paid without charging
            intent = self._payment(
                subscription["customer"],
                amount,
                price["currency"],
                metadata={},
                payment_method=subscription["default_payment_method"],
                succeeded=succeeded,
                description=f"Invoice {invoice['number']}",
            )
            invoice["payments"]["data"].append(
                {"payment": {"type": "payment_intent", "payment_intent": intent["id"]}}
            )
        succeeded = succeeded or not amount
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
