"""Granting, voiding, adjusting and expiring credits."""

from datetime import timedelta
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.services import create_api_key
from apps.core.errors import IdempotencyKeyReused, InsufficientCredits, InvalidInput
from apps.jobs.counts import JobCounts
from apps.wallets.ledger import retry_on_idempotency_race, sweep_wallets
from apps.wallets.models import CreditGrant, LedgerEntry, Wallet
from apps.wallets.services import adjust, expire_grants, grant_credits, void_grant
from tests.factories import AccountFactory, CreditTypeFactory, UserFactory
from tests.ledger import D, assert_ledger_sound, give, wallet_of

pytestmark = pytest.mark.django_db


def test_a_grant_adds_credits_and_a_ledger_entry():
    account = AccountFactory()
    grant = give(account, "12.5", unit_price="0.01", reason="welcome")
    assert (grant.amount, grant.remaining, grant.unit_price) == (D("12.5"), D("12.5"), D("0.01"))
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.balance_after, entry.grant) == (
        "grant", D("12.5"), D("12.5"), grant,
    )  # fmt: skip
    assert_ledger_sound()


def test_granting_twice_with_one_reference_grants_once():
    account = AccountFactory()
    first = give(account, 10, reference="checkout:cs_1")
    again, created = grant_credits(
        account=account, credit_type=CreditTypeFactory(), amount=D(10), source="promo",
        reference="checkout:cs_1",
    )  # fmt: skip
    assert (again.pk, created) == (first.pk, False)
    assert wallet_of(account).balance == D(10)


def test_one_reference_with_other_terms_is_a_conflict():
    account = AccountFactory()
    give(account, 10, reference="k")
    with pytest.raises(IdempotencyKeyReused):
        give(account, 11, reference="k")


@pytest.mark.parametrize("other", [{"unit_price": D("0.02")}, {"currency": "EUR"}])
def test_one_reference_with_another_cost_basis_is_a_conflict(other):
    account = AccountFactory()
    give(account, 10, reference="k", unit_price=D("0.01"), currency="USD")
    with pytest.raises(IdempotencyKeyReused):
        give(account, 10, reference="k", **{"unit_price": D("0.01"), "currency": "USD", **other})


def test_an_api_grants_reference_lives_in_the_apis_own_namespace():
    account = AccountFactory()
    api_key, _ = create_api_key(name="service", scopes=["grants:write"])
    grant = give(account, 10, reference="period:1:2026-02-28T12:00:00Z:credits", api_key=api_key)
    assert grant.reference == "api:period:1:2026-02-28T12:00:00Z:credits"
    assert grant.api_key == api_key
    assert give(account, 10, reference="period:1:2026-02-28T12:00:00Z:credits").pk != grant.pk
    longest = give(account, 10, reference="k" * 255, api_key=api_key)
    assert longest.reference == "api:" + "k" * 255


def test_no_grant_but_the_apis_may_take_a_reference_in_its_namespace():
    with pytest.raises(InvalidInput):
        give(AccountFactory(), 10, reference="api:launch")
    assert not CreditGrant.objects.exists()


def test_the_migration_moves_earlier_api_grants_into_the_namespace_and_they_still_replay():
    migration = import_module("apps.wallets.migrations.0006_grant_api_key")
    account = AccountFactory()
    made_by_the_api = give(account, 10, reference="launch")  # as the API stored them before
    renewal = give(account, 20, reference="period:1:2026-02-28T12:00:00Z:credits",
                   source=CreditGrant.Source.PLAN_PERIOD)  # fmt: skip
    migration.namespace_api_references(django_apps, None)
    made_by_the_api.refresh_from_db()
    renewal.refresh_from_db()
    assert made_by_the_api.reference == "api:launch"
    assert renewal.reference == "period:1:2026-02-28T12:00:00Z:credits"
    api_key, _ = create_api_key(name="service", scopes=["grants:write"])
    assert give(account, 10, reference="launch", api_key=api_key).pk == made_by_the_api.pk


def test_only_a_lost_idempotency_race_is_retried():
    account, attempts = AccountFactory(), []
    credit_type = CreditTypeFactory()

    def attempt():
        attempts.append(1)
        with transaction.atomic():
            Wallet.objects.create(account=account, credit_type=credit_type)
            Wallet.objects.create(account=account, credit_type=credit_type)

    with pytest.raises(IntegrityError):
        retry_on_idempotency_race(attempt)
    assert len(attempts) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "0"), ("amount", "-1"), ("amount", "1.0000001"), ("priority", -1)],
)
def test_bad_grants_are_rejected(field, value):
    account = AccountFactory()
    kwargs = {"amount": D(1), "priority": None, field: value}
    with pytest.raises(InvalidInput):
        grant_credits(account=account, credit_type=CreditTypeFactory(), source="promo", **kwargs)
    assert not CreditGrant.objects.exists()


def test_a_grant_cannot_expire_in_the_past():
    with pytest.raises(InvalidInput):
        grant_credits(
            account=AccountFactory(), credit_type=CreditTypeFactory(), amount=D(1),
            source="promo", expires_at=timezone.now() - timedelta(seconds=1),
        )  # fmt: skip


