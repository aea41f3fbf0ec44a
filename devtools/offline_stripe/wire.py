"""What the offline Stripe shares with Stripe's wire format: ids, resource paths, the
`Stripe-Signature` header, form decoding and error bodies."""

import hashlib
import hmac
import time
from urllib.parse import parse_qsl

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


def missing(kind, object_id):
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id")


def flag(value):
    return value in (True, "true", "True", "1")
