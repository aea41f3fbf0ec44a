"""The API's answers as typed dicts, as the API sends them.

Credit amounts and quantities stay the API's decimal strings (`"12.500000"`): exact, never a
float. `decimal.Decimal(answer["credits"])` when arithmetic is needed. Fields are those of
docs/api-reference.md; a server newer than this client may add some.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypedDict

Quantity = Decimal | int | str
"""A quantity or amount: a Decimal, an int or a decimal string. Never a float (not exact)."""

JSON = dict[str, Any]


class Account(TypedDict):
    external_id: str
    name: str
    email: str
    status: str
    plan: str | None
    plan_version: int | None
    subscription_status: str | None
    current_period_start: str | None
    current_period_end: str | None
    metadata: Any
    created_at: str


class Wallet(TypedDict):
    credit_type: str
    balance: str
    held: str
    available: str
    overdraft_limit: str


class Balance(TypedDict):
    account: str
    at: str | None
    wallets: list[Wallet]


class Entitlement(TypedDict):
    feature: str
    kind: str
    enabled: bool
    credit_type: str | None
    credits_per_unit: str | None
    limit_per_period: str | None
    used_this_period: str | None
    source: str


class Entitlements(TypedDict):
    account: str
    plan: str | None
    plan_version: int | None
    subscription_status: str | None
    period_end: str | None
    features: list[Entitlement]


class Check(TypedDict):
    allowed: bool
    reason: str | None
    credits_required: str | None
    credit_type: str | None
    available: str | None


class Consume(TypedDict):
    id: int
    account: str
    feature: str
    quantity: str
    credits: str
    credit_type: str
    balance_after: str
    available_after: str
    created_at: str


class BatchResult(TypedDict, total=False):
    index: int
    status: int
    id: int
    credits: str
    replayed: bool
    error: JSON


class Reservation(TypedDict):
    id: int
    account: str
    feature: str
    quantity: str
    status: str
    credits_held: str
    expires_at: str
    created_at: str


class Commit(TypedDict):
    reservation: Reservation
    usage_event: Consume


class Grant(TypedDict):
    id: int
    account: str
    credit_type: str
    source: str
    amount: str
    remaining: str
    debt_settled: str
    priority: int
    expires_at: str | None
    reason: str
    created_at: str


class LedgerEntry(TypedDict):
    id: int
    kind: str
    amount: str
    balance_after: str
    credit_type: str
    grant: int | None
    usage_event: int | None
    reason: str
    created_at: str


class UsageEvent(TypedDict):
    id: int
    feature: str
    quantity: str
    credits: str
    credit_type: str
    occurred_at: str
    metadata: Any


class UsageTotal(TypedDict):
    group: str
    quantity: str
    credits: str


class CheckoutSession(TypedDict):
    checkout_url: str
    session_id: str


class BillingLink(TypedDict):
    url: str
    expires_at: str


class WebhookEndpoint(TypedDict):
    id: int
    url: str
    account: str | None
    event_types: list[str]
    description: str
    active: bool
    previous_secret_expires_at: str | None
    created_at: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str
