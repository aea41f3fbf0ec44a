"""The revenue pages' *Export CSV* / *Export JSON Lines*: the revenue schedule of the page's
filters, byte for byte what `manage.py revenue_report --format csv|json` writes, streamed as
a download; only for staff who may view the revenue pages."""

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from apps.revenue.posting import post_revenue
from apps.usage.services import consume
from apps.wallets.services import grant_credits
from tests.factories import AccountFactory, CreditTypeFactory, FeatureFactory, UserFactory

pytestmark = pytest.mark.django_db
D = Decimal
PAGE = reverse("admin:revenue_revenuemonth_changelist")


def url(name, *args):
    return reverse(f"admin:revenue_revenuemonth_{name}", args=args)


@pytest.fixture
def scenario(time_machine):
    """January: Acme pays $10 for 1,000 API credits and uses 100; Beta pays 20 EUR for 50
    GPU minutes. February: Acme buys 100 GPU minutes for $6 and uses 200 API credits. Today
    is February 3."""
    api, gpu = CreditTypeFactory(code="api"), CreditTypeFactory(code="gpu")
    FeatureFactory(code="api_call", credit_type=api, credits_per_unit=D(1))
    acme, beta = AccountFactory(name="Acme"), AccountFactory(name="Beta")
    for when, account, credit_type, amount, paid, currency in (
        (datetime(2026, 1, 10, tzinfo=UTC), acme, api, 1000, "10.00", "USD"),
        (datetime(2026, 1, 12, tzinfo=UTC), beta, gpu, 50, "20.00", "EUR"),
        (datetime(2026, 2, 1, tzinfo=UTC), acme, gpu, 100, "6.00", "USD"),
    ):
        time_machine.move_to(when, tick=False)
        grant_credits(account=account, credit_type=credit_type, amount=D(amount),
                      source="purchase", basis_amount=D(paid), currency=currency)  # fmt: skip
    time_machine.move_to(datetime(2026, 1, 20, tzinfo=UTC), tick=False)
    consume(account=acme, feature="api_call", quantity=D(100))
    time_machine.move_to(datetime(2026, 2, 2, tzinfo=UTC), tick=False)
    consume(account=acme, feature="api_call", quantity=D(200))
    time_machine.move_to(datetime(2026, 2, 3, tzinfo=UTC), tick=False)
    post_revenue()


@pytest.fixture
def finance(client):
    client.force_login(UserFactory(groups=["Finance"]))


def report(*args):
    out = io.StringIO()
    call_command("revenue_report", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def download(client, link):
    response = client.get(link)
    assert response.status_code == 200 and response.streaming
    return response, b"".join(response.streaming_content).decode()


def test_the_revenue_page_exports_its_twelve_months_as_the_command_writes_them(
    client, scenario, finance
):
    page = client.get(PAGE, {"month": "2026-02", "currency": "USD"})
    (csv_label, csv_link), (jsonl_label, jsonl_link) = page.context["export_links"]
    assert (csv_label, jsonl_label) == ("Export CSV", "Export JSON Lines")
    assert f'href="{csv_link.replace("&", "&amp;")}"' in page.content.decode()

    same = ("--from", "2025-03", "--to", "2026-02", "--currency", "USD")
    response, content = download(client, csv_link)
    assert content == report(*same, "--format", "csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = 'attachment; filename="revenue-schedule-2026-02-03.csv"'
    assert response["Content-Disposition"] == disposition
    header, january, february = content.splitlines()  # months without revenue have no row
    assert header.startswith("month,currency,opening_deferred,billed,recognised,")
    assert january.startswith("2026-01,USD,0.00,10.00,1.00,")  # only dollars
    assert february.startswith("2026-02,USD,9.00,6.00,2.00,")

    response, content = download(client, jsonl_link)
    assert content == report(*same, "--format", "json")
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"].endswith('revenue-schedule-2026-02-03.jsonl"')


@pytest.mark.parametrize("by", ["credit_type", "plan"])
def test_the_month_page_exports_each_breakdown_it_shows(client, scenario, finance, by):
    page = client.get(url("month", "2026-02"), {"currency": "USD"})
    table = {"credit_type": 0, "plan": 1}[by]
    [(_, csv_link), (_, jsonl_link)] = page.context["tables"][table]["export_links"]
    same = ("--from", "2026-02", "--to", "2026-02", "--currency", "USD", "--by", by)
    _, content = download(client, csv_link)
    assert content == report(*same, "--format", "csv")
    rows = [line.split(",")[:3] for line in content.splitlines()]
    if by == "credit_type":
        assert rows == [["month", "currency", "credit_type"],
                        ["2026-02", "USD", "api"], ["2026-02", "USD", "gpu"]]  # fmt: skip
    else:  # packs have no plan: an empty cell
        assert rows == [["month", "currency", "plan"], ["2026-02", "USD", ""]]
    assert download(client, jsonl_link)[1] == report(*same, "--format", "json")


def test_an_export_without_filters_is_the_revenue_page_as_it_opens(client, scenario, finance):
    _, content = download(client, url("export_csv"))  # the first currency: EUR
    same = ("--from", "2025-03", "--to", "2026-02", "--currency", "EUR")
    assert content == report(*same, "--format", "csv")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "2026-13"}, "“2026-13” is not a month (YYYY-MM)."),
        ({"from": "2026-02", "to": "2026-01"}, "The last month of an export is before its first."),
        ({"by": "account"}, "“account” is not a breakdown of the revenue pages."),
        ({"currency": "GBP"}, "No revenue in “GBP”."),
    ],
)
def test_bad_filters_go_back_to_the_revenue_page_with_the_reason(
    client, scenario, finance, query, message
):
    response = client.get(url("export_jsonl"), query, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert [str(m) for m in response.context["messages"]] == [message]


@pytest.mark.parametrize("group", ["Pricing", "Support", None])
def test_only_who_may_view_the_revenue_pages_may_export_them(client, scenario, group):
    client.force_login(UserFactory(groups=[group] if group else []))
    for fmt in ("csv", "jsonl"):
        assert client.get(url(f"export_{fmt}")).status_code == 403
    client.logout()
    response = client.get(url("export_csv"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_viewing_the_revenue_pages_is_not_enough_to_export_them(client, scenario):
    user = UserFactory(groups=[])
    user.user_permissions.add(Permission.objects.get(codename="view_revenuemonth"))
    client.force_login(user)
    page = client.get(PAGE, {"month": "2026-02", "currency": "USD"})
    assert page.status_code == 200 and page.context["export_links"] == []
    assert "Export CSV" not in page.content.decode()
    assert client.get(url("export_csv")).status_code == 403
