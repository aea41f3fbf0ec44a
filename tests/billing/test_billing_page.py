"""The hosted billing page: a signed, expiring link for one account; the page shows balance,
grants and expiries, 30 days of usage, packs and plans to buy through Checkout, invoices."""

import re
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import Subscription
from apps.billing.billing_page import billing_link, usage_by_day
from apps.billing.models import Purchase
from apps.catalog.models import Plan
from apps.usage.services import consume
from tests.factories import (
    AccountFactory,
    CreditPackFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
)
from tests.ledger import assert_ledger_sound, give, wallet_of
from tests.stripe_helpers import checkout, pay

pytestmark = pytest.mark.django_db
D = Decimal


def path_of(url):
    return re.sub(r"^https?://[^/]+", "", url)


@pytest.fixture
def link(authed_client, account):
    answer = authed_client.post(f"/api/v1/accounts/{account.external_id}/billing-link")
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_the_api_gives_a_link_that_expires_after_the_configured_minutes(
    authed_client, account, settings
):
    settings.BILLING_LINK_MAX_AGE_MINUTES = 15
    before = timezone.now()
    answer = authed_client.post(f"/api/v1/accounts/{account.external_id}/billing-link")
    body = answer.json()
    assert answer.status_code == 201 and set(body) == {"url", "expires_at"}
    assert body["url"].startswith(settings.SITE_URL + "/billing/")
    expires = timezone.datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(minutes=15) <= expires <= timezone.now() + timedelta(minutes=15)


def test_a_bound_key_gets_no_link_for_another_account(api_client, account):
    from apps.accounts.services import create_api_key

    other = AccountFactory(external_id="other")
    _, raw = create_api_key(name="bound", scopes=["accounts:write"], account=other)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    answer = api_client.post(f"/api/v1/accounts/{account.external_id}/billing-link")
    assert answer.status_code == 404


def test_the_page_shows_balance_grants_next_expiry_usage_and_packs(client, account, pack, link):
    give(account, 500, credit_type=pack.credit_type, days=10, source="promo")
    give(account, 250, credit_type=pack.credit_type, source="manual")
    FeatureFactory(code="api_call", credit_type=pack.credit_type)
    consume(account=account, feature="api_call", quantity=D(50))

    page = client.get(path_of(link["url"]))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="available-credits">700<' in html
    assert "Next expiry: <strong>450</strong>" in html  # the promo grant burnt first
    assert "Buy Pack_1000" in html or f"Buy {pack.name}" in html
    assert "50 credits used" in html
    assert html.count('class="bar"') == 30
    assert "<td>Promotion</td>" in html and "<td>Manual</td>" in html
    assert page["Cache-Control"].startswith("max-age=0") and "no-store" in page["Cache-Control"]
    assert page["Referrer-Policy"] == "same-origin"  # the token never leaves in a Referer


def test_the_page_reads_with_a_fixed_number_of_queries(
    client, account, pack, link, django_assert_max_num_queries
):
    for days in range(5):
        give(account, 10, credit_type=pack.credit_type, days=days + 1)
    with django_assert_max_num_queries(14):
        assert client.get(path_of(link["url"])).status_code == 200


def test_usage_by_day_fills_empty_days_ends_today_and_keeps_credit_types_apart(account, pack):
    FeatureFactory(code="api_call", credit_type=pack.credit_type)
    gpu = CreditTypeFactory(code="gpu_seconds")
    FeatureFactory(code="render", credit_type=gpu)
    give(account, 100, credit_type=pack.credit_type)
    give(account, 100, credit_type=gpu)
    consume(account=account, feature="api_call", quantity=D(7))
    consume(account=account, feature="render", quantity=D(50))

    credits, seconds = usage_by_day(account=account)

    assert (credits.credit_type, credits.total, seconds.credit_type, seconds.total) == (
        "credits", D(7), "gpu_seconds", D(50)
    )  # fmt: skip
    days = credits.days
    assert len(days) == 30 and days[-1].day == timezone.now().date()
    assert [d.credits for d in days[:-1]] == [0] * 29 and days[-1].credits == D(7)
    assert days[-1].height == "98.00"


def test_money_is_shown_in_its_currencys_places():
    from apps.billing.templatetags.billing import credits, money

    assert (money(D("1234.5"), "usd"), money(D(1200), "JPY")) == ("1,234.50 USD", "1,200 JPY")
    assert (credits(D("1000.000000")), credits(D("0.250000"))) == ("1,000", "0.25")


def test_an_altered_link_is_a_403_page_and_shows_nothing(client, account, link):
    token_path = path_of(link["url"])
    altered = token_path.replace(":", ";", 1) if ":" in token_path else token_path[:-3] + "xx/"
    page = client.get(altered)
    assert page.status_code == 403
    assert "This billing link is not valid" in page.content.decode()
    assert account.external_id not in page.content.decode()


