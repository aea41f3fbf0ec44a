"""Real concurrency on PostgreSQL: threads with their own connections race on one wallet."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.errors import DomainError, InsufficientCredits, QuotaExceeded
from apps.usage.models import UsageCounter, UsageEvent
from apps.usage.services import (
    ConsumeRequest,
    commit_reservation,
    consume,
    consume_batch,
    release_expired_reservations,
    release_reservation,
    reserve,
)
from apps.wallets.services import expire_grants
from tests.ledger import D, assert_ledger_sound, give, priced_account, race, wallet_of

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.usefixtures("consume_path"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_200_consumes_race_for_100_credits_and_exactly_100_win():
    account, _ = priced_account(credits=100)
    results = race([lambda: consume(account=account, feature="api_call")] * 200, workers=32)
    wins = [r for r in results if not isinstance(r, Exception)]
    losses = [r for r in results if isinstance(r, InsufficientCredits)]
    assert (len(wins), len(losses)) == (100, 100)
    assert wallet_of(account).balance == D(0)
    assert UsageEvent.objects.count() == 100
    assert_ledger_sound()


def test_racing_consumes_of_a_free_feature_never_exceed_its_quota():
    account, _ = priced_account(
        credits_per_unit=0, plan=True, plan_feature={"limit_per_period": D(10)}
    )
    results = race([lambda: consume(account=account, feature="api_call")] * 40)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(results) - len(errors) == 10
    assert all(isinstance(e, QuotaExceeded) for e in errors)
    assert UsageCounter.objects.get(account=account).used == D(10)


def test_16_racing_repeats_of_one_idempotency_key_charge_once():
    account, _ = priced_account(credits=100)
    results = race(
        [lambda: consume(account=account, feature="api_call", quantity=5, idempotency_key="once")]
        * 16
    )
    assert not [r for r in results if isinstance(r, Exception)]
    assert len({r.usage_event.pk for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert wallet_of(account).balance == D(95)
    assert_ledger_sound()


def test_consumes_race_expiry_reservations_and_batches_without_deadlock(time_machine):
    account, _ = priced_account()
    for days in (1, 1, 3, 30):
        give(account, 50, days=days)
    give(account, 100)
    time_machine.move_to(timezone.now() + timedelta(days=2), tick=True)

    def reserve_and_settle(i):
        def call():
            reservation, _ = reserve(account=account, feature="api_call", quantity=3)
            if i % 2:
                return commit_reservation(reservation_id=reservation.pk, quantity=2)
            return release_reservation(reservation_id=reservation.pk)

        return call

    def batch():
        return consume_batch(
            requests=[ConsumeRequest.build(account=account, feature="api_call") for _ in range(5)]
        )

    calls = []
    for i in range(12):
        calls += [
            lambda: consume(account=account, feature="api_call", quantity=2),
            reserve_and_settle(i),
            batch,
            expire_grants,
            release_expired_reservations,
        ]
    results = race(calls, workers=16)
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)]
    assert unexpected == []
    wallet = wallet_of(account)
    assert wallet.held == D(0)
    assert wallet.balance >= 0
    assert_ledger_sound()
    connection.close()
