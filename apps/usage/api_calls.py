"""The API's consume and check as one statement each, authentication included: one call of
`creditdesk_api_consume` or `creditdesk_api_check` (apps/usage/sql/) finds the key, judges
its scope and rate, finds the account it may see, records the key's use and consumes or
checks. For the fast lane (apps/api/fast_lane.py), where each round trip shows; PostgreSQL
only. Anything but an answer (a refused caller, a grant due to be closed) is `Refused` or
`None`: Django's path then answers the request whole, in the API's words."""

import json
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings

from apps.accounts.services import split_api_key
from apps.core import clock, statements

from . import fast_path
from .outcomes import REFUSED_KEY, REFUSED_SCOPE
from .selectors import check_answer
from .sql import API_CHECK, API_CONSUME

# Our constants' names, not input.
CONSUME_CALL = (
    f"SELECT * FROM {API_CONSUME.sql_name}(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, "  # noqa: S608
    "%s, %s)"
)
CHECK_CALL = f"SELECT * FROM {API_CHECK.sql_name}(%s, %s, %s, %s, %s, %s, %s, %s, %s)"  # noqa: S608


class CallerAccount(NamedTuple):
    """The account as the function found it, all an answer shows of it: building an Account
    model instance (Django's from_db) cost a twentieth of a consume's CPU in process."""

    pk: int
    external_id: str
    status: str


@dataclass(frozen=True)
class Caller:
    """What an API request presents: its key, the scope the call needs, the request's count
    in the key's rate window, and the account it names."""

    prefix: str
    key_hash: str
    scope: str
    rate_count: int
    external_id: str

    @classmethod
    def of(cls, *, raw_key, key_hash, scope, rate_count, external_id):
        """None for a key that is not even of the right form."""
        prefix = split_api_key(raw_key)
        if prefix is None:
            return None
        return cls(prefix, key_hash, scope, rate_count, external_id)

    def arguments(self):
        return [self.prefix, self.key_hash, self.scope, self.rate_count,
                settings.API_RATE_LIMIT, self.external_id]  # fmt: skip


@dataclass(frozen=True)
class Refused:
    """The database refused the caller (`reason`: one of outcomes.REFUSALS)."""

    reason: str

    @property
    def before_the_rate(self):
        """Django REST framework judges the key and its scope before the rate: a request
        refused for either does not count against the key's limit."""
        return self.reason in (REFUSED_KEY, REFUSED_SCOPE)


def consume(*, caller, request):
    """The Outcome of `request` (a ConsumeRequest without its account) for `caller`, Refused,
    or None (a grant is due to be closed)."""
    args = [
        *caller.arguments(), request.feature, request.quantity, request.idempotency_key,
        request.fingerprint if request.idempotency_key else "", json.dumps(request.metadata),
        request.occurred_at, clock.now(),
    ]  # fmt: skip
    row = _first(fast_path.run(CONSUME_CALL, args))
    if row is None:
        return None
    if row[0] is not None:
        return Refused(row[0])
    _, account_id, status = row[:3]
    account = CallerAccount(account_id, caller.external_id, status)
    return fast_path.outcome(request, row[3:], account=account)


def check(*, caller, feature, quantity):
    """The CheckResult for `caller`, or Refused; raises the domain error as
    `selectors.check` does."""
    [row] = statements.fetch_all(CHECK_CALL, [*caller.arguments(), feature, quantity, clock.now()])
    if row[0] is not None:
        return Refused(row[0])
    return check_answer(feature, quantity, *row[3:])


def _first(rows):
    return rows[0] if rows else None
