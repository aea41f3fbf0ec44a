"""Every admin screen in a real browser (Debian's headless Chromium): each staff group logs in
through the login form and opens every list and object page it may see, as the README's
permission table says; a wrong password five times shows the lockout page. Screenshots go to
test-output/admin/, one per screen, for a person to look at."""

import pytest
from django.conf import settings
from django.contrib import admin
from django.urls import reverse

from tests.factories import admin_samples
from tests.staff import OUTPUT, PASSWORD, log_in, staff

# Who opens which screens: the catalog as Pricing, everything else as Finance, the index as
# each group (what Support sees is a subset of Finance's pages).
GROUPS = ["Pricing", "Finance", "Support"]

pytestmark = [
    pytest.mark.postgres,  # a live server shares the database (see tests/billing/test_browser.py)
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.browser,
]


def screens_of(user):
    """(name, URL) of every list and first object the user may view."""
    for model in sorted(admin.site._registry, key=lambda model: model._meta.label):
        opts = model._meta
        if not user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            continue
        yield opts.label, reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        obj = model._default_manager.order_by("pk").first()
        if obj is not None:
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            yield f"{opts.label} #{obj.pk}", url
            # Pages other apps add to this object's page (the account's "Grant credits…").
            for view in getattr(admin.site._registry[model], "added_views", list)():
                if user.has_perm(view.permission):
                    name = f"{opts.app_label}_{opts.model_name}_{view.name}"
                    yield (
                        f"{opts.label} #{obj.pk} {view.name}",
                        reverse(f"admin:{name}", args=[obj.pk]),
                    )


def test_each_group_sees_its_screens_in_a_browser(browser, live_server):
    from selenium.webdriver.common.by import By

    OUTPUT.mkdir(parents=True, exist_ok=True)
    admin_samples()
    seen = set()
    for group in GROUPS:
        user = staff(group)
        browser.delete_all_cookies()
        log_in(browser, live_server, user.username, PASSWORD)
        assert "Site administration" in browser.title or "Back office" in browser.page_source
        browser.save_screenshot(str(OUTPUT / f"{group.lower()}-index.png"))
        for name, url in screens_of(user):
            if name in seen:
                continue
            seen.add(name)
            browser.get(live_server.url + url)
            body = browser.find_element(By.TAG_NAME, "body").text
            assert "Server Error" not in body and "Forbidden" not in body, (group, name)
            assert browser.find_elements(By.ID, "content"), (group, name)
            slug = name.replace(" #", "-").replace(".", "-").replace(" ", "-").lower()
            browser.save_screenshot(str(OUTPUT / f"{slug}.png"))
    assert {"catalog.Plan", "wallets.Wallet", "accounts.Account"} <= seen
    assert any(name.endswith(" grant_credits") for name in seen)  # Finance's grant form


def test_a_guessed_password_ends_on_the_lockout_page(browser, live_server):
    user = staff("Support")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(browser, live_server, user.username, "guess")
    log_in(browser, live_server, user.username, PASSWORD)
    assert "Too many failed logins" in browser.page_source
    OUTPUT.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(OUTPUT / "login-locked-out.png"))
