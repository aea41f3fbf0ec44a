"""Plan versions in the admin: a change of terms on a version in use shows what changes and,
confirmed, publishes the next version; subscribers move by an action with a preview."""

from decimal import Decimal as D

import pytest
from django.contrib.messages import get_messages

from apps.accounts.models import Subscription
from apps.catalog.models import Plan
from apps.periods.services import put_account_on_plan
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan():
    plan = PlanFactory(code="pro", name="Pro", price=D("49.00"))
    credits = CreditTypeFactory(code="credits")
    PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=D(1000))
    feature = FeatureFactory(code="api_call", credit_type=credits)
    PlanFeatureFactory(plan=plan, feature=feature, credits_per_unit=D("0.5"))
    return plan


@pytest.fixture
def pricing(client):
    client.force_login(UserFactory(groups=["Pricing"]))
    return client


def subscriber(plan, external_id="acme"):
    account = AccountFactory(external_id=external_id)
    put_account_on_plan(account=account, plan=plan)
    return account


def change_form(plan, **changes):
    """The plan's change form as the admin posts it, with `changes` over its values."""
    allowance = plan.allowances.get()
    plan_feature = plan.plan_features.get()
    data = {
        "name": plan.name, "description": plan.description, "public": "on", "active": "on",
        "billing_interval": plan.billing_interval, "price": str(plan.price),
        "currency": plan.currency, "platform_fee_value": "0.00",
        "rollover_percent": "0", "rollover_cap": "", "rollover_expires_after_periods": "1",
        "overage_policy": "block", "overage_limit": "0", "overage_unit_price": "0",
        "trial_days": "0", "allowances-0-trial_credits": "0",
        "allowances-TOTAL_FORMS": "1", "allowances-INITIAL_FORMS": "1",
        "allowances-MIN_NUM_FORMS": "0", "allowances-MAX_NUM_FORMS": "1000",
        "allowances-0-id": allowance.pk, "allowances-0-plan": plan.pk,
        "allowances-0-credit_type": allowance.credit_type_id,
        "allowances-0-credits_per_period": str(allowance.credits_per_period),
        "allowances-0-standalone_value": "",
        "plan_features-TOTAL_FORMS": "1", "plan_features-INITIAL_FORMS": "1",
        "plan_features-MIN_NUM_FORMS": "0", "plan_features-MAX_NUM_FORMS": "1000",
        "plan_features-0-id": plan_feature.pk, "plan_features-0-plan": plan.pk,
        "plan_features-0-feature": plan_feature.feature_id, "plan_features-0-enabled": "on",
        "plan_features-0-credits_per_unit": str(plan_feature.credits_per_unit),
        "plan_features-0-limit_per_period": "",
    }  # fmt: skip
    data.update(changes)
    return data


def url(plan):
    return f"/admin/catalog/plan/{plan.pk}/change/"


def test_a_price_raise_on_a_plan_in_use_asks_first_then_publishes_the_next_version(pricing, plan):
    account = subscriber(plan)
    form = change_form(plan, price="59.00", **{"plan_features-0-credits_per_unit": "1"})
    page = pricing.post(url(plan), form)

    assert page.status_code == 200
    html = page.content.decode()
    assert "Publish version 2 of Pro?" in html and "1 live subscriber" in html
    assert "<code>price</code></td><td>49.00</td><td><strong>59.00</strong>" in html
    assert "<code>features[api_call].credits_per_unit</code>" in html
    assert Plan.objects.get().price == D("49.00")  # nothing written yet

    answer = pricing.post(url(plan), {"_publish": "1", "entry": page.context["entry"],
                                      "reason": "2027 prices"})  # fmt: skip
    v1, v2 = Plan.objects.order_by("version")
    assert answer.status_code == 302 and answer["Location"] == url(v2)
    assert (v1.price, v1.current, v2.price, v2.current) == (D("49.00"), False, D("59.00"), True)
    assert v2.plan_features.get().credits_per_unit == D("1")
    assert Subscription.objects.get(account=account).plan == v1
    published = v2.history.earliest()
    assert published.history_change_reason == "admin: 2027 prices: published v2"
    assert published.history_user.groups.get().name == "Pricing"


