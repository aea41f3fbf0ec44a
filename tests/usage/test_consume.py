"""consume(): entitlement, quota, balance, burn-down and idempotency, all or nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import (
    AccountSuspended,
    FeatureNotEnabled,
    FeatureNotFound,
    IdempotencyKeyReused,
    InsufficientCredits,
    InvalidInput,
    QuotaExceeded,
)
from apps.usage.models import UsageEvent
from apps.usage.services import consume
from apps.wallets.models import LedgerEntry, Wallet
from tests.factories import FeatureFactory, PlanFactory, PlanFeatureFactory
from tests.ledger import D, assert_ledger_sound, give, priced_account, wallet_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("consume_path")]


def test_consume_charges_quantity_times_credits_per_unit():
    account, _ = priced_account(credits=100, credits_per_unit="2.5")
    outcome = consume(account=account, feature="api_call", quantity=3)
    event = outcome.usage_event
    assert event.credits == D("7.5")
    assert event.balance_after == D("92.5")
    assert wallet_of(account).balance == D("92.5")
    assert not outcome.replayed
    assert_ledger_sound()


def test_consume_draws_soonest_expiring_grant_first():
    account, _ = priced_account()
    later = give(account, 10, days=30)
    sooner = give(account, 10, days=2)
    never = give(account, 10)
    consume(account=account, feature="api_call", quantity=12)
    for grant in (later, sooner, never):
        grant.refresh_from_db()
    assert (sooner.remaining, later.remaining, never.remaining) == (D(0), D(8), D(10))
    assert_ledger_sound()


def test_consume_draws_lower_priority_number_first_whatever_the_expiry():
    account, _ = priced_account()
    soon = give(account, 10, days=1, priority=100)
    first = give(account, 10, priority=10)
    consume(account=account, feature="api_call", quantity=4)
    first.refresh_from_db()
    soon.refresh_from_db()
    assert (first.remaining, soon.remaining) == (D(6), D(10))


def test_consume_draws_oldest_grant_first_among_equals():
    account, _ = priced_account()
    old = give(account, 5)
    new = give(account, 5)
    consume(account=account, feature="api_call", quantity=5)
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.remaining, new.remaining) == (D(0), D(5))


def test_consume_spanning_grants_records_each_grant_and_what_it_paid():
    account, _ = priced_account(credits_per_unit="0.01")
    a, b, c = give(account, "0.03", days=1), give(account, "0.03", days=2), give(account, 1)
    event = consume(account=account, feature="api_call", quantity=7).usage_event
    assert event.credits == D("0.07")
    funded = list(
        LedgerEntry.objects.filter(usage_event_id=event.pk)
        .order_by("id")
        .values_list("grant", "amount")
    )
    assert funded == [(a.pk, D("-0.03")), (b.pk, D("-0.03")), (c.pk, D("-0.01"))]
    assert wallet_of(account).balance == D("0.99")
    assert_ledger_sound()


@pytest.mark.parametrize("quantity", ["0.0000001", "1e-7", "NaN", "Infinity", "", True, "-1", 0])
def test_bad_quantities_are_rejected_never_rounded(quantity):
    account, _ = priced_account(credits=100)
    with pytest.raises(InvalidInput):
        consume(account=account, feature="api_call", quantity=quantity)
    assert not UsageEvent.objects.exists()


def test_six_decimal_places_are_accepted_exactly():
    account, _ = priced_account(credits=1)
    event = consume(account=account, feature="api_call", quantity="0.000001").usage_event
    assert event.credits == D("0.000001")
    assert wallet_of(account).balance == D("0.999999")


def test_a_cost_needing_more_than_six_places_is_rejected():
    account, _ = priced_account(credits=100, credits_per_unit="1.5")
    with pytest.raises(InvalidInput, match="more than 6 decimal places"):
        consume(account=account, feature="api_call", quantity="0.333333")
    assert not LedgerEntry.objects.filter(kind="consume").exists()


def test_a_cost_beyond_what_a_wallet_can_hold_is_rejected():
    account, _ = priced_account(credits=100, credits_per_unit=100)
    with pytest.raises(InvalidInput, match="more than a wallet can hold"):
        consume(account=account, feature="api_call", quantity=10**17)


def test_a_large_cost_is_checked_exactly_not_after_rounding():
    # 100000000000.000001 × 1000000.000001 = 100000000000000001.100000000001: 30 digits,
    # which a 28-digit context would round to something that looks exact.
    account, _ = priced_account(credits=1, credits_per_unit="1000000.000001")
    with pytest.raises(InvalidInput, match="more than 6 decimal places"):
        consume(account=account, feature="api_call", quantity="100000000000.000001")


def test_insufficient_credits_reports_the_shortfall_and_writes_nothing():
    account, _ = priced_account(credits=5, credits_per_unit=2)
    entries = LedgerEntry.objects.count()
    with pytest.raises(InsufficientCredits) as excinfo:
        consume(account=account, feature="api_call", quantity=3)
    assert excinfo.value.details == {
        "credit_type": "credits",
        "credits_required": "6",
        "available": "5",
    }
    assert LedgerEntry.objects.count() == entries
    assert not UsageEvent.objects.exists()
    assert wallet_of(account).balance == D(5)


def test_an_account_with_no_wallet_has_nothing_available():
    account, _ = priced_account()
    with pytest.raises(InsufficientCredits):
        consume(account=account, feature="api_call")


def test_plan_price_overrides_the_feature_price():
    account, _ = priced_account(credits=100, plan=True, plan_feature={"credits_per_unit": D("0.5")})
    assert consume(account=account, feature="api_call", quantity=4).usage_event.credits == D(2)


def test_feature_missing_from_the_plan_is_not_enabled():
    account, _ = priced_account(credits=100, plan=True)
    FeatureFactory(code="export")
    with pytest.raises(FeatureNotEnabled):
        consume(account=account, feature="export")


def test_feature_disabled_on_the_plan_is_not_enabled():
    account, _ = priced_account(credits=100, plan=True, plan_feature={"enabled": False})
    with pytest.raises(FeatureNotEnabled):
        consume(account=account, feature="api_call")


def test_without_a_plan_metered_features_are_pay_as_you_go():
    account, _ = priced_account(credits=10)
    assert consume(account=account, feature="api_call").usage_event.credits == D(1)


def test_quota_counts_units_per_period_and_blocks_beyond_it():
    account, _ = priced_account(credits=100, plan=True, plan_feature={"limit_per_period": D(5)})
    consume(account=account, feature="api_call", quantity=3)
    consume(account=account, feature="api_call", quantity=2)
    with pytest.raises(QuotaExceeded) as excinfo:
        consume(account=account, feature="api_call", quantity="0.5")
    assert excinfo.value.details["used_this_period"] == "5"
    assert wallet_of(account).balance == D(95)


def test_quota_resets_in_a_new_period():
    from apps.periods.services import put_account_on_plan

    plan = PlanFactory()
    account, _ = priced_account(credits=100, plan=plan, plan_feature={"limit_per_period": D(1)})
    consume(account=account, feature="api_call")
    put_account_on_plan(account=account, plan=plan, starts_at=timezone.now() + timedelta(seconds=1))
    consume(account=account, feature="api_call")


def test_suspended_account_cannot_consume():
    account, _ = priced_account(credits=100, status="suspended")
    with pytest.raises(AccountSuspended):
        consume(account=account, feature="api_call")


@pytest.mark.parametrize("code", ["nope", "retired"])
def test_unknown_or_inactive_feature_is_not_found(code):
    account, _ = priced_account(credits=100)
    FeatureFactory(code="retired", active=False)
    with pytest.raises(FeatureNotFound):
        consume(account=account, feature=code)


def test_an_on_off_feature_the_plan_enables_cannot_be_consumed():
    plan = PlanFactory()
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="sso", kind="boolean",
                                                         credit_type=None))  # fmt: skip
    account, _ = priced_account(credits=100, plan=plan)
    with pytest.raises(InvalidInput, match="on/off"):
        consume(account=account, feature="sso")


@pytest.mark.parametrize("terms", ["no plan", "not on the plan", "disabled on the plan"])
def test_an_on_off_feature_the_plan_does_not_enable_is_not_enabled(terms):
    sso = FeatureFactory(code="sso", kind="boolean", credit_type=None)
    plan = None if terms == "no plan" else PlanFactory()
    if terms == "disabled on the plan":
        PlanFeatureFactory(plan=plan, feature=sso, enabled=False)
    account, _ = priced_account(credits=100, plan=plan)
    with pytest.raises(FeatureNotEnabled):
        consume(account=account, feature="sso")
    assert not UsageEvent.objects.exists()


def test_repeat_with_the_same_key_and_payload_returns_the_first_result():
    account, _ = priced_account(credits=10)
    first = consume(account=account, feature="api_call", quantity=2, idempotency_key="k1")
    again = consume(account=account, feature="api_call", quantity=2, idempotency_key="k1")
    assert again.replayed
    assert again.usage_event.pk == first.usage_event.pk
    assert again.usage_event.balance_after == D(8)
    assert wallet_of(account).balance == D(8)
    assert_ledger_sound()


def test_a_replay_answers_even_when_credits_have_run_out_since():
    account, _ = priced_account(credits=2)
    consume(account=account, feature="api_call", quantity=2, idempotency_key="k1")
    assert consume(account=account, feature="api_call", quantity=2, idempotency_key="k1").replayed


def test_same_key_with_another_payload_is_a_conflict():
    account, _ = priced_account(credits=10)
    consume(account=account, feature="api_call", quantity=2, idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused):
        consume(account=account, feature="api_call", quantity=3, idempotency_key="k1")
    assert wallet_of(account).balance == D(8)


def test_keys_are_scoped_per_account():
    account, _ = priced_account(credits=10)
    other, _ = priced_account(credits=10, feature_code="other_feature")
    consume(account=account, feature="api_call", idempotency_key="same")
    assert not consume(account=other, feature="other_feature", idempotency_key="same").replayed


def test_expired_grants_are_not_spent_even_before_the_expiry_job_runs(time_machine):
    account, _ = priced_account()
    give(account, 10, days=1)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    with pytest.raises(InsufficientCredits):
        consume(account=account, feature="api_call")


def test_held_credits_are_not_available():
    from apps.usage.services import reserve

    account, _ = priced_account(credits=10)
    reserve(account=account, feature="api_call", quantity=8)
    with pytest.raises(InsufficientCredits) as excinfo:
        consume(account=account, feature="api_call", quantity=3)
    assert excinfo.value.details["available"] == "2"


def test_metadata_over_4_kib_is_rejected():
    account, _ = priced_account(credits=10)
    with pytest.raises(InvalidInput, match="metadata"):
        consume(account=account, feature="api_call", metadata={"x": "y" * 4100})


class TestOverage:
    @pytest.fixture
    def account(self):
        plan = PlanFactory(overage_policy="allow", overage_limit=D(50))
        account, _ = priced_account(credits=10, plan=plan)
        return account

    def test_allow_policy_lets_the_balance_go_negative_down_to_the_limit(self, account):
        event = consume(account=account, feature="api_call", quantity=60).usage_event
        assert event.balance_after == D(-50)
        overage = LedgerEntry.objects.get(kind="overage")
        assert (overage.amount, overage.grant) == (D(-50), None)
        assert wallet_of(account).debt == D(50)
        assert_ledger_sound()

    def test_beyond_the_overage_limit_is_insufficient(self, account):
        with pytest.raises(InsufficientCredits):
            consume(account=account, feature="api_call", quantity="60.000001")

    def test_the_next_grant_pays_the_debt_first(self, account):
        consume(account=account, feature="api_call", quantity=40)
        grant = give(account, 100)
        assert (grant.remaining, grant.debt_settled) == (D(70), D(30))
        wallet = wallet_of(account)
        assert (wallet.balance, wallet.debt) == (D(70), D(0))
        assert_ledger_sound()

    def test_a_small_grant_pays_part_of_the_debt(self, account):
        consume(account=account, feature="api_call", quantity=40)
        grant = give(account, 10)
        assert (grant.remaining, grant.debt_settled) == (D(0), D(10))
        assert wallet_of(account).debt == D(20)
        assert_ledger_sound()


def test_a_refused_consume_on_an_overdraft_plan_leaves_no_empty_wallet():
    plan = PlanFactory(overage_policy="allow", overage_limit=D(5))
    account, _ = priced_account(plan=plan)
    with pytest.raises(InsufficientCredits):
        consume(account=account, feature="api_call", quantity=6)
    assert not Wallet.objects.filter(account=account).exists()
    consume(account=account, feature="api_call", quantity=5)
    assert wallet_of(account).balance == D(-5)
    assert_ledger_sound()


def test_a_consume_after_an_expiry_records_the_expiry_then_the_charge(time_machine):
    account, _ = priced_account()
    expiring, lasting = give(account, 10, days=1), give(account, 100)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    event = consume(account=account, feature="api_call", quantity=3).usage_event
    entries = list(LedgerEntry.objects.filter(kind__in=["expire", "consume"]).order_by("id"))
    assert [(e.kind, e.grant_id, e.usage_event_id, e.balance_after) for e in entries] == [
        ("expire", expiring.pk, None, D(100)),
        ("consume", lasting.pk, event.pk, D(97)),
    ]
    assert_ledger_sound()


def test_a_free_feature_keeps_its_quota_without_a_wallet():
    account, _ = priced_account(
        credits_per_unit=0, plan=True, plan_feature={"limit_per_period": D(2)}
    )
    consume(account=account, feature="api_call", quantity=2)
    with pytest.raises(QuotaExceeded):
        consume(account=account, feature="api_call")
    assert not Wallet.objects.filter(account=account).exists()


def test_a_refused_consume_writes_nothing_at_all_not_even_the_lazy_expiry(time_machine):
    account, _ = priced_account()
    give(account, 10, days=1)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    entries = LedgerEntry.objects.count()
    with pytest.raises(InsufficientCredits):
        consume(account=account, feature="api_call")
    assert LedgerEntry.objects.count() == entries
    assert_ledger_sound()
