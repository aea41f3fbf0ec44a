"""consume_batch(): each event stands alone, in order, with one lock per wallet."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import (
    FeatureNotEnabled,
    FeatureNotFound,
    IdempotencyKeyReused,
    InsufficientCredits,
    InvalidInput,
    QuotaExceeded,
)
from apps.usage.models import UsageCounter
from apps.usage.services import ConsumeRequest, consume_batch
from apps.wallets.models import LedgerEntry
from tests.factories import FeatureFactory, PlanFactory, PlanFeatureFactory
from tests.ledger import D, assert_ledger_sound, give, priced_account, wallet_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("consume_path")]


def requests_for(account, *quantities, feature="api_call", keys=None):
    keys = keys or [None] * len(quantities)
    return [
        ConsumeRequest.build(account=account, feature=feature, quantity=q, idempotency_key=k)
        for q, k in zip(quantities, keys, strict=True)
    ]


def test_each_event_stands_alone_and_results_keep_their_order():
    account, _ = priced_account(credits=10)
    outcomes = consume_batch(requests=requests_for(account, 4, 7, 6, D("0.5")))
    assert [o.error.__class__ if o.error else o.usage_event.credits for o in outcomes] == [
        D(4), InsufficientCredits, D(6), InsufficientCredits,
    ]  # fmt: skip
    assert wallet_of(account).balance == D(0)
    assert_ledger_sound()


def test_a_bad_event_does_not_stop_the_others():
    account, _ = priced_account(credits=10)
    batch = [*requests_for(account, 1), *requests_for(account, 1, feature="nope"),
             *requests_for(account, 1)]  # fmt: skip
    outcomes = consume_batch(requests=batch)
    assert isinstance(outcomes[1].error, FeatureNotFound)
    assert outcomes[0].usage_event and outcomes[2].usage_event
    assert wallet_of(account).balance == D(8)


def test_in_a_batch_an_on_off_feature_answers_as_a_single_consume_does():
    plan = PlanFactory()
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="sso", kind="boolean",
                                                         credit_type=None))  # fmt: skip
    FeatureFactory(code="audit_log", kind="boolean", credit_type=None)
    account, _ = priced_account(credits=10, plan=plan)
    batch = [*requests_for(account, 1, feature="audit_log"), *requests_for(account, 1),
             *requests_for(account, 1, feature="sso")]  # fmt: skip
    outcomes = consume_batch(requests=batch)
    assert isinstance(outcomes[0].error, FeatureNotEnabled)
    assert outcomes[1].usage_event.credits == D(1)
    assert isinstance(outcomes[2].error, InvalidInput)
    assert wallet_of(account).balance == D(9)


def test_a_batch_burns_down_by_priority_then_soonest_expiry_never_last_then_oldest(time_machine):
    time_machine.move_to(timezone.now(), tick=False)  # grants made in one instant: equal expiries
    account, _ = priced_account()
    never = give(account, 5)
    later = give(account, 5, days=30)
    older, newer = give(account, 5, days=2), give(account, 5, days=2)
    first = give(account, 5, priority=10)
    outcomes = consume_batch(requests=requests_for(account, 3, 4, 6, 5, 2))
    e = [o.usage_event.pk for o in outcomes]
    draws = LedgerEntry.objects.filter(kind="consume").order_by("id")
    assert [(d.usage_event_id, d.grant_id, d.amount) for d in draws] == [
        (e[0], first.pk, D(-3)),
        (e[1], first.pk, D(-2)), (e[1], older.pk, D(-2)),
        (e[2], older.pk, D(-3)), (e[2], newer.pk, D(-3)),
        (e[3], newer.pk, D(-2)), (e[3], later.pk, D(-3)),
        (e[4], later.pk, D(-2)),
    ]  # fmt: skip
    never.refresh_from_db()
    assert never.remaining == D(5)
    assert_ledger_sound()


def test_a_quota_is_counted_event_by_event_inside_a_batch():
    account, _ = priced_account(plan=True, plan_feature={"limit_per_period": D(5)})
    give(account, 100)
    outcomes = consume_batch(requests=requests_for(account, 2, 2, 2, 1))
    assert [o.error.__class__ if o.error else o.usage_event.credits for o in outcomes] == [
        D(2), D(2), QuotaExceeded, D(1),
    ]  # fmt: skip
    assert outcomes[2].error.details == {
        "feature": "api_call", "limit_per_period": "5", "used_this_period": "4",
    }  # fmt: skip
    assert UsageCounter.objects.get(account=account).used == D(5)
    assert wallet_of(account).balance == D(95)


def test_a_plans_price_overrides_the_feature_price_in_a_batch():
    plan = PlanFactory()
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="export", credits_per_unit=D(3)))
    account, _ = priced_account(credits=100, credits_per_unit=2, plan=plan,
                                plan_feature={"credits_per_unit": D("0.5")})  # fmt: skip
    batch = [*requests_for(account, 2, 3), *requests_for(account, 1, feature="export")]
    outcomes = consume_batch(requests=batch)
    assert [(o.usage_event.credits_per_unit, o.usage_event.credits) for o in outcomes] == [
        (D("0.5"), D(1)), (D("0.5"), D("1.5")), (D(3), D(3)),
    ]  # fmt: skip
    assert wallet_of(account).balance == D("94.5")


def test_in_a_batch_a_metered_feature_the_plan_disables_or_leaves_out_is_not_enabled():
    plan = PlanFactory()
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="export"), enabled=False)
    FeatureFactory(code="ocr")
    account, _ = priced_account(credits=10, plan=plan)
    batch = [*requests_for(account, 1, feature="export"), *requests_for(account, 1),
             *requests_for(account, 1, feature="ocr")]  # fmt: skip
    outcomes = consume_batch(requests=batch)
    assert isinstance(outcomes[0].error, FeatureNotEnabled)
    assert outcomes[1].usage_event.credits == D(1)
    assert isinstance(outcomes[2].error, FeatureNotEnabled)
    assert wallet_of(account).balance == D(9)


def test_a_batch_after_an_expiry_links_each_entry_to_its_grant_and_event(time_machine):
    account, _ = priced_account()
    expiring, lasting = give(account, 10, days=1), give(account, 100)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    outcomes = consume_batch(requests=requests_for(account, 2, 3))
    entries = list(LedgerEntry.objects.filter(kind__in=["expire", "consume"]).order_by("id"))
    assert [(e.kind, e.grant_id, e.usage_event_id, e.balance_after) for e in entries] == [
        ("expire", expiring.pk, None, D(100)),
        ("consume", lasting.pk, outcomes[0].usage_event.pk, D(98)),
        ("consume", lasting.pk, outcomes[1].usage_event.pk, D(95)),
    ]
    assert_ledger_sound()


def test_overage_and_grant_draws_of_two_accounts_in_one_batch_stay_apart():
    plan = PlanFactory(overage_policy="allow", overage_limit=D(10))
    a, _ = priced_account(plan=plan)
    b, _ = priced_account(credits=5, feature_code="other", plan=plan)
    outcomes = consume_batch(requests=[*requests_for(a, 4), *requests_for(b, 2, feature="other")])
    assert [o.usage_event.balance_after for o in outcomes] == [D(-4), D(3)]
    overage, draw = LedgerEntry.objects.filter(kind__in=["overage", "consume"]).order_by("id")
    assert (overage.kind, overage.grant_id, overage.account) == ("overage", None, a)
    assert (draw.kind, draw.account, draw.grant.account) == ("consume", b, b)
    assert_ledger_sound()


def test_events_of_several_accounts_in_one_batch():
    a, _ = priced_account(credits=5)
    b, _ = priced_account(credits=5, feature_code="other")
    outcomes = consume_batch(requests=[*requests_for(a, 2), *requests_for(b, 3, feature="other")])
    assert [o.usage_event.balance_after for o in outcomes] == [D(3), D(2)]
    assert_ledger_sound()


def test_a_repeated_key_inside_a_batch_replays_the_first_event():
    account, _ = priced_account(credits=10)
    outcomes = consume_batch(requests=requests_for(account, 2, 2, 3, keys=["k", "k", "k"]))
    assert not outcomes[0].replayed
    assert outcomes[1].replayed and outcomes[1].usage_event.pk == outcomes[0].usage_event.pk
    assert isinstance(outcomes[2].error, IdempotencyKeyReused)
    assert wallet_of(account).balance == D(8)


def test_a_batch_replayed_whole_changes_nothing():
    account, _ = priced_account(credits=10)
    keys = ["a", "b", "c"]
    consume_batch(requests=requests_for(account, 1, 2, 3, keys=keys))
    again = consume_batch(requests=requests_for(account, 1, 2, 3, keys=keys))
    assert all(o.replayed for o in again)
    assert wallet_of(account).balance == D(4)
    assert_ledger_sound()


@pytest.mark.postgres  # SQLite splits bulk inserts at 999 parameters, so there it grows slowly
def test_batch_queries_do_not_grow_with_the_number_of_events(django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    account, _ = priced_account(credits=100000)

    def count(n):
        with CaptureQueriesContext(connection) as ctx:
            consume_batch(
                requests=requests_for(account, *[1] * n, keys=[f"{n}-{i}" for i in range(n)])
            )
        return len(ctx.captured_queries)

    small, large = count(50), count(500)
    assert small == large
    with django_assert_max_num_queries(small):
        consume_batch(requests=requests_for(account, *[1] * 500))
    assert_ledger_sound()


def test_replaying_a_batch_costs_no_query_per_event():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    account, _ = priced_account(credits=100)
    keys = [f"r{i}" for i in range(20)]
    consume_batch(requests=requests_for(account, *[1] * 20, keys=keys))
    with CaptureQueriesContext(connection) as ctx:
        outcomes = consume_batch(requests=requests_for(account, *[1] * 20, keys=keys))
    assert all(o.replayed for o in outcomes)
    assert len(ctx.captured_queries) < 10


def test_a_refused_events_wallet_is_not_expired_by_the_batch(time_machine):
    from tests.factories import CreditTypeFactory, FeatureFactory, PlanFeatureFactory

    plan = PlanFactory()
    account, _ = priced_account(plan=plan)
    gold = CreditTypeFactory(code="gold")
    premium = FeatureFactory(code="premium", credit_type=gold)
    PlanFeatureFactory(plan=plan, feature=premium, enabled=False)
    give(account, 10)
    give(account, 5, credit_type=gold, days=1)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    consume_batch(requests=requests_for(account, 1, feature="premium")
                  + requests_for(account, 1))  # fmt: skip
    # Only the charged wallet was locked; gold's expiry is left to the job, on both paths.
    assert LedgerEntry.objects.filter(kind="expire").count() == 0
    assert_ledger_sound()