def test_a_plan_nobody_is_on_or_a_listing_change_saves_in_place(pricing, plan):
    assert pricing.post(url(plan), change_form(plan, price="59.00")).status_code == 302
    subscriber(plan)
    answer = pricing.post(url(plan), change_form(plan, price="59.00", name="Pro 2027"))
    assert answer.status_code == 302
    assert list(Plan.objects.values_list("version", "name", "price")) == [
        (1, "Pro 2027", D("59.00"))
    ]


def test_an_invalid_edit_shows_the_form_errors_not_the_confirmation(pricing, plan):
    subscriber(plan)
    page = pricing.post(url(plan), change_form(plan, price="-1"))
    assert page.status_code == 200 and "Publish version" not in page.content.decode()
    assert page.context["adminform"].form.errors["price"]


def test_an_earlier_version_is_read_only(pricing, plan):
    subscriber(plan)
    page = pricing.post(url(plan), change_form(plan, price="59.00"))
    pricing.post(url(plan), {"_publish": "1", "entry": page.context["entry"]})
    assert pricing.post(url(plan), change_form(plan, price="1.00")).status_code == 403
    assert "Save" not in pricing.get(url(plan)).content.decode().split("submit-row")[-1][:200]


def test_the_move_action_previews_then_moves_the_subscribers(pricing, plan):
    account = subscriber(plan)
    page = pricing.post(url(plan), change_form(plan, price="59.00"))
    pricing.post(url(plan), {"_publish": "1", "entry": page.context["entry"]})
    v1, v2 = Plan.objects.order_by("version")
    action = {"action": "move_to_current_version", "_selected_action": [v1.pk]}

    preview = pricing.post("/admin/catalog/plan/?versions=all", action)
    html = preview.content.decode()
    assert "version 1 &rarr; version 2" in html and "1 live subscriber" in html
    assert "<code>price</code></td><td>49.00</td>" in html
    assert Subscription.objects.get(account=account).scheduled_plan is None

    done = pricing.post("/admin/catalog/plan/?versions=all",
                        {**action, "_move": "1", "when": "period_end"}, follow=True)  # fmt: skip
    assert [str(m) for m in done.context["messages"]] == ["pro@v1: Moved 1 subscriber(s)."]
    subscription = Subscription.objects.get(account=account)
    assert (subscription.plan, subscription.scheduled_plan) == (v1, v2)
    assert subscription.history.first().history_user is not None


def test_the_plan_list_shows_current_versions_unless_asked(pricing, plan):
    subscriber(plan)
    page = pricing.post(url(plan), change_form(plan, price="59.00"))
    pricing.post(url(plan), {"_publish": "1", "entry": page.context["entry"]})
    assert len(pricing.get("/admin/catalog/plan/").context["cl"].result_list) == 1
    assert len(pricing.get("/admin/catalog/plan/?versions=all").context["cl"].result_list) == 2
    [earlier] = pricing.get("/admin/catalog/plan/?versions=earlier").context["cl"].result_list
    assert earlier.version == 1


def test_a_publish_confirmed_after_someone_else_saved_the_plan_writes_nothing(pricing, plan):
    subscriber(plan)
    page = pricing.post(url(plan), change_form(plan, price="59.00"))
    Plan.objects.filter(pk=plan.pk).update(name="Pro (renamed meanwhile)")  # another tab
    answer = pricing.post(url(plan), {"_publish": "1", "entry": page.context["entry"],
                                      "before": page.context["before"]})  # fmt: skip
    assert answer.status_code == 302
    assert list(Plan.objects.values_list("version", "name", "price")) == [
        (1, "Pro (renamed meanwhile)", D("49.00"))
    ]
    said = [str(m) for m in get_messages(answer.wsgi_request)]
    assert any("changed by someone else since you saw it" in m for m in said), said
