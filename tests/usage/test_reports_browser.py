"""The usage reports in a real browser (Debian's headless Chromium): a Pricing user opens each
report from the admin's Reports section; every chart is drawn by the vendored Chart.js (no
network) and each page is saved to test-output/reports/ for a person to look at."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.usage.report_admin import REPORTS
from apps.usage.services import consume
from tests.factories import (
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
    SubscriptionFactory,
)
from tests.ledger import give
from tests.staff import PASSWORD, log_in, staff

OUTPUT = settings.BASE_DIR / "test-output" / "reports"

pytestmark = [
    pytest.mark.postgres,  # a live server shares the database (see tests/billing/test_browser.py)
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.browser,
]

ALL_DRAWN = """
const canvases = Array.from(document.querySelectorAll("canvas[data-chart]"));
return typeof Chart !== "undefined" && canvases.length > 0
    && canvases.every((canvas) => Chart.getChart(canvas) !== undefined);
"""


def usage_this_month():
    credits = CreditTypeFactory()
    plan = PlanFactory(code="starter", name="Starter")
    PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=Decimal(1000))
    search = FeatureFactory(code="search", unit_name="call", credits_per_unit=Decimal(2))
    export = FeatureFactory(code="export", unit_name="file")
    PlanFeatureFactory(plan=plan, feature=search)
    PlanFeatureFactory(plan=plan, feature=export, limit_per_period=Decimal(10))
    start = timezone.now() - timedelta(hours=1)
    for n, (searches, exports) in enumerate([(120, 9), (300, 4), (40, 10)]):
        sub = SubscriptionFactory(
            plan=plan, account__name=f"Customer {n}", current_period_start=start
        )
        give(sub.account, 5000, credit_type=credits)
        consume(account=sub.account, feature="search", quantity=searches)
        consume(account=sub.account, feature="export", quantity=exports)


def test_a_pricing_user_sees_each_report_drawn(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    OUTPUT.mkdir(parents=True, exist_ok=True)
    usage_this_month()
    user = staff("Pricing")
    log_in(browser, live_server, user.username, PASSWORD)
    index = browser.find_element(By.TAG_NAME, "body").text
    assert "REPORTS" in index.upper()
    browser.save_screenshot(str(OUTPUT / "index.png"))
    for model in REPORTS:
        opts = model._meta
        browser.get(live_server.url + reverse(f"admin:usage_{opts.model_name}_changelist"))
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "Server Error" not in body and "Forbidden" not in body, opts.model_name
        WebDriverWait(browser, 20).until(lambda b: b.execute_script(ALL_DRAWN))
        assert browser.find_elements(By.CSS_SELECTOR, "table.report-table caption")
        browser.save_screenshot(str(OUTPUT / f"{opts.model_name}.png"))
