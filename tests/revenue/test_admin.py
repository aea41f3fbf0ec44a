"""Finance's revenue pages in the admin: the revenue page with its humanized figures, month
close and reopen through the admin, a month by credit type and plan, the drill-down to
accounts and grants, and an account's statement."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from apps.revenue import admin as revenue_admin
from apps.revenue.models import RatableFee, RevenueMonth
from apps.revenue.posting import post_revenue
from apps.usage.services import consume
from apps.wallets.services import grant_credits
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    SubscriptionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
D = Decimal
PAGE = reverse("admin:revenue_revenuemonth_changelist")


def at(month, day, hour=12):
    return datetime(2026, month, day, hour, tzinfo=UTC)


def url(name, *args):
    return reverse(f"admin:revenue_revenuemonth_{name}", args=args)


def said(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def scenario(time_machine):
    """January: Acme pays $10 for 1,000 credits and uses 100; Beta pays $5 for 500 and uses
    50. February: Acme uses 200 more. Today is February 3."""
    credit_type = CreditTypeFactory(name="API calls")
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D(1))
    acme, beta = AccountFactory(name="Acme"), AccountFactory(name="Beta")
    grants = {}
    for account, day, credits, paid in ((acme, 10, 1000, "10.00"), (beta, 12, 500, "5.00")):
        time_machine.move_to(at(1, day), tick=False)
        grants[account.name], _ = grant_credits(
            account=account, credit_type=credit_type, amount=D(credits), source="purchase",
            basis_amount=D(paid),
        )  # fmt: skip
    time_machine.move_to(at(1, 20), tick=False)
    consume(account=acme, feature="api_call", quantity=D(100))
    consume(account=beta, feature="api_call", quantity=D(50))
    time_machine.move_to(at(2, 2), tick=False)
    consume(account=acme, feature="api_call", quantity=D(200))
    time_machine.move_to(at(2, 3), tick=False)
    post_revenue()
    return {"acme": acme, "beta": beta, "credit_type": credit_type, "grants": grants}


@pytest.fixture
def finance(client):
    user = UserFactory(username="ann", groups=["Finance"])
    client.force_login(user)
    return user


def test_the_revenue_page_shows_twelve_months_humanized(client, scenario, finance):
    response = client.get(PAGE, {"month": "2026-02"})
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [row["label"] for row in rows][:3] == ["February 2026", "January 2026", "December 2025"]
    assert len(rows) == 12
    january = [text for text, _ in rows[1]["cells"]]
    assert january == ["0.00 USD", "15.00 USD", "1.50 USD", "0.00 USD", "0.00 USD",
                       "13.50 USD", "1,500 credits", "150 credits", "0 credits",
                       "0.00 USD", "0.00 USD", "0.00 USD"]  # fmt: skip
    february = [text for text, _ in rows[0]["cells"]]
    assert february[:3] == ["13.50 USD", "0.00 USD", "2.00 USD"]
    assert february[5] == "11.50 USD"
    html = response.content.decode()
    assert "{% block chart %}" not in html and "1,500 credits" in html
    # January has ended and may be closed; February has not.
    assert rows[1]["status"] == "open" and rows[1]["close_url"] == url("close", "2026-01")
    assert "close_url" not in rows[0] and "reopen_url" not in rows[1]


def test_the_page_defaults_to_this_month_and_the_first_currency(client, scenario, finance):
    response = client.get(PAGE)
    assert response.context["currency"] == "USD"
    assert response.context["rows"][0]["label"] == "February 2026"


def test_closing_through_the_admin_confirms_then_closes(client, scenario, finance):
    confirm = client.get(url("close", "2026-01"))
    assert confirm.status_code == 200 and b"csrfmiddlewaretoken" in confirm.content
    assert not RevenueMonth.objects.filter(closed=True).exists()
    response = client.post(url("close", "2026-01"))
    assert response.status_code == 302 and said(response) == ["January 2026 is closed."]
    record = RevenueMonth.objects.get(month="2026-01-01")
    assert (record.closed, record.closed_by) == (True, finance)
    row = client.get(PAGE, {"month": "2026-01"}).context["rows"][0]
    assert row["status"] == "closed 3 Feb 2026 by ann" and "close_url" not in row


def test_a_refused_close_is_shown_as_a_message(client, scenario, finance):
    response = client.post(url("close", "2026-02"), follow=True)
    assert said(response) == ["February 2026 has not ended yet."]
    assert b"February 2026 has not ended yet." in response.content
    assert not RevenueMonth.objects.filter(closed=True).exists()


@pytest.mark.parametrize("group", ["Pricing", "Support"])
def test_other_groups_see_no_revenue_page_and_cannot_close(client, scenario, group):
    client.force_login(UserFactory(groups=[group]))
    assert client.get(PAGE).status_code == 403
    assert client.get(url("month", "2026-01")).status_code == 403
    assert client.post(url("close", "2026-01")).status_code == 403
    assert not RevenueMonth.objects.filter(closed=True).exists()


def test_reopening_needs_its_own_permission_and_a_reason(client, scenario, finance):
    client.post(url("close", "2026-01"))
    assert client.get(url("reopen", "2026-01")).status_code == 403
    assert client.post(url("reopen", "2026-01"), {"reason": "late invoice"}).status_code == 403
    assert "reopen_url" not in client.get(PAGE, {"month": "2026-01"}).context["rows"][0]

    finance.user_permissions.add(Permission.objects.get(codename="reopen_month"))
    row = client.get(PAGE, {"month": "2026-01"}).context["rows"][0]
    assert row["reopen_url"] == url("reopen", "2026-01")
    blank = client.post(url("reopen", "2026-01"), {"reason": "  "})
    assert blank.status_code == 200 and said(blank) == ["Say why the month is reopened."]
    assert RevenueMonth.objects.get(month="2026-01-01").closed
    response = client.post(url("reopen", "2026-01"), {"reason": "late invoice"})
    assert response.status_code == 302 and said(response) == ["January 2026 is open again."]
    record = RevenueMonth.objects.get(month="2026-01-01")
    assert not record.closed and record.history.latest().history_change_reason == "late invoice"


def test_the_month_page_shows_figures_by_credit_type_and_plan_with_totals(
    client, scenario, finance
):
    response = client.get(url("month", "2026-01"), {"currency": "USD"})
    assert response.status_code == 200
    by_type, by_plan = response.context["tables"]
    assert [row["label"] for row in by_type["rows"]] == ["API calls"]
    assert [row["label"] for row in by_plan["rows"]] == ["No plan"]
    # Platform fees belong to plans: only the plan table has their columns.
    assert "Platform fees billed" in by_plan["headings"]
    assert "Platform fees billed" not in by_type["headings"]
    assert len(by_type["rows"][0]["cells"]) == len(by_type["headings"])
    assert by_type["rows"][0]["cells"][1][0] == "15.00 USD"
    assert [text for text, _ in by_type["total"]][1:3] == ["15.00 USD", "1.50 USD"]
    drill = by_type["rows"][0]["cells"][1][1]
    assert drill.startswith(url("drill_down", "2026-01", "billed") + "?")
    assert f"credit_type={scenario['credit_type'].pk}" in drill


def test_the_drill_down_lists_the_accounts_then_the_grants(client, scenario, finance):
    acme, beta = scenario["acme"], scenario["beta"]
    query = {"currency": "USD", "credit_type": scenario["credit_type"].pk}
    response = client.get(url("drill_down", "2026-01", "billed"), query)
    rows = list(response.context["page"])
    assert [(row["account"], row["shown"]) for row in rows] == [
        (acme, "10.00 USD"), (beta, "5.00 USD"),
    ]  # fmt: skip
    assert rows[0]["url"].startswith(url("grants", "2026-01", "billed", acme.pk))

    grants = client.get(rows[0]["url"])
    assert grants.status_code == 200
    listed = grants.context["rows"]
    grant = scenario["grants"]["Acme"]
    assert [(row["grant"], row["shown"]) for row in listed] == [(grant, "10.00 USD")]
    assert listed[0]["url"] == reverse("admin:wallets_creditgrant_change", args=[grant.pk])
    used = client.get(url("grants", "2026-02", "credits_used", acme.pk), {"currency": "USD"})
    assert used.context["total"] == "200 credits"


def test_a_balance_drills_down_to_accounts_and_their_statements(client, scenario, finance):
    response = client.get(url("drill_down", "2026-02", "closing_deferred"), {"currency": "USD"})
    rows = list(response.context["page"])
    assert [(row["account"].name, row["shown"]) for row in rows] == [
        ("Acme", "7.00 USD"), ("Beta", "4.50 USD"),
    ]  # fmt: skip
    assert rows[0]["url"].startswith(url("statement", scenario["acme"].pk))


def test_the_account_list_is_paginated(client, scenario, finance, monkeypatch):
    monkeypatch.setattr(revenue_admin, "ACCOUNTS_PER_PAGE", 1)
    first = client.get(url("drill_down", "2026-01", "billed"), {"currency": "USD"})
    second = client.get(url("drill_down", "2026-01", "billed"), {"currency": "USD", "page": 2})
    assert [row["account"].name for row in first.context["page"]] == ["Acme"]
    assert [row["account"].name for row in second.context["page"]] == ["Beta"]
    assert b"Page 1 of 2" in first.content


def test_the_statement_adds_up(client, scenario, finance):
    acme = scenario["acme"]
    response = client.get(url("statement", acme.pk))
    assert response.status_code == 200
    (usd,) = response.context["tables"]
    headings = response.context["headings"]
    february, january = (dict(zip(headings, row["cells"], strict=True)) for row in usd["rows"])
    total = dict(zip(headings, usd["total"], strict=True))
    assert january == {
        "Paid (billed)": "10.00 USD", "Credits granted": "1,000 credits",
        "Credits used": "100 credits", "Credits expired": "0 credits", "Refunded": "0.00 USD",
        "Credits clawed back": "0 credits", "Recognised": "1.00 USD", "Breakage": "0.00 USD",
        "Deferred at month end": "9.00 USD", "Platform fees paid": "0.00 USD",
        "Platform fees recognised": "0.00 USD",
    }  # fmt: skip
    assert (february["Recognised"], february["Deferred at month end"]) == ("2.00 USD", "7.00 USD")
    # Paid 10.00 - recognised 3.00 = deferred 7.00.
    assert (total["Paid (billed)"], total["Recognised"], total["Deferred at month end"]) == (
        "10.00 USD", "3.00 USD", "7.00 USD",
    )  # fmt: skip
    assert total["Credits used"] == "300 credits"


def test_platform_fees_are_shown_beside_the_credits_and_by_plan_without_a_drill_down(
    client, scenario, finance
):
    subscription = SubscriptionFactory(account=scenario["acme"])
    RatableFee.objects.create(
        subscription=subscription, account=subscription.account, plan=subscription.plan,
        currency="USD", period_start=at(1, 20, 0), period_end=at(2, 20, 0), amount=D("10.00"),
    )  # fmt: skip
    post_revenue()
    rows = client.get(PAGE, {"month": "2026-02"}).context["rows"]
    headings = [heading for _, heading in revenue_admin.COLUMNS]
    january = dict(zip(headings, rows[1]["cells"], strict=True))
    assert january["Platform fees billed"] == ("10.00 USD", None)  # no grants behind it
    assert [january[f"Platform fees {n}"][0] for n in ("recognised", "deferred")] == [
        "3.87 USD", "6.13 USD",
    ]  # fmt: skip
    by_plan = client.get(url("month", "2026-02"), {"currency": "USD"}).context["tables"][1]
    plan_row = next(row for row in by_plan["rows"] if row["label"] == str(subscription.plan))
    assert plan_row["cells"][headings.index("Platform fees recognised")][0] == "6.13 USD"
    refused = client.get(url("drill_down", "2026-01", "fees_billed"), {"currency": "USD"})
    assert refused.status_code == 302 and "grants behind it" in said(refused)[0]
    statement = client.get(url("statement", scenario["acme"].pk)).context
    total = dict(zip(statement["headings"], statement["tables"][0]["total"], strict=True))
    assert total["Platform fees paid"] == "10.00 USD"


def test_the_account_page_links_to_its_statement_for_finance_only(client, scenario, finance):
    acme = scenario["acme"]
    page = reverse("admin:accounts_account_change", args=[acme.pk])
    assert url("statement", acme.pk) in client.get(page).content.decode()
    client.force_login(UserFactory(groups=["Support"]))
    response = client.get(page)
    assert (
        response.status_code == 200 and url("statement", acme.pk) not in response.content.decode()
    )


def test_a_page_asked_for_a_month_that_is_not_one_goes_back_with_a_message(client, finance):
    response = client.get(url("month", "2026-13"))
    assert response.status_code == 302 and said(response) == ["“2026-13” is not a month (YYYY-MM)."]
    assert client.get(url("statement", 0)).status_code == 302
