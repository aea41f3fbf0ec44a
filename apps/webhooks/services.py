"""Recording events for the company's endpoints and delivering them (docs/webhooks.md).

Events are recorded in the transaction that caused them, and only for accounts that have an
endpoint wanting them; each delivery is sent by a task queued after commit. The database,
not the broker, is the source of truth for retries: a failed attempt sets `next_attempt_at`
with exponential backoff and `retry_due_deliveries` (beat, every minute) queues what is due,
so a lost message or a worker that died mid-send costs a delay, never a delivery."""

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

from django.db import transaction

from apps.core import clock
from apps.core.decimals import format_decimal
from apps.core.outbox import publish_many
from apps.jobs.counts import JobCounts

from .destinations import RefusedDestination, check_url, post
from .models import WebhookDelivery, WebhookEndpoint, WebhookEvent

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "CreditDesk-Signature"
EVENT_ID_HEADER = "CreditDesk-Event-Id"
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=6)
SENDING_LEASE = timedelta(minutes=5)  # a worker that dies mid-send is retried after this
TIMEOUT_SECONDS = 10


def backoff(attempts):
    """Wait after the `attempts`-th failure: 30 s, 1 min, 2 min, ... at most 6 h."""
    return min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_WAIT)


def sign(*, secret, timestamp, body):
    """HMAC-SHA256 of `<timestamp>.<body>` with the endpoint's secret, hex."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(*, secret, timestamp, body):
    return f"t={timestamp},v1={sign(secret=secret, timestamp=timestamp, body=body)}"


# --- recording --------------------------------------------------------------------------


def record_events(*, events, now=None, endpoints=None):
    """Record `events` ((account_id, type, data) with JSON-ready data) for the accounts'
    active endpoints that want them, one delivery per endpoint, and queue the deliveries
    after commit. Three statements whatever the number of events; none when no account has
    an endpoint. Returns the deliveries."""
    if not events:
        return []
    now = now or clock.now()
    if endpoints is None:
        endpoints = _endpoints({account_id for account_id, _, _ in events})
    if not endpoints:
        return []
    new_events, deliveries = [], []
    for account_id, event_type, data in events:
        targets = [e for e in endpoints.get(account_id, ()) if e.wants(event_type)]
        if not targets:
            continue
        event = WebhookEvent(
            account_id=account_id,
            type=event_type,
            data={"account": targets[0].account.external_id, **data},
            created_at=now,
        )
        new_events.append(event)
        deliveries += [
            WebhookDelivery(event=event, endpoint=t, next_attempt_at=now, created_at=now)
            for t in targets
        ]
    WebhookEvent.objects.bulk_create(new_events)
    WebhookDelivery.objects.bulk_create(deliveries)
    queue_deliveries([d.pk for d in deliveries])  # in this transaction: sent after commit
    return deliveries


def _endpoints(account_ids):
    """Active endpoints by account, for the given accounts."""
    found = {}
    for endpoint in WebhookEndpoint.objects.filter(
        active=True, account_id__in=account_ids
    ).select_related("account"):
        found.setdefault(endpoint.account_id, []).append(endpoint)
    return found


def record_ledger_events(*, new_grants, expire_entries, now):
    """credits.granted for each new grant, credits.expired for each expiry, as the ledger
    engine writes them; only for accounts with an endpoint (asked first: a renewal chunk
    of a thousand grants need not word a thousand payloads nobody will receive)."""
    watched = _endpoints(
        {g.account_id for g in new_grants} | {e.account_id for e in expire_entries}
    )
    if not watched:
        return
    new_grants = [g for g in new_grants if g.account_id in watched]
    expire_entries = [e for e in expire_entries if e.account_id in watched]
    events = [
        (
            grant.account_id,
            "credits.granted",
            {
                "credit_type": grant.wallet.credit_type.code,
                "grant": _grant_data(grant),
                "balance_after": format_decimal(grant.wallet.balance),
            },
        )
        for grant in new_grants
    ]
    events += [
        (
            entry.account_id,
            "credits.expired",
            {
                "credit_type": entry.wallet.credit_type.code,
                "grant": _grant_data(entry.grant),
                "credits": format_decimal(-entry.amount),
                "balance_after": format_decimal(entry.balance_after),
            },
        )
        for entry in expire_entries
    ]
    record_events(events=events, now=now, endpoints=watched)


def _grant_data(grant):
    return {
        "id": grant.pk,
        "source": grant.source,
        "amount": format_decimal(grant.amount),
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "reference": grant.reference,
    }


# --- delivering -------------------------------------------------------------------------

# The Celery task that sends one delivery (tasks.py): queued by name, through the outbox.
DELIVER_TASK = "webhooks.deliver"


def queue_deliveries(ids):
    """Queue a send for each delivery, through the outbox (apps/core/outbox.py): called in a
    transaction, after it commits; never raises when the broker is down (the outbox, and
    `retry_due_deliveries` for what is pending and due, send them later)."""
    publish_many([(DELIVER_TASK, [pk], {}) for pk in ids])


def body_of(event):
    return json.dumps(
        {
            "id": event.id,
            "type": event.type,
            "created_at": event.created_at.isoformat(),
            "data": event.data,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def deliver(*, delivery_id, now=None):
    """Make one attempt at a pending delivery that is due. The row is claimed first (a
    lease), so two workers never send it at once; the POST happens outside any
    transaction. Returns the delivery, or None when there was nothing to send."""
    now = now or clock.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + SENDING_LEASE)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    status, error = _post(delivery.endpoint, delivery.event)
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_response_status = status
    delivery.last_error = error
    if status is not None and 200 <= status < 300:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.delivered_at = clock.now()
        delivery.next_attempt_at = None
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts)
    delivery.save(
        update_fields=["status", "attempts", "next_attempt_at", "last_attempt_at",
                       "last_response_status", "last_error", "delivered_at"]
    )  # fmt: skip
    return delivery


def _post(endpoint, event):
    """One POST: (status, error). The URL is checked again here, after resolving its host,
    and the request goes to the address that was checked (destinations.py); a refused URL,
    an unreachable receiver or a redirect (never followed: it would drop the body) is a
    failed attempt, with the reason in the delivery's log."""
    body = body_of(event)
    timestamp = int(time.time())
    try:
        destination = check_url(endpoint.url)
    except RefusedDestination as refused:
        return None, f"Refused: {refused.message}"[:500]
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "CreditDesk-Webhooks/1",
        SIGNATURE_HEADER: signature_header(secret=endpoint.secret, timestamp=timestamp, body=body),
        EVENT_ID_HEADER: event.id,
    }
    try:
        status = post(destination, body=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except Exception as error:  # noqa: BLE001 - any failure is a failed attempt, counted
        return None, f"{type(error).__name__}: {error}"[:500]
    return status, "" if 200 <= status < 300 else f"HTTP {status}"


def retry_due_deliveries(*, now=None, chunk_size=1000, on_chunk=None):
    """Queue every pending delivery whose next attempt is due. Returns JobCounts."""
    now = now or clock.now()
    counts = JobCounts()
    due = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:chunk_size]
    )
    queue_deliveries(due)
    counts.deliveries = len(due)
    counts.chunks = 1
    if on_chunk is not None:
        on_chunk(counts)
    return counts


def resend(*, delivery, acting_user=None):
    """Send a delivery again (after a receiver's outage, or for a receiver to test its
    replay handling): same event id, same body, a fresh signature."""
    with transaction.atomic(durable=True):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=clock.now(),
            attempts=0,
            last_error=f"resent by {acting_user}" if acting_user else "resent",
        )
        queue_deliveries([delivery.pk])
