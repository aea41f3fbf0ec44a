"""A customer in a real browser (Debian's headless Chromium, driven by Selenium): opens the
billing link, buys a pack through the offline Stripe's checkout page, comes back and sees
the credits arrive once Stripe's signed webhook has gone through dj-stripe's endpoint.
Screenshots go to test-output/."""

from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from apps.billing.gateway import connect_stripe_webhook
from apps.billing.models import Purchase
from tests.ledger import assert_ledger_sound, wallet_of

OUTPUT = Path(settings.BASE_DIR) / "test-output"

pytestmark = [
    # A live server, the offline Stripe's webhook threads and the test share the database:
    # PostgreSQL (SQLite's shared in-memory test database locks, and cannot be flushed past
    # the ledger's append-only trigger).
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.browser,
]


def test_a_customer_buys_a_pack_from_the_billing_page_and_sees_the_new_balance(
    browser, live_server, account, pack, offline_stripe, monkeypatch
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    # Stripe's events go out over HTTP to the live server's dj-stripe endpoint, signed.
    monkeypatch.setattr(offline_stripe, "deliver", offline_stripe.post_to_endpoints)
    connect_stripe_webhook(base_url=live_server.url)
    monkeypatch.setattr(settings, "SITE_URL", live_server.url)
    from apps.billing.billing_page import billing_link

    OUTPUT.mkdir(exist_ok=True)
    wait = WebDriverWait(browser, 30)

    browser.get(billing_link(account=account).url)
    assert (
        "No credits yet"
        in browser.find_element(By.ID, "balance-h").find_element(By.XPATH, "..").text
    )
    browser.save_screenshot(str(OUTPUT / "billing-page-before.png"))

    browser.find_element(By.CSS_SELECTOR, f'[data-testid="buy-{pack.code}"]').click()
    wait.until(seen.element_to_be_clickable((By.ID, "pay")))
    assert "Offline Stripe" in browser.page_source
    browser.find_element(By.ID, "pay").click()

    # Back on the billing page: it re-checks until the webhook has granted the pack.
    available = (By.CSS_SELECTOR, '[data-testid="available-credits"]')
    wait.until(seen.text_to_be_present_in_element(available, "1,000"))
    assert "Payment received" in browser.find_element(By.ID, "notice").text
    browser.save_screenshot(str(OUTPUT / "billing-page-after-purchase.png"))

    assert wallet_of(account, pack.credit_type).balance == Decimal(1000)
    assert Purchase.objects.get(account=account).status == "paid"
    assert_ledger_sound(account)
