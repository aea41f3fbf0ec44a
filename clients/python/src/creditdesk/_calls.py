"""Each API operation as a `Call`: what to send, and whether it may be sent twice.

The sync and async clients differ only in how they send a Call; everything an operation
means (its path, its body, its idempotency key) is here, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from .retries import REPLAYABLE_METHODS
from .types import Quantity

API = "/api/v1"
BATCH_LIMIT = 1000  # events per batch request, the API's limit


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    keyed: bool = False  # carries an idempotency key: the server runs it once per key
    repeatable: bool = False  # a POST that does nothing more when repeated (check, release)

    @property
    def replayable(self) -> bool:
        return self.method in REPLAYABLE_METHODS or self.keyed or self.repeatable


def new_key() -> str:
    """An idempotency key made by the client, kept for every retry of one call."""
    return f"sdk_{uuid.uuid4().hex}"


def decimal_text(value: Quantity) -> str:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(
            f"a quantity is a Decimal, an int or a decimal string, not {type(value).__name__}"
            " (a float is not exact)"
        )
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def moment(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("a date-time needs a time zone (the API refuses one without)")
    return value.isoformat()


def account_path(account: str, tail: str = "") -> str:
    """The account's path: its id one segment, even `.` or `..` (which a URL would resolve
    to the parent: its dots are sent encoded)."""
    segment = quote(account, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")
    return f"{API}/accounts/{segment}{tail}"


def fields(**values: Any) -> dict[str, Any]:
    """A body or query of the values given (None: left out, so the server's default holds)."""
    return {name: value for name, value in values.items() if value is not None}


def query(**values: datetime | str | int | None) -> dict[str, str]:
    return {
        name: moment(value) if isinstance(value, datetime) else str(value)
        for name, value in fields(**values).items()
    }


def get_account(account: str) -> Call:
    return Call("GET", account_path(account))


def put_account(
    account: str,
    *,
    name: str | None,
    email: str | None,
    metadata: Mapping[str, Any] | None,
    plan: str | None,
) -> Call:
    body = fields(
        name=name, email=email, metadata=dict(metadata) if metadata is not None else None, plan=plan
    )
    return Call("PUT", account_path(account), body=body)


def balance(account: str, *, at: datetime | str | None) -> Call:
    return Call("GET", account_path(account, "/balance"), params=query(at=at))


def entitlements(account: str) -> Call:
    return Call("GET", account_path(account, "/entitlements"))


def check(*, account: str, feature: str, quantity: Quantity | None) -> Call:
    body = fields(account=account, feature=feature, quantity=_opt_quantity(quantity))
    return Call("POST", f"{API}/check", body=body, repeatable=True)


def consume(
    *,
    account: str,
    feature: str,
    quantity: Quantity | None,
    idempotency_key: str | None,
    metadata: Mapping[str, Any] | None,
    occurred_at: datetime | str | None,
) -> Call:
    return Call(
        "POST",
        f"{API}/consume",
        body=consume_body(
            account=account,
            feature=feature,
            quantity=quantity,
            idempotency_key=idempotency_key,
            metadata=metadata,
            occurred_at=occurred_at,
        ),
        keyed=True,
    )


def consume_body(
    *,
    account: str,
    feature: str,
    quantity: Quantity | None = None,
    idempotency_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    occurred_at: datetime | str | None = None,
) -> dict[str, Any]:
    return fields(
        account=account,
        feature=feature,
        quantity=_opt_quantity(quantity),
        idempotency_key=idempotency_key or new_key(),
        metadata=dict(metadata) if metadata is not None else None,
        occurred_at=moment(occurred_at) if occurred_at is not None else None,
    )


def consume_batches(events: Iterable[Mapping[str, Any]]) -> list[Call]:
    """Batches of at most BATCH_LIMIT events, each event with an idempotency key (its own or
    one made here) so that a batch retried after a lost answer charges nothing twice."""
    bodies = [consume_body(**dict(event)) for event in events]
    return [
        Call(
            "POST", f"{API}/consume/batch", body={"events": bodies[i : i + BATCH_LIMIT]}, keyed=True
        )
        for i in range(0, len(bodies), BATCH_LIMIT)
    ]


def create_reservation(
    *,
    account: str,
    feature: str,
    quantity: Quantity,
    ttl_seconds: int | None,
    idempotency_key: str | None,
) -> Call:
    body = fields(
        account=account,
        feature=feature,
        quantity=decimal_text(quantity),
        ttl_seconds=ttl_seconds,
        idempotency_key=idempotency_key or new_key(),
    )
    return Call("POST", f"{API}/reservations", body=body, keyed=True)


def get_reservation(reservation_id: int) -> Call:
    return Call("GET", f"{API}/reservations/{int(reservation_id)}")


def commit_reservation(
    reservation_id: int, *, quantity: Quantity, metadata: Mapping[str, Any] | None
) -> Call:
    body = fields(
        quantity=decimal_text(quantity), metadata=dict(metadata) if metadata is not None else None
    )
    return Call("POST", f"{API}/reservations/{int(reservation_id)}/commit", body=body)


def release_reservation(reservation_id: int) -> Call:
    path = f"{API}/reservations/{int(reservation_id)}/release"
    return Call("POST", path, body={}, repeatable=True)  # a second release: 409, nothing more


def grant(
    *,
    account: str,
    amount: Quantity,
    source: str,
    reason: str,
    credit_type: str | None,
    expires_at: datetime | str | None,
    priority: int | None,
    idempotency_key: str | None,
) -> Call:
    body = fields(
        amount=decimal_text(amount),
        source=source,
        reason=reason,
        credit_type=credit_type,
        expires_at=moment(expires_at) if expires_at is not None else None,
        priority=priority,
        idempotency_key=idempotency_key or new_key(),
    )
    return Call("POST", account_path(account, "/grants"), body=body, keyed=True)


def ledger_page(account: str, params: dict[str, str]) -> Call:
    return Call("GET", account_path(account, "/ledger"), params=params)


def usage_page(account: str, params: dict[str, str]) -> Call:
    return Call("GET", account_path(account, "/usage"), params=params)


def next_page(call: Call, cursor: str) -> Call:
    return Call(call.method, call.path, params={**call.params, "cursor": cursor})


def catalog(kind: str) -> Call:
    return Call("GET", f"{API}/{kind}")


def checkout(
    account: str, *, success_url: str, cancel_url: str, plan: str | None, credit_pack: str | None
) -> Call:
    body = fields(
        success_url=success_url, cancel_url=cancel_url, plan=plan, credit_pack=credit_pack
    )
    return Call("POST", account_path(account, "/checkout"), body=body)


def billing_link(account: str) -> Call:
    return Call("POST", account_path(account, "/billing-link"), body={})


def get_contract(account: str) -> Call:
    return Call("GET", account_path(account, "/contract"))


def put_contract(account: str, terms: Mapping[str, Any]) -> Call:
    body = {
        name: moment(value) if isinstance(value, datetime) else value
        for name, value in terms.items()
    }
    return Call("PUT", account_path(account, "/contract"), body=body)


def delete_contract(account: str, *, reason: str | None) -> Call:
    return Call("DELETE", account_path(account, "/contract"), params=query(reason=reason))


def webhook_endpoints() -> Call:
    return Call("GET", f"{API}/webhook-endpoints")


def create_webhook_endpoint(
    *, url: str, account: str | None, event_types: Iterable[str] | None, description: str | None
) -> Call:
    body = fields(
        url=url,
        account=account,
        event_types=list(event_types) if event_types is not None else None,
        description=description,
    )
    return Call("POST", f"{API}/webhook-endpoints", body=body)


def webhook_endpoint(endpoint_id: int, *, method: str = "GET") -> Call:
    return Call(method, f"{API}/webhook-endpoints/{int(endpoint_id)}")


def rotate_webhook_secret(endpoint_id: int, *, overlap_hours: int | None) -> Call:
    body = fields(overlap_hours=overlap_hours)
    return Call("POST", f"{API}/webhook-endpoints/{int(endpoint_id)}/rotate-secret", body=body)


def _opt_quantity(value: Quantity | None) -> str | None:
    return decimal_text(value) if value is not None else None