def test_a_link_for_one_account_cannot_be_turned_into_another(client, account):
    other = AccountFactory(external_id="other")
    mine = path_of(billing_link(account=account).url)
    theirs = path_of(billing_link(account=other).url)
    payload_of_theirs = theirs.split("/")[2].split(":")[0]
    forged = "/billing/" + payload_of_theirs + ":" + mine.split("/")[2].split(":", 1)[1] + "/"
    assert client.get(forged).status_code == 403


def test_an_expired_link_is_a_403_page_saying_so(client, account, link, time_machine, settings):
    time_machine.move_to(
        timezone.now() + timedelta(minutes=settings.BILLING_LINK_MAX_AGE_MINUTES + 1)
    )
    page = client.get(path_of(link["url"]))
    assert page.status_code == 403
    assert "This billing link has expired" in page.content.decode()


def test_buying_a_pack_from_the_page_goes_through_checkout_and_the_credits_show(
    client, account, pack, link, offline_stripe, webhook, stripe_events
):
    page_path = path_of(link["url"])
    client.get(page_path)  # the CSRF cookie, as a browser has it
    answer = client.post(
        page_path + "buy",
        {"kind": "credit_pack", "code": pack.code,
         "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )  # fmt: skip
    assert answer.status_code == 303
    session_id = answer["Location"].rsplit("/", 1)[-1]
    back = path_of(pay(offline_stripe, session_id))
    assert back == f"{page_path}?checkout={session_id}"

    waiting = client.get(back).content.decode()
    assert "Confirming your payment" in waiting
    assert "fetch(" in waiting and "Check again" in waiting  # asks until the event is in
    assert 'http-equiv="refresh"' in waiting  # and, without scripts, reloads itself
    status = f"{page_path}checkout-status?checkout={session_id}"
    assert client.get(status).json() == {"pending": True}

    webhook.deliver(stripe_events.take())
    assert client.get(status).json() == {"pending": False}
    done = client.get(back).content.decode()
    assert "Payment received" in done and 'http-equiv="refresh"' not in done
    assert "fetch(" not in done
    assert 'data-testid="available-credits">1,000<' in done


def test_the_checkout_status_of_another_accounts_session_says_nothing(client, account, link):
    other = AccountFactory(external_id="other")
    from apps.billing.models import Purchase

    Purchase.objects.create(account=other, credit_pack=CreditPackFactory(), credits=1, price=1,
                            currency="USD", checkout_session_id="cs_theirs")  # fmt: skip
    answer = client.get(f"{path_of(link['url'])}checkout-status?checkout=cs_theirs")
    assert answer.status_code == 200
    assert client.get(f"{path_of(link['url'])}?checkout=cs_theirs").status_code == 200
    assert "cs_theirs" not in client.get(path_of(link["url"])).content.decode()


def test_a_pack_taken_off_sale_is_refused_with_a_clear_message(client, account, pack, link):
    page_path = path_of(link["url"])
    client.get(page_path)  # the page, with the pack still on sale
    pack.active = False
    pack.save()
    answer = client.post(page_path + "buy", {"kind": "credit_pack", "code": pack.code,
                         "csrfmiddlewaretoken": client.cookies["csrftoken"].value})  # fmt: skip
    assert answer.status_code == 400
    assert "not on sale any more" in answer.content.decode()


def test_finance_opens_the_customers_billing_page_from_the_account_admin(client, account):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    # Only staff who may change the account get the link (it can switch the customer's plan).
    user = get_user_model().objects.create_user("finance", "f@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    page = client.get(f"/admin/accounts/account/{account.pk}/change/").content.decode()
    url = re.search(r'href="(http://[^"]+/billing/[^"]+/)"', page).group(1)
    client.logout()
    assert account.email in client.get(path_of(url)).content.decode()


def test_a_canceled_checkout_says_nothing_was_charged(client, link):
    page = client.get(path_of(link["url"]) + "?checkout=canceled")
    assert "nothing was charged" in page.content.decode()


@pytest.fixture
def plans(pack):
    from apps.billing.catalog_sync import sync_stripe_catalog

    found = {}
    for code, price in (("pro", "20.00"), ("team", "50.00")):
        plan = PlanFactory(code=code, name=code.title(), price=D(price))
        PlanAllowanceFactory(plan=plan, credit_type=pack.credit_type, credits_per_period=D(1000))
        found[code] = plan
    sync_stripe_catalog()
    return {code: Plan.objects.get(pk=plan.pk) for code, plan in found.items()}


def test_a_plan_is_bought_through_checkout_and_a_switch_takes_over_at_period_end(
    client, account, plans, link, offline_stripe, webhook, stripe_events, time_machine
):
    page_path = path_of(link["url"])
    client.get(page_path)
    csrf = client.cookies["csrftoken"].value
    assert "Subscribe to Pro" in client.get(page_path).content.decode()

    answer = client.post(page_path + "buy",
                         {"kind": "plan", "code": "pro", "csrfmiddlewaretoken": csrf})  # fmt: skip
    pay(offline_stripe, answer["Location"].rsplit("/", 1)[-1])
    webhook.deliver(stripe_events.take())
    subscription = Subscription.objects.get(account=account, status="active")
    assert subscription.plan.code == "pro" and subscription.stripe_subscription_id
    credit_type = plans["pro"].allowances.get().credit_type
    feature = FeatureFactory(code="api_call", credit_type=credit_type)
    PlanFeatureFactory(plan=plans["pro"], feature=feature)
    consume(account=account, feature="api_call", quantity=D(900))

    html = client.get(page_path).content.decode()
    assert "Switch to Team" in html and "Subscribe to" not in html
    answer = client.post(page_path + "buy", {"kind": "plan", "code": "team", "switch": "1",
                                             "csrfmiddlewaretoken": csrf})  # fmt: skip
    assert answer.status_code == 302
    assert "Your plan changes to Team when this period ends" in client.get(
        answer["Location"]).content.decode()  # fmt: skip
    webhook.deliver(stripe_events.take())  # customer.subscription.updated: the new price

    # No fresh allowance now: the switch waits for the period it is paid for.
    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.scheduled_plan.code) == ("pro", "team")
    assert wallet_of(account, credit_type).balance == D(100)
    stripe_sub = offline_stripe.get("subscription", subscription.stripe_subscription_id)
    assert stripe_sub["items"]["data"][0]["price"]["id"] == plans["team"].stripe_price_id
    assert "Stay on Pro" in client.get(page_path).content.decode()

    time_machine.move_to(subscription.current_period_end + timedelta(minutes=1), tick=False)
    requests.post(f"{offline_stripe.url}/_offline/subscriptions/"
                  f"{subscription.stripe_subscription_id}/renew", timeout=10)  # fmt: skip
    webhook.deliver(stripe_events.take())
    subscription.refresh_from_db()
    assert (subscription.plan.code, subscription.scheduled_plan) == ("team", None)
    assert_ledger_sound(account)


def test_staying_on_the_plan_cancels_a_scheduled_switch(
    authed_client, account, plans, offline_stripe, webhook, stripe_events
):
    from apps.billing.checkout import switch_stripe_plan

    session_id = checkout(authed_client, account, plan="pro")
    pay(offline_stripe, session_id)
    webhook.deliver(stripe_events.take())
    switch_stripe_plan(account=account, plan=plans["team"])
    switch_stripe_plan(account=account, plan=plans["pro"])
    webhook.deliver(stripe_events.take())

    subscription = Subscription.objects.get(account=account, status="active")
    assert (subscription.plan.code, subscription.scheduled_plan) == ("pro", None)
    stripe_sub = offline_stripe.get("subscription", subscription.stripe_subscription_id)
    assert stripe_sub["items"]["data"][0]["price"]["id"] == plans["pro"].stripe_price_id


def test_a_bank_payment_that_fails_later_marks_the_purchase_failed_and_the_page_says_so(
    authed_client, client, account, pack, link, offline_stripe, webhook, stripe_events
):
    session_id = checkout(authed_client, account, credit_pack=pack.code)
    answer = requests.post(
        f"{offline_stripe.url}/_offline/checkout_sessions/{session_id}/fail_async", timeout=10
    )
    assert answer.status_code == 200, answer.text
    events = stripe_events.take()
    assert [e["type"] for e in events][-1] == "checkout.session.async_payment_failed"
    webhook.deliver(events + events)

    purchase = Purchase.objects.get(checkout_session_id=session_id)
    assert purchase.status == Purchase.Status.FAILED
    assert purchase.grant is None
    status = f"{path_of(link['url'])}checkout-status?checkout={session_id}"
    assert client.get(status).json() == {"pending": False}
    page = client.get(f"{path_of(link['url'])}?checkout={session_id}").content.decode()
    assert "Your payment failed at your bank; nothing was added." in page
    assert "Payment failed" in page  # in the list of payments


def test_a_link_expires_by_the_demo_clock(client, account, link, settings):
    days = settings.BILLING_LINK_MAX_AGE_MINUTES // (24 * 60) + 1
    call_command("advance_clock", "--days", str(days), stdout=StringIO())
    page = client.get(path_of(link["url"]))
    assert page.status_code == 403
    assert "This billing link has expired" in page.content.decode()
