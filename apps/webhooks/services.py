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
from itertools import chain

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from apps.accounts.models import Account
from apps.core import clock
from apps.core.decimals import format_decimal
from apps.core.errors import DestinationRefused, InvalidInput
from apps.core.outbox import publish_many
from apps.jobs.counts import JobCounts

from .destinations import RefusedDestination, check_url, post
from .models import WebhookDelivery, WebhookEndpoint, WebhookEvent, new_secret

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


def signature_header(*, secrets, timestamp, body):
    """`t=<timestamp>,v1=<signature>`, one `v1` per secret (two while a rotation's overlap
    lasts: the receiver accepts the delivery if any matches)."""
    signatures = ",".join(
        f"v1={sign(secret=secret, timestamp=timestamp, body=body)}" for secret in secrets
    )
    return f"t={timestamp},{signatures}"


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
    every, external_ids = endpoints.get(None, ()), _external_ids(events, endpoints)
    for account_id, event_type, data in events:
        targets = [e for e in (*endpoints.get(account_id, ()), *every) if e.wants(event_type)]
        if not targets:
            continue
        event = WebhookEvent(
            account_id=account_id,
            type=event_type,
            data={"account": external_ids[account_id], **data},
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
    """Active endpoints by account, for the given accounts; those for every account under
    None."""
    found = {}
    for endpoint in WebhookEndpoint.objects.filter(
        Q(account_id__in=account_ids) | Q(account__isnull=True), active=True
    ).select_related("account"):
        found.setdefault(endpoint.account_id, []).append(endpoint)
    return found


def _external_ids(events, endpoints):
    """The events' accounts' external ids: from their own endpoints where they have one (read
    with them), else in one more statement (only for endpoints for every account)."""
    found = {e.account_id: e.account.external_id for e in chain(*endpoints.values()) if e.account}
    missing = {account_id for account_id, _, _ in events} - set(found)
    if missing and None in endpoints:
        found.update(Account.objects.filter(pk__in=missing).values_list("pk", "external_id"))
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
    if None not in watched:  # no endpoint for every account: only accounts with their own
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
        SIGNATURE_HEADER: signature_header(
            secrets=endpoint.signing_secrets(clock.now()), timestamp=timestamp, body=body
        ),
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


# --- endpoints (the API's webhook-endpoints; the admin edits the model itself) -------------

# How long a rotated secret still signs deliveries beside the new one, unless asked.
DEFAULT_OVERLAP = timedelta(hours=24)
LONGEST_OVERLAP = timedelta(days=7)


def create_endpoint(*, account, url, event_types=(), description=""):
    """A new active endpoint for `account` (None: every account), with a fresh secret the
    caller shows once. A URL webhooks may not be sent to (destinations.py; not a valid URL)
    is DestinationRefused."""
    endpoint = WebhookEndpoint(account=account, url=url, event_types=list(event_types),
                               description=description)  # fmt: skip
    try:
        endpoint.full_clean()
    except ValidationError as error:
        problems = error.message_dict
        if set(problems) == {"url"}:
            # Not a shape problem (the API checks that): a host webhooks may not reach.
            raise DestinationRefused(" ".join(problems["url"]), details=problems) from None
        raise InvalidInput("The endpoint is not valid.", details=problems) from None
    endpoint.save()
    return endpoint


def rotate_secret(*, endpoint, overlap=DEFAULT_OVERLAP):
    """A new secret from now; the old one still signs deliveries (a second `v1`) for
    `overlap`, so the receiver can switch without dropping one."""
    if not timedelta(0) <= overlap <= LONGEST_OVERLAP:
        raise InvalidInput("The overlap is 0 to 7 days.", details={"overlap_hours": ["0 to 168"]})
    with transaction.atomic(durable=True):
        # Why the lock: two rotations at once would each keep a secret the other replaced.
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = clock.now() + overlap
        endpoint.secret = new_secret()
        endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return endpoint


def delete_endpoint(*, endpoint):
    """Remove the endpoint, its deliveries' log with it (the events stay)."""
    endpoint.delete()
