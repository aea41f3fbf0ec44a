"""Contracts in a real browser (Debian's headless Chromium): Finance opens an account, follows
*Add a contract*, fills in a price and a feature term with a reason, saves, and finds the
contract in the list and on the account's page. Screenshots go to test-output/admin/."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.catalog.models import Contract
from apps.periods.services import put_account_on_plan
from tests.factories import AccountFactory, CreditTypeFactory, FeatureFactory, PlanFactory
from tests.staff import OUTPUT, PASSWORD, log_in, staff

pytestmark = [
    pytest.mark.postgres,  # a live server shares the database (see tests/billing/test_browser.py)
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.browser,
]


def test_finance_adds_a_contract_from_the_account_page(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import Select, WebDriverWait

    feature = FeatureFactory(code="api_call", name="API call",
                             credit_type=CreditTypeFactory(code="credits"))  # fmt: skip
    account = AccountFactory(external_id="acme", name="Acme Ltd")
    put_account_on_plan(account=account, plan=PlanFactory(code="pro", name="Pro"))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 30)
    today, next_year = timezone.now().date(), timezone.now().date() + timedelta(days=365)

    log_in(browser, live_server, staff("Finance").username, PASSWORD)
    browser.get(f"{live_server.url}/admin/accounts/account/{account.pk}/change/")
    browser.find_element(By.LINK_TEXT, "Add a contract").click()
    wait.until(seen.presence_of_element_located((By.ID, "id_starts_at_0")))
    for field, value in (("starts_at_0", f"{today}"), ("starts_at_1", "00:00:00"),
                         ("ends_at_0", f"{next_year}"), ("ends_at_1", "00:00:00"),
                         ("price", "1200.00"), ("currency", "USD"),
                         ("overage_unit_price", "0.004"),
                         ("reason", "Enterprise deal, ticket FIN-118")):  # fmt: skip
        element = browser.find_element(By.ID, f"id_{field}")
        element.clear()
        element.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#features-group .add-row a").click()
    Select(browser.find_element(By.ID, "id_features-0-feature")).select_by_value(str(feature.pk))
    browser.find_element(By.ID, "id_features-0-credits_per_unit").send_keys("0.5")
    # The whole form, down to its inlines and buttons, in one picture.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 200)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(OUTPUT / "catalog-contract-form.png"))
    browser.set_window_size(1280, 1400)
    browser.find_element(By.CSS_SELECTOR, 'input[name="_save"]').click()

    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success")))
    listed = browser.find_element(By.ID, "result_list").text
    assert "Acme Ltd" in listed and "live" in listed and "1,200.00 USD" in listed
    browser.save_screenshot(str(OUTPUT / "catalog-contract-list.png"))
    contract = Contract.objects.get(account=account)
    assert (contract.price, contract.features.get().credits_per_unit) == (
        Decimal("1200.00"), Decimal("0.5"),
    )  # fmt: skip
    assert contract.history.get().history_change_reason == "Enterprise deal, ticket FIN-118"

    browser.get(f"{live_server.url}/admin/accounts/account/{account.pk}/change/")
    terms = browser.find_element(By.CSS_SELECTOR, ".field-contract_terms").text
    assert f"live · {today} 00:00 → {next_year} 00:00 UTC" in terms
    browser.save_screenshot(str(OUTPUT / "accounts-account-contract.png"))
