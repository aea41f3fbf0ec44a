"""Staff users for the admin's browser tests: one per group, logged in through the login form;
their screenshots go to test-output/admin/."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

OUTPUT = Path(settings.BASE_DIR) / "test-output" / "admin"
PASSWORD = "a-long-staff-password"


def staff(group):
    user = get_user_model().objects.create_user(group.lower(), password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def log_in(browser, live_server, username, password):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(password)
    browser.execute_script("window.creditdeskOldPage = true")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The answer has loaded: a new document, without the old page's mark.
    WebDriverWait(browser, 30, ignored_exceptions=[WebDriverException]).until(
        lambda b: b.execute_script(
            "return !window.creditdeskOldPage && document.readyState === 'complete'"
        )
    )
