"""Hooks by which a lower layer tells the higher ones what happened, without importing them.

The ledger sits below webhooks, and the period jobs below billing, yet a ledger write must
record `credits.granted` for the company's endpoints and a period that closes with debt must
be billed. So the lower layer publishes a topic and the higher app
subscribes to it in its `AppConfig.ready()`. Handlers run synchronously, in the caller's
transaction: what they write commits or rolls back with the write that caused it (tasks they
queue still go through the outbox or `on_commit`).

Topics are the names below; each says what its payload is. A topic nobody subscribed to is a
no-op (a project without the webhooks app still runs the ledger)."""

from collections import defaultdict

# payload: new_grants=[CreditGrant], expire_entries=[LedgerEntry], now — what a ledger flush
# wrote that endpoints may want to hear about (apps.webhooks subscribes: credits.granted,
# credits.expired).
LEDGER_FLUSHED = "ledger_flushed"

# payload: charges=[(Subscription, CreditGrant)] — period-end overage settled by an
# `overage` grant, to be billed (apps.billing subscribes).
OVERAGE_SETTLED = "overage_settled"

# payload: account_id — the account's contract was put, replaced or removed, in the caller's
# transaction (apps.billing subscribes: a contract price is billed at Stripe).
CONTRACT_CHANGED = "contract_changed"

TOPICS = frozenset({LEDGER_FLUSHED, OVERAGE_SETTLED, CONTRACT_CHANGED})

_handlers = defaultdict(list)


def subscribe(topic, handler):
    """Call `handler(**payload)` on every `publish(topic, ...)`; idempotent per handler."""
    if topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}")
    if handler not in _handlers[topic]:
        _handlers[topic].append(handler)


def publish(topic, **payload):
    if topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}")
    for handler in _handlers[topic]:
        handler(**payload)
