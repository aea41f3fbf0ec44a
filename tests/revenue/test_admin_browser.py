"""Finance's revenue pages in a real browser (Debian's headless Chromium): the revenue page,
a month, a drill-down and an account's statement, as a Finance user who logs in through the
login form. Screenshots go to test-output/revenue/ for a person to look at."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.revenue.models import RatableFee
from apps.revenue.posting import post_revenue
from apps.usage.services import consume
from apps.wallets.services import grant_credits
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    SubscriptionFactory,
)
from tests.staff import PASSWORD, log_in, staff

OUTPUT = Path(settings.BASE_DIR) / "test-output" / "revenue"

pytestmark = [
    pytest.mark.postgres,  # a live server shares the database (see tests/billing/test_browser.py)
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.browser,
]


def test_finance_reads_the_revenue_pages_in_a_browser(browser, live_server):
    from selenium.webdriver.common.by import By

    OUTPUT.mkdir(parents=True, exist_ok=True)
    credit_type = CreditTypeFactory(name="API calls")
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=Decimal(1))
    acme = AccountFactory(name="Acme")
    grant_credits(account=acme, credit_type=credit_type, amount=Decimal(1000),
                  source="purchase", basis_amount=Decimal("10.00"))  # fmt: skip
    consume(account=acme, feature="api_call", quantity=Decimal(250))
    subscription = SubscriptionFactory(account=acme)  # a plan's platform fee, this month
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    RatableFee.objects.create(
        subscription=subscription, account=acme, plan=subscription.plan, currency="USD",
        period_start=start, period_end=start + timedelta(days=10), amount=Decimal("8.25"),
    )  # fmt: skip
    post_revenue()
    month = f"{timezone.localdate():%Y-%m}"
    name = "admin:revenue_revenuemonth"

    log_in(browser, live_server, staff("Finance").username, PASSWORD)
    pages = [
        ("revenue-page", reverse(f"{name}_changelist"),
         ["10.00 USD", "2.50 USD", "open", "Platform fees recognised", "8.25 USD",
          "Export CSV", "Export JSON Lines"]),
        ("month", reverse(f"{name}_month", args=[month]) + "?currency=USD",
         ["API calls", "No plan", "Total", "1,000 credits", "Export CSV"]),
        ("drill-down", reverse(f"{name}_drill_down", args=[month, "billed"]) + "?currency=USD",
         ["Acme", "10.00 USD"]),
        ("grants", reverse(f"{name}_grants", args=[month, "billed", acme.pk]) + "?currency=USD",
         ["Grant #", "10.00 USD"]),
        ("statement", reverse(f"{name}_statement", args=[acme.pk]),
         ["Paid (billed)", "2.50 USD", "7.50 USD"]),
    ]  # fmt: skip
    for slug, url, expected in pages:
        browser.get(live_server.url + url)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "Server Error" not in body and "Forbidden" not in body, slug
        for text in expected:  # the admin's CSS upper-cases table headings
            assert text.lower() in body.lower(), (slug, text)
        browser.save_screenshot(str(OUTPUT / f"{slug}.png"))
    # The account's own page links to its statement.
    browser.get(live_server.url + reverse("admin:accounts_account_change", args=[acme.pk]))
    browser.find_element(By.LINK_TEXT, "Revenue statement by month").click()
    assert "Revenue statement: Acme" in browser.find_element(By.TAG_NAME, "body").text
