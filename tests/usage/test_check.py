from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import FeatureNotFound, InvalidInput
from apps.usage.selectors import check
from apps.wallets.models import LedgerEntry
from tests.factories import FeatureFactory, PlanFactory, PlanFeatureFactory
from tests.ledger import D, give, priced_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("consume_path")]


def test_check_says_yes_with_the_cost_and_what_is_available():
    account, _ = priced_account(credits=10, credits_per_unit="2.5")
    result = check(account=account, feature="api_call", quantity=2)
    assert (result.allowed, result.reason, result.credits_required, result.available) == (
        True, None, D(5), D(10),
    )  # fmt: skip
    assert result.credit_type == "credits"


def test_check_writes_nothing():
    account, _ = priced_account(credits=10)
    entries = LedgerEntry.objects.count()
    check(account=account, feature="api_call", quantity=20)
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ({"credits": 1}, "insufficient_credits"),
        ({"credits": 10, "status": "suspended"}, "account_suspended"),
        ({"credits": 10, "plan": True, "plan_feature": {"enabled": False}}, "feature_not_enabled"),
        ({"credits": 10, "plan": True, "plan_feature": {"limit_per_period": D(1)}},
         "quota_exceeded"),
    ],
)  # fmt: skip
def test_check_says_no_with_the_reason_consume_would_give(setup, reason):
    account, _ = priced_account(**setup)
    result = check(account=account, feature="api_call", quantity=2)
    assert (result.allowed, result.reason) == (False, reason)


def test_check_does_not_count_expired_credits(time_machine):
    account, _ = priced_account()
    give(account, 10, days=1)
    give(account, 1)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    result = check(account=account, feature="api_call", quantity=2)
    assert (result.allowed, result.available) == (False, D(1))


def test_check_counts_the_overdraft_the_plan_allows():
    plan = PlanFactory(overage_policy="allow", overage_limit=D(5))
    account, _ = priced_account(credits=1, plan=plan)
    assert check(account=account, feature="api_call", quantity=6).allowed
    assert not check(account=account, feature="api_call", quantity=7).allowed


def test_check_of_an_on_off_feature_says_whether_the_account_may_use_it():
    plan = PlanFactory()
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="sso", kind="boolean",
                                                         credit_type=None))  # fmt: skip
    included, _ = priced_account(plan=plan)
    excluded, _ = priced_account(plan=True, feature_code="other")
    yes, no = check(account=included, feature="sso"), check(account=excluded, feature="sso")
    assert (yes.allowed, yes.reason, yes.credits_required, yes.available) == (
        True,
        None,
        None,
        None,
    )
    assert (no.allowed, no.reason) == (False, "feature_not_enabled")


def test_check_raises_for_unknown_features_and_bad_quantities():
    account, _ = priced_account(credits=1)
    with pytest.raises(FeatureNotFound):
        check(account=account, feature="nope")
    with pytest.raises(InvalidInput):
        check(account=account, feature="api_call", quantity="1.0000001")


def test_check_uses_at_most_three_queries(django_assert_max_num_queries):
    account, _ = priced_account(credits=10, plan=True, plan_feature={"limit_per_period": D(5)})
    with django_assert_max_num_queries(3):
        check(account=account, feature="api_call")
