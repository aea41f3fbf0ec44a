"""Plan versions (docs/catalog.md, "Plan versions"): a change of terms on a plan in use
publishes the next version; subscribers keep theirs until moved, new ones get the newest."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.core.management import CommandError

from apps.accounts.models import Subscription
from apps.billing.billing_page import plan_offers
from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.plan_moves import move_subscribers, preview_move, version_of
from apps.catalog.models import Plan
from apps.catalog.pricebook import read_document
from apps.catalog.services import import_catalog
from apps.periods.services import put_account_on_plan, renew_due_subscriptions
from apps.usage.services import consume
from apps.wallets.models import CreditGrant
from apps.webhooks.models import WebhookEvent
from tests.commands import run, write
from tests.factories import AccountFactory
from tests.ledger import assert_ledger_sound, wallet_of
from tests.stripe_helpers import control, subscribe

JAN_31 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
FEB_28 = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)


def catalog(*, price="29", credits="2000", cost="0.5", name="Starter"):
    return f"""
version: 1
credit_types:
- {{code: credits, name: Credits}}
features:
- {{code: api_call, name: API call, credit_type: credits, credits_per_unit: "0.5"}}
plans:
- code: starter
  name: {name}
  price: {price}
  included_credits: {{credits: {credits}}}
  features:
  - {{feature: api_call, credits_per_unit: "{cost}"}}
