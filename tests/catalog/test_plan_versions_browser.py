"""Plan versions in a real browser (Debian's headless Chromium): Pricing raises a price on a
plan with a subscriber, reads the differences, publishes version 2, then moves the
subscriber with the list's action. Screenshots go to test-output/admin/."""

from decimal import Decimal

import pytest

from apps.accounts.models import Subscription
from apps.catalog.models import Plan
from apps.periods.services import put_account_on_plan
from tests.factories import AccountFactory, CreditTypeFactory, PlanAllowanceFactory, PlanFactory
from tests.staff import OUTPUT, PASSWORD, log_in, staff

pytestmark = [
    pytest.mark.postgres,  # a live server shares the database (see tests/billing/test_browser.py)
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.browser,
]


def test_pricing_publishes_a_version_and_moves_its_subscriber(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import Select, WebDriverWait

    plan = PlanFactory(code="pro", name="Pro", price=Decimal("49.00"))
    PlanAllowanceFactory(plan=plan, credit_type=CreditTypeFactory(code="credits"),
                         credits_per_period=Decimal(10000))  # fmt: skip
    account = AccountFactory(external_id="acme", name="Acme Ltd")
    put_account_on_plan(account=account, plan=plan)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 30)

    log_in(browser, live_server, staff("Pricing").username, PASSWORD)
    browser.get(f"{live_server.url}/admin/catalog/plan/{plan.pk}/change/")
    price = browser.find_element(By.ID, "id_price")
    price.clear()
    price.send_keys("59.00")
    browser.find_element(By.CSS_SELECTOR, 'input[name="_save"]').click()

    diff = wait.until(seen.presence_of_element_located((By.ID, "plan-diff")))
    assert "price 49.00 59.00" in " ".join(diff.text.split())
    assert "1 live subscriber" in browser.find_element(By.ID, "content-main").text
    browser.find_element(By.ID, "id_reason").send_keys("2027 price list")
    browser.save_screenshot(str(OUTPUT / "catalog-plan-publish-confirm.png"))
    browser.find_element(By.CSS_SELECTOR, 'input[name="_publish"]').click()
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success")))
    browser.save_screenshot(str(OUTPUT / "catalog-plan-published.png"))
    v1, v2 = Plan.objects.order_by("version")
    assert (v1.current, v2.current, v2.price) == (False, True, Decimal("59.00"))

    browser.get(f"{live_server.url}/admin/catalog/plan/?versions=earlier")
    browser.find_element(By.CSS_SELECTOR, f'input[name="_selected_action"][value="{v1.pk}"]'
                         ).click()  # fmt: skip
    Select(browser.find_element(By.NAME, "action")).select_by_value("move_to_current_version")
    browser.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "table.move-diff")))
    browser.find_element(By.CSS_SELECTOR, 'input[name="when"][value="period_end"]').click()
    browser.save_screenshot(str(OUTPUT / "catalog-plan-move-preview.png"))
    browser.find_element(By.CSS_SELECTOR, 'input[name="_move"]').click()
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success")))
    subscription = Subscription.objects.get(account=account)
    assert (subscription.plan_id, subscription.scheduled_plan_id) == (v1.pk, v2.pk)
