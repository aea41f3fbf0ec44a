"""reserve / commit / release: hold an estimate, charge the actual, free the rest."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import (
    FeatureNotEnabled,
    IdempotencyKeyReused,
    InsufficientCredits,
    ReservationNotHeld,
)
from apps.usage.services import (
    commit_reservation,
    release_expired_reservations,
    release_reservation,
    reserve,
)
from apps.wallets.models import LedgerEntry, Reservation
from tests.factories import CreditTypeFactory, FeatureFactory, PlanFactory, PlanFeatureFactory
from tests.ledger import D, assert_ledger_sound, priced_account, wallet_of

pytestmark = pytest.mark.django_db


def test_reserve_holds_credits_without_spending_them():
    account, _ = priced_account(credits=10, credits_per_unit=2)
    reservation, replayed = reserve(account=account, feature="api_call", quantity=3)
    assert (reservation.status, reservation.credits_held, replayed) == ("held", D(6), False)
    wallet = wallet_of(account)
    assert (wallet.balance, wallet.held, wallet.available) == (D(10), D(6), D(4))
    assert LedgerEntry.objects.get(kind="reserve").held_change == D(6)
    assert_ledger_sound()


def test_reserve_beyond_available_is_insufficient():
    account, _ = priced_account(credits=10)
    with pytest.raises(InsufficientCredits):
        reserve(account=account, feature="api_call", quantity=11)


@pytest.mark.parametrize("kind", ["metered", "boolean"])
def test_a_feature_the_plan_does_not_enable_cannot_be_reserved(kind):
    plan = PlanFactory()
    feature = FeatureFactory(
        code="export", kind=kind, credit_type=CreditTypeFactory() if kind == "metered" else None
    )
    PlanFeatureFactory(plan=plan, feature=feature, enabled=False)
    account, _ = priced_account(credits=10, plan=plan)
    with pytest.raises(FeatureNotEnabled):
        reserve(account=account, feature="export", quantity=1)
    assert not Reservation.objects.exists()


def test_commit_charges_the_actual_cost_and_releases_the_rest():
    account, _ = priced_account(credits=10)
    reservation, _ = reserve(account=account, feature="api_call", quantity=5)
    reservation, event = commit_reservation(reservation_id=reservation.pk, quantity=3)
    assert (reservation.status, event.credits) == ("committed", D(3))
    wallet = wallet_of(account)
    assert (wallet.balance, wallet.held) == (D(7), D(0))
    assert_ledger_sound()


def test_commit_above_the_hold_is_charged_when_available_covers_the_excess():
    account, _ = priced_account(credits=10)
    reservation, _ = reserve(account=account, feature="api_call", quantity=5)
    _, event = commit_reservation(reservation_id=reservation.pk, quantity=8)
    assert event.credits == D(8)
    assert wallet_of(account).balance == D(2)


def test_commit_above_what_is_available_fails_and_keeps_the_hold():
    account, _ = priced_account(credits=10)
    reservation, _ = reserve(account=account, feature="api_call", quantity=5)
    with pytest.raises(InsufficientCredits):
        commit_reservation(reservation_id=reservation.pk, quantity=11)
    reservation.refresh_from_db()
    wallet = wallet_of(account)
    assert (reservation.status, wallet.held, wallet.balance) == ("held", D(5), D(10))


def test_the_price_is_the_one_at_reserve_time():
    account, feature = priced_account(credits=10)
    reservation, _ = reserve(account=account, feature="api_call", quantity=2)
    feature.credits_per_unit = D(3)
    feature.save()
    _, event = commit_reservation(reservation_id=reservation.pk, quantity=2)
    assert event.credits == D(2)


def test_release_frees_the_hold():
    account, _ = priced_account(credits=10)
    reservation, _ = reserve(account=account, feature="api_call", quantity=5)
    assert release_reservation(reservation_id=reservation.pk).status == "released"
    assert wallet_of(account).held == D(0)
    assert_ledger_sound()


@pytest.mark.parametrize("close", ["commit", "release"])
def test_a_closed_reservation_cannot_be_committed_or_released(close):
    account, _ = priced_account(credits=10)
    reservation, _ = reserve(account=account, feature="api_call", quantity=5)
    if close == "commit":
        commit_reservation(reservation_id=reservation.pk, quantity=1)
    else:
        release_reservation(reservation_id=reservation.pk)
    with pytest.raises(ReservationNotHeld):
        commit_reservation(reservation_id=reservation.pk, quantity=1)
    with pytest.raises(ReservationNotHeld):
        release_reservation(reservation_id=reservation.pk)
    assert_ledger_sound()


def test_holds_past_their_ttl_are_released_by_the_job(time_machine):
    account, _ = priced_account(credits=10)
    short, _ = reserve(account=account, feature="api_call", quantity=2, ttl_seconds=60)
    long, _ = reserve(account=account, feature="api_call", quantity=3, ttl_seconds=3600)
    time_machine.move_to(timezone.now() + timedelta(minutes=2))
    with pytest.raises(ReservationNotHeld):
        commit_reservation(reservation_id=short.pk, quantity=1)
    assert release_expired_reservations().reservations_released == 1
    assert release_expired_reservations().reservations_released == 0
    short.refresh_from_db()
    long.refresh_from_db()
    assert (short.status, long.status) == ("expired", "held")
    assert wallet_of(account).held == D(3)
    assert_ledger_sound()


def test_reserve_is_idempotent_by_key():
    account, _ = priced_account(credits=10)
    first, _ = reserve(account=account, feature="api_call", quantity=2, idempotency_key="r1")
    again, replayed = reserve(account=account, feature="api_call", quantity=2, idempotency_key="r1")
    assert replayed and again.pk == first.pk
    assert wallet_of(account).held == D(2)
    with pytest.raises(IdempotencyKeyReused):
        reserve(account=account, feature="api_call", quantity=3, idempotency_key="r1")
    assert Reservation.objects.count() == 1
