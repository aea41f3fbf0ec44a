"""The account page's *Put on plan / change plan…* in a real browser (Debian's headless
Chromium): Finance logs in, fills in the form, reads the confirmation page and confirms.
Screenshots go to test-output/admin/ with the other admin screens."""

from decimal import Decimal

import pytest

from apps.accounts.models import Subscription
from apps.periods.services import put_account_on_plan
from tests.factories import AccountFactory, CreditTypeFactory, PlanAllowanceFactory, PlanFactory
from tests.staff import OUTPUT, PASSWORD, log_in, staff

pytestmark = [
    pytest.mark.postgres,  # a live server shares the database (see tests/billing/test_browser.py)
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.browser,
]


def test_finance_changes_a_plan_at_period_end_through_the_confirmation_page(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import Select, WebDriverWait

    credit_type = CreditTypeFactory(code="credits")
    plans = {}
    for code, price, credits in (("starter", "12.00", 10000), ("growth", "49.00", 50000)):
        plans[code] = PlanFactory(code=code, name=code.title(), price=Decimal(price))
        PlanAllowanceFactory(plan=plans[code], credit_type=credit_type, credits_per_period=credits)
    account = AccountFactory(external_id="acme", name="Acme Ltd")
    subscription = put_account_on_plan(account=account, plan=plans["starter"])
    OUTPUT.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 30)

    log_in(browser, live_server, staff("Finance").username, PASSWORD)
    browser.get(f"{live_server.url}/admin/accounts/account/{account.pk}/change/")
    button = browser.find_element(By.CSS_SELECTOR, 'a[href$="/change-plan/"]')
    assert button.get_attribute("textContent") == "Put on plan / change plan…"
    button.click()
    wait.until(seen.presence_of_element_located((By.ID, "id_plan")))
    Select(browser.find_element(By.ID, "id_plan")).select_by_value(str(plans["growth"].pk))
    browser.find_element(By.CSS_SELECTOR, 'input[name="when"][value="period_end"]').click()
    browser.find_element(By.ID, "id_reason").send_keys("Downgrade asked for in ticket 4711")
    browser.save_screenshot(str(OUTPUT / "accounts-account-change-plan-form.png"))
    browser.find_element(By.CSS_SELECTOR, 'input[type="submit"].default').click()

    steps = wait.until(
        seen.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=plan-steps]"))
    )
    summary = browser.find_element(By.CSS_SELECTOR, "[data-testid=plan-summary]").text
    assert "Starter (12.00 USD / month)" in summary and "Growth (49.00 USD / month)" in summary
    assert "50,000 credits (credits)" in steps.text
    browser.save_screenshot(str(OUTPUT / "accounts-account-change-plan-confirm.png"))

    browser.find_element(By.CSS_SELECTOR, 'input[name="confirm"]').click()
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success")))
    browser.save_screenshot(str(OUTPUT / "accounts-account-change-plan-done.png"))
    subscription = Subscription.objects.get(pk=subscription.pk)
    assert subscription.scheduled_plan_id == plans["growth"].pk
