"""The usage reports (apps/usage/reports.py) on small scenarios worked out by hand, and their
admin pages (apps/usage/report_admin.py): who may open them, what they show, the chart
partial's table."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import SubscriptionStatus
from apps.catalog.models import Plan
from apps.core.charts import Chart, Series
from apps.usage.models import UsageCounter
from apps.usage.report_admin import REPORTS, count
from apps.usage.reports import (
    credit_flow,
    feature_usage_by_day,
    near_quota,
    plan_fit,
    top_accounts,
)
from apps.usage.services import consume
from apps.wallets.services import expire_grants
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
    SubscriptionFactory,
    UserFactory,
)
from tests.ledger import D, give

pytestmark = pytest.mark.django_db

MAY = date(2026, 5, 1)


def at(time_machine, *args):
    time_machine.move_to(datetime(*args, tzinfo=UTC), tick=False)


# --- a. Usage per feature per day ------------------------------------------------------------


def test_feature_usage_by_day_sums_credits_and_units_per_utc_day_and_feature():
    credits = CreditTypeFactory()
    gpu = CreditTypeFactory(code="gpu", name="GPU minutes")
    FeatureFactory(code="search", credits_per_unit=D(2), unit_name="call")
    FeatureFactory(code="render", credit_type=gpu, credits_per_unit=D("0.5"), unit_name="frame")
    a, b = AccountFactory(), AccountFactory()
    give(a, 1000, credit_type=credits)
    give(b, 1000, credit_type=credits)
    give(a, 1000, credit_type=gpu)

    def use(account, feature, quantity, *moment):
        consume(account=account, feature=feature, quantity=quantity,
                occurred_at=datetime(*moment, tzinfo=UTC))  # fmt: skip

    use(a, "search", 3, 2026, 5, 1, 9)  # 6 credits
    use(b, "search", 2, 2026, 5, 1, 23, 59)  # 4 credits, still May 1st in UTC
    use(a, "render", 10, 2026, 5, 1, 12)  # 5 GPU minutes
    use(a, "search", 1, 2026, 5, 2, 0, 30)  # 2 credits
    use(a, "search", 7, 2026, 4, 30, 23, 59)  # before the range
    use(a, "search", 7, 2026, 5, 3, 0, 0)  # after it

    rows = feature_usage_by_day(start=date(2026, 5, 1), end=date(2026, 5, 2))

    assert [(r.day, r.feature_code, r.unit_name, r.credits, r.units) for r in rows] == [
        (date(2026, 5, 1), "render", "frame", D(5), D(10)),
        (date(2026, 5, 1), "search", "call", D(10), D(5)),
        (date(2026, 5, 2), "search", "call", D(2), D(1)),
    ]
    only_gpu = feature_usage_by_day(start=date(2026, 5, 1), end=date(2026, 5, 2), credit_type=gpu)
    assert [(r.day, r.feature_code, r.credits) for r in only_gpu] == [
        (date(2026, 5, 1), "render", D(5))
    ]


@pytest.mark.postgres
def test_feature_usage_by_day_finds_its_date_range_through_the_brin_index():
    """Two years of events, one every 15 minutes (70,000): two days of them are read through
    the BRIN on occurred_at, not by scanning the table."""
    feature = FeatureFactory(code="search")
    account = AccountFactory()
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'usage_occurred_at'")
        [(definition,)] = cursor.fetchall()
        assert "USING brin (occurred_at)" in definition
        cursor.execute(
            """
            INSERT INTO usage_usageevent (account_id, feature_id, credit_type_id, quantity,
                credits_per_unit, credits, balance_after, available_after, fingerprint,
                metadata, occurred_at, created_at)
            SELECT %s, %s, %s, 1, 1, 1, 0, 0, '', '{}', moment, moment
            FROM generate_series(timestamptz '2025-01-01', '2026-12-31', interval '15 minutes')
                AS moment
            """,
            [account.pk, feature.pk, feature.credit_type_id],
        )
        cursor.execute("ANALYZE usage_usageevent")
        with CaptureQueriesContext(connection) as queries:
            rows = feature_usage_by_day(start=date(2026, 5, 1), end=date(2026, 5, 2))
        [report] = [q["sql"] for q in queries.captured_queries if "usage_usageevent" in q["sql"]]
        cursor.execute("EXPLAIN " + report)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert [(r.day, r.units) for r in rows] == [(date(2026, 5, 1), 96), (date(2026, 5, 2), 96)]
    assert "Bitmap Index Scan on usage_occurred_at" in plan, plan


# --- b. Plan fit -----------------------------------------------------------------------------


def test_plan_fit_buckets_each_account_by_used_over_included_credits(time_machine):
    credits = CreditTypeFactory()
    feature = FeatureFactory(code="api_call", credits_per_unit=D(1))
    starter = PlanFactory(code="starter", name="Starter")
    annual = PlanFactory(code="annual", name="Annual", billing_interval=Plan.Interval.YEAR)
    PlanFeatureFactory(plan=starter, feature=feature)
    PlanFeatureFactory(plan=annual, feature=feature)
    PlanAllowanceFactory(plan=starter, credit_type=credits, credits_per_period=D(1000))
    PlanAllowanceFactory(plan=annual, credit_type=credits, credits_per_period=D(12000))

    def account(plan, *, status=SubscriptionStatus.ACTIVE):
        sub = SubscriptionFactory(plan=plan, status=status)
        give(sub.account, 5000, credit_type=credits)
        return sub.account

    at(time_machine, 2026, 4, 20, 12)
    light = account(starter)
    consume(account=light, feature="api_call", quantity=500)  # April: not counted for May
    used = {
        light: 50,  # 5 % -> 0–10 %
        account(starter): 950,  # 95 % -> 90–100 %
        account(starter): 1000,  # exactly 100 % -> 90–100 %
        account(starter): 1500,  # 150 % -> > 100 %
        account(annual): 250,  # 12000 a year is 1000 a month: 25 % -> 20–30 %
        AccountFactory(): 700,  # on no plan: left out
        account(starter, status=SubscriptionStatus.CANCELED): 700,  # no live plan: left out
    }
    account(starter)  # used nothing in May -> 0–10 %
    at(time_machine, 2026, 5, 10, 12)
    for who, quantity in used.items():
        if not who.subscriptions.exists():
            give(who, 5000, credit_type=credits)
        consume(account=who, feature="api_call", quantity=quantity)
    at(time_machine, 2026, 6, 1, 0)
    consume(account=light, feature="api_call", quantity=900)  # June: not counted for May

    fits = plan_fit(month=MAY)

    assert [(f.plan_code, f.credit_type_code, f.counts) for f in fits] == [
        ("annual", "credits", (0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)),
        ("starter", "credits", (2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1)),
    ]
    assert [f.accounts for f in fits] == [1, 5]


# --- c. Top accounts -------------------------------------------------------------------------


def test_top_accounts_ranks_accounts_by_credits_used_in_the_month(time_machine):
    credits, gpu = CreditTypeFactory(), CreditTypeFactory(code="gpu", name="GPU minutes")
    FeatureFactory(code="api_call", credits_per_unit=D(1))
    FeatureFactory(code="render", credit_type=gpu, credits_per_unit=D(1))
    a, b, c = (AccountFactory(external_id=name) for name in ("a", "b", "c"))
    for who in (a, b, c):
        give(who, 1000, credit_type=credits)
        give(who, 1000, credit_type=gpu)
    at(time_machine, 2026, 4, 30, 23, 59)
    consume(account=b, feature="api_call", quantity=100)  # April
    at(time_machine, 2026, 5, 1, 0, 0)
    consume(account=a, feature="api_call", quantity=30)
    consume(account=b, feature="api_call", quantity=20)
    consume(account=b, feature="api_call", quantity=30)
    consume(account=c, feature="render", quantity=45)

    def ranked(**filters):
        return [(t.external_id, t.credits) for t in top_accounts(month=MAY, **filters)]

    assert ranked() == [("b", D(50)), ("c", D(45)), ("a", D(30))]
    assert ranked(credit_type=credits) == [("b", D(50)), ("a", D(30))]
    assert ranked(credit_type=gpu, limit=5) == [("c", D(45))]
    assert ranked(limit=1) == [("b", D(50))]
    assert top_accounts(month=date(2026, 3, 1)) == []


# --- d. Near a quota -------------------------------------------------------------------------


def test_near_quota_lists_this_periods_counters_at_80_percent_of_the_limit_or_more():
    period = datetime(2026, 5, 3, tzinfo=UTC)
    plan = PlanFactory()
    quota = FeatureFactory(code="export", unit_name="export")
    free = FeatureFactory(code="search")
    PlanFeatureFactory(plan=plan, feature=quota, limit_per_period=D(100))
    PlanFeatureFactory(plan=plan, feature=free)  # no quota

    def counter(account, used, *, feature=quota, since=period):
        UsageCounter.objects.create(account=account, feature=feature, period_start=since, used=used)

    def subscribed(name):
        sub = SubscriptionFactory(plan=plan, account__external_id=name, current_period_start=period)
        return sub.account

    at_80, below, over = subscribed("at_80"), subscribed("below"), subscribed("over")
    counter(at_80, D(80))
    counter(at_80, D(95), since=period - timedelta(days=30))  # last period
    counter(at_80, D(1000), feature=free)
    counter(below, D("79.999999"))
    counter(over, D(120))
    counter(AccountFactory(external_id="no_plan"), D(100))

    near = near_quota()

    assert [(q.external_id, q.feature_code, q.used, q.limit, q.share) for q in near] == [
        ("over", "export", D(120), D(100), D("1.2")),
        ("at_80", "export", D(80), D(100), D("0.8")),
    ]
    assert near[0].period_start == period


# --- e. Credits granted, consumed and expired ------------------------------------------------


def test_credit_flow_sums_grants_consumption_and_expiry_per_month_and_credit_type(
    time_machine,
):
    credits, gpu = CreditTypeFactory(), CreditTypeFactory(code="gpu", name="GPU minutes")
    FeatureFactory(code="api_call", credits_per_unit=D(1))
    account = AccountFactory()
    at(time_machine, 2025, 12, 31, 23, 59)
    give(account, 1000, credit_type=credits)  # December: before the months asked for
    at(time_machine, 2026, 1, 10, 12)
    give(account, 100, credit_type=credits, days=60)  # expires March 11th
    give(account, 50, credit_type=credits)
    at(time_machine, 2026, 2, 5, 12)
    give(account, 5, credit_type=gpu)
    consume(account=account, feature="api_call", quantity=30)  # from the expiring grant first
    at(time_machine, 2026, 3, 20, 12)
    expire_grants()  # the 70 left of the January grant

    flow = credit_flow(until_month=date(2026, 4, 15), months=4)

    def figures(code):
        return [(m.month, m.granted, m.consumed, m.expired) for m in flow[code]]

    assert figures("credits") == [
        (date(2026, 1, 1), D(150), D(0), D(0)),
        (date(2026, 2, 1), D(0), D(30), D(0)),
        (date(2026, 3, 1), D(0), D(0), D(70)),
        (date(2026, 4, 1), D(0), D(0), D(0)),
    ]
    assert figures("gpu")[1] == (date(2026, 2, 1), D(5), D(0), D(0))
    year = credit_flow(until_month=date(2026, 4, 1))
    assert [m.month for m in year["credits"]][::11] == [date(2025, 5, 1), date(2026, 4, 1)]
    assert year["credits"][7].granted == D(1000)  # December 2025


# --- The pages -------------------------------------------------------------------------------


def report_urls():
    return [reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") for m in REPORTS]


@pytest.fixture
def scenario(time_machine):
    """A little of everything, in May 2026, so that every page draws charts."""
    at(time_machine, 2026, 5, 10, 12)
    credits = CreditTypeFactory()
    plan = PlanFactory(code="starter", name="Starter")
    PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=D(1000))
    feature = FeatureFactory(code="api_call", credits_per_unit=D(1), unit_name="call")
    PlanFeatureFactory(plan=plan, feature=feature, limit_per_period=D(100))
    sub = SubscriptionFactory(
        plan=plan,
        account__external_id="acme",
        account__name="Acme",
        current_period_start=datetime(2026, 5, 1, tzinfo=UTC),
    )
    give(sub.account, 10000, credit_type=credits)
    consume(account=sub.account, feature="api_call", quantity=90)
    return sub.account


@pytest.mark.parametrize("group", ["Pricing", "Finance"])
def test_each_report_renders_its_charts_for_pricing_and_finance(client, scenario, group):
    client.force_login(UserFactory(groups=[group]))
    for url in report_urls():
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert "<canvas" in page and "<caption>" in page, url
        assert "core/vendor/chartjs/chart.umd.min.js" in page and "//cdn" not in page
    credits_per_day = client.get(report_urls()[0]).content.decode()
    assert "<td>90 credits</td>" in credits_per_day
    quota = client.get(report_urls()[3]).content.decode()
    assert "<td>90 %</td>" in quota and "<td>100</td>" in quota


def test_support_and_staff_without_a_group_get_403_on_every_report(client, scenario):
    for groups in (["Support"], []):
        client.force_login(UserFactory(groups=groups))
        for url in report_urls():
            assert client.get(url).status_code == 403, (groups, url)


def test_the_index_lists_the_reports_in_their_own_section(client, scenario):
    client.force_login(UserFactory(groups=["Pricing"]))
    page = client.get(reverse("admin:index")).content.decode()
    section = page[page.index(">Reports<") :]
    for url in report_urls():
        assert url in section
    client.force_login(UserFactory(groups=["Support"]))
    assert ">Reports<" not in client.get(reverse("admin:index")).content.decode()


def test_top_accounts_link_to_the_account_page_for_those_who_may_open_it(client, scenario):
    url = reverse("admin:usage_topaccountsreport_changelist")
    account_page = reverse("admin:accounts_account_change", args=[scenario.pk])
    client.force_login(UserFactory(groups=["Finance"]))
    assert f'<a href="{account_page}">Acme (acme)</a>' in client.get(url).content.decode()
    client.force_login(UserFactory(groups=["Pricing"]))  # may not view accounts
    page = client.get(url).content.decode()
    assert "Acme (acme)" in page and account_page not in page


def test_filters_narrow_the_report_and_a_bad_one_says_why(client, scenario):
    client.force_login(UserFactory(groups=["Pricing"]))
    url = reverse("admin:usage_featureusagereport_changelist")
    empty = client.get(url, {"start": "2026-04-01", "end": "2026-04-30"}).content.decode()
    assert "Nothing to show for these filters." in empty
    bad = client.get(url, {"start": "2026-05-02", "end": "2026-05-01"}).content.decode()
    assert "Pick an end on or after the start" in bad
    top = reverse("admin:usage_topaccountsreport_changelist")
    april = client.get(top, {"month": "2026-04"}).content.decode()
    assert "Nothing to show for these filters." in april


def test_an_object_page_of_a_report_leads_back_to_the_report(client, scenario):
    client.force_login(UserFactory(groups=["Pricing"]))
    report = reverse("admin:usage_quotareport_changelist")
    change = reverse("admin:usage_quotareport_change", args=[1])
    assert client.get(change).url == report
    assert client.post(change, {}).status_code == 403


def test_the_chart_partial_lists_the_figures_humanized_in_an_accessible_table():
    chart = Chart(
        id="demo",
        title="Credits per plan",
        label_header="Plan",
        labels=["Starter", "Scale"],
        series=[
            Series("Used", [D("10000.5"), D(1)]),
            Series("Accounts", [D(1200), D(3)], count, charted=False),
        ],
        links=["/admin/x/", None],
    )

    html = render_to_string("admin/reports/_chart.html", {"chart": chart})

    assert '<canvas role="img" aria-label="Credits per plan' in html
    assert 'data-chart="demo-data"' in html and '<script id="demo-data"' in html
    assert "<caption>Credits per plan</caption>" in html
    assert '<th scope="col">Plan</th><th scope="col">Used</th><th scope="col">Accounts</th>' in html
    assert '<th scope="row"><a href="/admin/x/">Starter</a></th>' in html
    assert "<td>10,000.5 credits</td><td>1,200</td>" in html
    assert '<th scope="row">Scale</th><td>1 credit</td><td>3</td>' in html
    assert chart.data["datasets"] == [{"label": "Used", "data": [10000.5, 1.0]}]