def test_void_claws_back_what_is_left_with_who_and_why():
    from apps.usage.services import consume
    from tests.ledger import priced_account

    account, _ = priced_account()
    grant = give(account, 10)
    consume(account=account, feature="api_call", quantity=4)
    staff = UserFactory()
    void_grant(grant=grant, reason="refunded", acting_user=staff)
    grant.refresh_from_db()
    assert (grant.remaining, grant.voided_at is not None) == (D(0), True)
    entry = LedgerEntry.objects.get(kind="void")
    assert (entry.amount, entry.acting_user, entry.reason) == (D(-6), staff, "refunded")
    with pytest.raises(InvalidInput, match="no credits left"):
        void_grant(grant=grant, reason="again")
    assert_ledger_sound()


def test_void_needs_a_reason():
    grant = give(AccountFactory(), 1)
    with pytest.raises(InvalidInput, match="reason"):
        void_grant(grant=grant, reason=" ")


def test_adjust_adds_or_claws_back_available_credits():
    account, staff = AccountFactory(), UserFactory()
    credits = CreditTypeFactory()
    adjust(account=account, credit_type=credits, amount=D(5), reason="goodwill", acting_user=staff)
    give(account, 5)
    adjust(
        account=account, credit_type=credits, amount=D(-7), reason="duplicate", acting_user=staff
    )
    assert wallet_of(account).balance == D(3)
    assert list(LedgerEntry.objects.filter(kind="adjust").values_list("amount", flat=True)) == [
        D(-2), D(-5), D(5),
    ]  # fmt: skip
    with pytest.raises(InsufficientCredits):
        adjust(account=account, credit_type=credits, amount=D(-4), reason="too much")
    assert_ledger_sound()


def test_expire_grants_zeroes_what_is_past_due_and_counts_it(time_machine):
    account = AccountFactory()
    give(account, 10, days=1)
    keep = give(account, 5, days=10)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    first = expire_grants()
    assert (first.grants_expired, first.expired) == (1, D(10))
    again = expire_grants()
    assert (again.grants_expired, again.expired) == (0, D(0))
    keep.refresh_from_db()
    assert keep.remaining == D(5)
    assert wallet_of(account).balance == D(5)
    assert_ledger_sound()


def test_a_wallet_sweep_retries_a_failed_chunk_one_wallet_at_a_time(time_machine):
    credits = CreditTypeFactory()
    accounts = [AccountFactory() for _ in range(3)]
    for account in accounts:
        give(account, 10, days=1, credit_type=credits)
    bad = wallet_of(accounts[1], credits)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    now = timezone.now()

    def work(book):
        if any(state.wallet.pk == bad.pk for state in book.states.values()):
            raise ValueError("cannot sweep")

    counts = JobCounts()
    due = CreditGrant.objects.filter(remaining__gt=0, expires_at__lte=now)
    sweep_wallets(due=due, work=work, counts=counts, now=now, chunk_size=10)
    assert [wallet_of(a, credits).balance for a in accounts] == [D(0), D(10), D(0)]
    assert (counts.grants_expired, counts.expired, counts.failures) == (2, D(20), 1)
    assert counts.errors == [f"wallet {bad.pk}: ValueError: cannot sweep"]
    assert_ledger_sound()


@pytest.mark.postgres  # SQLite's bulk methods split statements by its variable limit
def test_expire_grants_uses_the_same_queries_per_chunk_whatever_its_size(time_machine):
    credits = CreditTypeFactory()
    for _ in range(10):
        give(AccountFactory(), 3, days=1, credit_type=credits)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    with CaptureQueriesContext(connection) as small:
        assert expire_grants(chunk_size=10).grants_expired == 10
    for _ in range(1000):
        give(AccountFactory(), 3, days=3, credit_type=credits)
    time_machine.move_to(timezone.now() + timedelta(days=4))
    with CaptureQueriesContext(connection) as large:
        assert expire_grants(chunk_size=1000).grants_expired == 1000
    assert len(small.captured_queries) == len(large.captured_queries)
    assert_ledger_sound()


@pytest.mark.parametrize("statement", ["UPDATE {t} SET amount = 0", "DELETE FROM {t}"])
def test_the_database_refuses_to_change_ledger_entries(statement):
    give(AccountFactory(), 1)
    with pytest.raises(IntegrityError, match="append-only"), connection.cursor() as cursor:
        cursor.execute(statement.format(t=LedgerEntry._meta.db_table))


def test_a_grant_retried_after_its_expiry_replays_instead_of_failing(time_machine):
    account = AccountFactory()
    first = give(account, 10, days=1, reference="r1")
    expires_at = first.expires_at
    time_machine.move_to(timezone.now() + timedelta(days=2))
    again, created = grant_credits(
        account=account, credit_type=CreditTypeFactory(), amount=D(10), source="promo",
        expires_at=expires_at, reference="r1",
    )  # fmt: skip
    assert (again.pk, created) == (first.pk, False)
