import os
import shutil

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.accounts.services import create_api_key
from apps.core import clock
from apps.revenue.posting import post_revenue
from apps.revenue.verify import verify_revenue

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def pytest_configure(config):
    if os.environ.get("CI") and not IS_POSTGRES:
        raise pytest.UsageError("CI runs the suite on PostgreSQL: set DATABASE_URL.")
    if os.environ.get("CI") and not settings.REDIS_URL:
        raise pytest.UsageError("CI runs the suite on Redis: set REDIS_URL.")


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    skip_redis = pytest.mark.skip(reason="needs Redis (set REDIS_URL)")
    skip_browser = pytest.mark.skip(
        reason="needs Debian's chromium and chromium-driver (make test installs them)"
    )
    for item in items:
        if "postgres" in item.keywords and not IS_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)
        if "browser" in item.keywords and not (CHROMIUM and CHROMEDRIVER or os.environ.get("CI")):
            item.add_marker(skip_browser)


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def service_key(db):
    """A raw service key with every scope."""
    _, raw_key = create_api_key(
        name="test service", scopes=["usage:read", "usage:write", "accounts:write", "grants:write"]
    )
    return raw_key


@pytest.fixture
def authed_client(api_client, service_key):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {service_key}")
    return api_client


@pytest.fixture(params=["database function", "python"])
def consume_path(request, settings):
    """Run a test against both implementations of consume: the PostgreSQL function (fast
    path) and the portable Python path. They must behave identically."""
    if request.param == "database function" and not IS_POSTGRES:
        pytest.skip("the database function exists on PostgreSQL only")
    settings.CONSUME_FAST_PATH = request.param == "database function"
    return request.param


@pytest.fixture
def browser(tmp_path):
    """Debian's headless Chromium driven by Selenium (tests marked `browser`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--window-size=1280,1400",
                 f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def real_clock():
    """Every test starts on real time and leaves it so: a test that moves the demo clock
    (apps/core/clock.py, one file per xdist process) cannot move the next test's. A fixture
    that must see the moved clock when it is torn down asks for this one."""
    clock.reset()
    yield
    clock.reset()


# Suites whose every test ends with revenue checked against the ledger (docs/revenue.md,
# "Checking it"): whatever a billing or period scenario did, `verify_revenue` finds nothing.
REVENUE_CHECKED = {"billing", "periods", "revenue"}


@pytest.fixture(autouse=True)
def revenue_agrees_with_the_ledger(request, real_clock):
    marker = request.node.get_closest_marker("django_db")
    tampered = request.node.get_closest_marker("revenue_tampered") is not None
    if marker is None or tampered or request.node.path.parent.name not in REVENUE_CHECKED:
        yield
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")  # torn down after
    yield
    post_revenue()
    assert verify_revenue() == []