"""


def load(text, **options):
    return import_catalog(raw=read_document(text, filename="catalog.yaml"), **options)


def on_starter(external_id):
    account = AccountFactory(external_id=external_id)
    put_account_on_plan(account=account, plan=version_of(code="starter"))
    return account


def plan_period_grants(account):
    return [
        g.amount
        for g in CreditGrant.objects.filter(account=account, source="plan_period").order_by("id")
    ]


def charged(account, quantity=10):
    return consume(account=account, feature="api_call", quantity=D(quantity)).usage_event.credits


@pytest.fixture
def starter(db, time_machine):
    time_machine.move_to(JAN_31, tick=False)
    load(catalog())
    return version_of(code="starter")


def test_a_price_raise_keeps_subscribers_on_their_version_and_gives_new_ones_the_new_terms(
    starter, time_machine
):
    old = on_starter("old")
    result = load(catalog(price="39", credits="3000", cost="1"))

    assert "~ plan starter: version 2 (subscribers of version 1 keep its terms" in (result.report())
    v1, v2 = Plan.objects.filter(code="starter").order_by("version")
    assert (v1.current, v1.price, v2.current, v2.price) == (False, D("29"), True, D("39"))
    new = on_starter("new")
    assert Subscription.objects.get(account=new).plan == v2

    # Costs: each at its own version's, from the same feature.
    assert (charged(old), charged(new)) == (D("5"), D("10"))
    # Included credits at renewal: each by its own version.
    renew_due_subscriptions(now=FEB_28)
    assert plan_period_grants(old) == [D(2000), D(2000)]
    assert plan_period_grants(new) == [D(3000), D(3000)]
    assert Subscription.objects.get(account=old, status="active").plan == v1
    assert_ledger_sound()


def test_putting_an_account_on_its_own_plan_again_keeps_its_version(starter, authed_client):
    old = on_starter("old")
    load(catalog(price="39"))
    answer = authed_client.put("/api/v1/accounts/old", {"plan": "starter"}, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["plan"], answer.json()["plan_version"]) == ("starter", 1)
    assert Subscription.objects.filter(account=old).count() == 1


def test_the_api_shows_the_version_and_where_each_term_comes_from(starter, authed_client):
    on_starter("old")
    load(catalog(price="39", cost="2"))
    on_starter("new")
    AccountFactory(external_id="none")

    old = authed_client.get("/api/v1/accounts/old/entitlements").json()
    new = authed_client.get("/api/v1/accounts/new/entitlements").json()
    none = authed_client.get("/api/v1/accounts/none/entitlements").json()
    assert (old["plan"], old["plan_version"]) == ("starter", 1)
    assert [(f["source"], f["credits_per_unit"]) for f in old["features"]] == [
        ("plan:starter@v1", "0.500000")
    ]
    assert [(f["source"], f["credits_per_unit"]) for f in new["features"]] == [
        ("plan:starter@v2", "2.000000")
    ]
    assert (none["plan_version"], none["features"][0]["source"]) == (None, "feature")
    assert authed_client.get("/api/v1/accounts/new").json()["plan_version"] == 2


def test_a_listing_change_or_a_plan_nobody_is_on_changes_in_place(starter):
    assert "version" not in load(catalog(price="35")).report()  # nobody subscribed yet
    on_starter("old")
    load(catalog(price="35", name="Starter Plus"))
    plan = Plan.objects.get(code="starter")
    assert (plan.version, plan.name, plan.price) == (1, "Starter Plus", D("35"))
    assert plan.history.first().history_change_reason == "import_catalog file"


def test_a_dry_run_says_which_version_it_would_publish_and_writes_nothing(starter, tmp_path):
    on_starter("old")
    output = run("import_catalog", write(tmp_path, catalog(price="39")), "--dry-run",
                 "--move-subscribers", "now")  # fmt: skip
    assert "~ plan starter: version 2" in output and "price: '29.00' -> '39.00'" in output
    assert "Would move 1 subscriber(s) of starter to version 2, now." in output
    assert Plan.objects.filter(code="starter").count() == 1


def test_export_writes_the_current_versions(starter):
    on_starter("old")
    load(catalog(price="39"))
    exported = read_document(run("export_catalog"), filename="x.yaml")
    assert [(p["code"], p["version"], p["price"]) for p in exported["plans"]] == [
        ("starter", 2, "39.00")
    ]


def test_moving_subscribers_at_period_end_gives_them_the_new_terms_at_renewal(starter, tmp_path):
    old = on_starter("old")
    other = on_starter("other")
    load(catalog(price="39", credits="3000", cost="1"))

    output = run("move_subscribers", "starter", "--from-version", "1", "--when",
                 "period_end", "--limit", "1")  # fmt: skip
    assert "Move 2 subscriber(s) of starter from version 1 to version 2, at their " in output
    assert "included_credits.credits: '2000' -> '3000'" in output
    assert "Moved 1 subscriber(s)." in output
    moved = Subscription.objects.get(account=old)
    assert (moved.plan.version, moved.scheduled_plan.version) == (1, 2)
    assert charged(old) == D("5")  # nothing changes before the period ends

    renew_due_subscriptions(now=FEB_28)
    assert plan_period_grants(old) == [D(2000), D(3000)]
    assert plan_period_grants(other) == [D(2000), D(2000)]  # not moved: --limit 1
    assert charged(old) == D("10")
    assert Subscription.objects.get(account=old, status="active").plan.version == 2
    assert_ledger_sound()


def test_moving_now_keeps_the_period_and_its_credits_and_changes_costs_at_once(starter, tmp_path):
    old = on_starter("old")
    output = run("import_catalog", write(tmp_path, catalog(price="39", credits="3000",
                                                           cost="1")),
                 "--move-subscribers", "now")  # fmt: skip
    assert "starter v1: Moved 1 subscriber(s)." in output
    subscription = Subscription.objects.get(account=old)
    assert (subscription.plan.version, subscription.current_period_start) == (2, JAN_31)
    assert plan_period_grants(old) == [D(2000)]  # no second allowance for this period
    assert charged(old) == D("10")
    assert subscription.history.first().history_change_reason is None
    assert_ledger_sound()


def test_a_move_between_two_plans_or_onto_the_same_version_is_refused(starter):
    load(catalog(price="39").replace("code: starter", "code: other"))
    with pytest.raises(CommandError, match="Pick two different versions"):
        run("move_subscribers", "other", "--from-version", "1", "--when", "now")
    with pytest.raises(CommandError, match="has no a version 7|has no version 7"):
        run("move_subscribers", "starter", "--from-version", "7", "--when", "now")
    v1 = version_of(code="starter")
    with pytest.raises(Exception, match="Pick two different versions"):
        preview_move(from_plan=v1, to_plan=v1, when="now")
    with pytest.raises(Exception, match="between versions of one plan"):
        move_subscribers(from_plan=v1, to_plan=version_of(code="other"), when="now")


def stripe_subscriber_of_v1(authed_client, offline_stripe, webhook, stripe_events):
    """Acme subscribes to starter v1 through Stripe, then v2 is published at 39 and synced:
    `(account, Stripe's subscription id, the sync's result)`."""
    load(catalog())
    sync_stripe_catalog()
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, version_of(code="starter"), offline_stripe)
    webhook.deliver(stripe_events.take())
    load(catalog(price="39"))
    return account, stripe_id, sync_stripe_catalog()


def test_a_stripe_subscriber_moves_at_stripe_and_the_webhook_settles_it(
    db, authed_client, offline_stripe, webhook, stripe_events, time_machine
):
    time_machine.move_to(JAN_31, tick=True)
    account, stripe_id, synced = stripe_subscriber_of_v1(
        authed_client, offline_stripe, webhook, stripe_events
    )
    assert "plan starter@v2" in synced.created
    v1, v2 = Plan.objects.filter(code="starter").order_by("version")
    assert v2.stripe_price_id and v2.stripe_price_id != v1.stripe_price_id
    # The billing page offers a version 1 subscriber nothing for its own plan.
    own = Subscription.objects.get(stripe_subscription_id=stripe_id)
    assert plan_offers(subscription=own) == []

    result = move_subscribers(from_plan=v1, to_plan=v2, when="period_end")
    assert result.moved == ["acme"] and result.failed == []
    webhook.deliver(stripe_events.take())  # customer.subscription.updated: the new price

    remote = offline_stripe.get("subscription", stripe_id)
    assert remote["items"]["data"][0]["price"]["id"] == v2.stripe_price_id
    subscription = Subscription.objects.get(stripe_subscription_id=stripe_id)
    assert (subscription.plan, subscription.scheduled_plan) == (v1, v2)
    assert wallet_of(account).balance == D(2000)  # no fresh allowance before the period ends

    # Stripe bills version 2 at the period end; its invoice.paid renews onto version 2.
    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())
    subscription.refresh_from_db()
    assert (subscription.plan, subscription.scheduled_plan) == (v2, None)
    assert plan_period_grants(account) == [D(2000), D(2000)]
    assert not WebhookEvent.objects.filter(type="purchase.mismatch").exists()


def test_an_import_that_moves_subscribers_moves_those_of_every_earlier_version(starter, tmp_path):
    first = on_starter("first")
    load(catalog(price="39", credits="3000"))  # v2
    second = on_starter("second")
    output = run("import_catalog", write(tmp_path, catalog(price="49", credits="4000")),
                 "--move-subscribers", "period_end")  # fmt: skip
    assert "starter v1: Moved 1" in output and "starter v2: Moved 1" in output
    scheduled = Subscription.objects.filter(account__in=[first, second]).values_list(
        "scheduled_plan__version", flat=True
    )
    assert sorted(scheduled) == [3, 3]


def test_a_stripe_move_whose_answer_is_lost_is_kept_when_stripe_made_it(
    db, authed_client, offline_stripe, webhook, stripe_events, time_machine, caplog
):
    """Stripe applies the move but its answer never comes: CreditDesk reads the subscription
    back instead of undoing its side, so the two stay in step."""
    time_machine.move_to(JAN_31, tick=True)
    account, stripe_id, _ = stripe_subscriber_of_v1(
        authed_client, offline_stripe, webhook, stripe_events
    )
    v1, v2 = Plan.objects.filter(code="starter").order_by("version")

    control(offline_stripe, "lose_next_answer")
    result = move_subscribers(from_plan=v1, to_plan=v2, when="period_end")
    assert "Stripe refused Subscription.modify" in caplog.text  # the answer was lost
    assert result.moved == ["acme"] and result.failed == [], result.failed
    remote = offline_stripe.get("subscription", stripe_id)
    assert remote["items"]["data"][0]["price"]["id"] == v2.stripe_price_id
    webhook.deliver(stripe_events.take())
    subscription = Subscription.objects.get(stripe_subscription_id=stripe_id)
    assert (subscription.plan, subscription.scheduled_plan) == (v1, v2)
    assert wallet_of(account).balance == D(2000)  # no plan switch here, no fresh credits
