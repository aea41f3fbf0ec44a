import os
import shutil
import threading

import pytest
import stripe
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from apps.accounts.services import create_api_key
from apps.core import clock
from apps.revenue.posting import post_revenue
from apps.revenue.verify import verify_revenue
from apps.webhooks.models import WebhookEvent
from devtools.offline_stripe.server import serve
from devtools.offline_stripe.stand_in import OfflineStripe
from tests.brokers import redis_broker  # noqa: F401 - a Redis server of the test's own
from tests.webhook_schemas import event_problems

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")


def pytest_configure(config):
    if os.environ.get("CI") and not IS_POSTGRES:
        raise pytest.UsageError("CI runs the suite on PostgreSQL: set DATABASE_URL.")
    if os.environ.get("CI") and not settings.REDIS_URL:
        raise pytest.UsageError("CI runs the suite on Redis: set REDIS_URL.")


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    skip_redis = pytest.mark.skip(reason="needs Redis (set REDIS_URL)")
    skip_pooler = pytest.mark.skip(reason="needs Debian's pgbouncer (make test installs it)")
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
        if "pooler" in item.keywords and not (PGBOUNCER or os.environ.get("CI")):
            item.add_marker(skip_pooler)


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
# "Checking it"): whatever a billing or period scenario or a fault did, `verify_revenue`
# finds nothing.
REVENUE_CHECKED = {"billing", "periods", "revenue", "reliability"}


def with_its_database(request):
    """Whether the test uses the database; if so its database fixture is requested now, so
    that it is torn down after the calling fixture's checks have run."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return False
    request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction") else "db")
    return True


@pytest.fixture(autouse=True)
def revenue_agrees_with_the_ledger(request, real_clock):
    tampered = request.node.get_closest_marker("revenue_tampered") is not None
    checked = request.node.path.parent.name in REVENUE_CHECKED
    if tampered or not checked or not with_its_database(request):
        yield
        return
    yield
    post_revenue()
    assert verify_revenue() == []


@pytest.fixture(autouse=True)
def sent_events_match_the_api_schema(request):
    """Every webhook event a test records matches what the OpenAPI document's `webhooks` say
    of its type: the suite's grants, expiries, renewals, trials, alerts, recharges and
    purchases produce every type, so the document cannot drift from what is sent."""
    if not with_its_database(request):
        yield
        return
    yield
    if connection.is_usable():  # a real worker's Django fixup may have closed it
        assert event_problems(WebhookEvent.objects.all()) == []


@pytest.fixture
def wsgi_server(monkeypatch):
    """The project's WSGI application (config/wsgi.py: the fast lane in front of Django), as
    gunicorn serves it, on a threaded server of its own. Yields its URL and the list of the
    answers the fast lane gave itself."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    from apps.api import fast_lane
    from config.wsgi import application

    answered, answer_request = [], fast_lane.answer_request

    def counted(environ):
        answer = answer_request(environ)
        if answer is not None:
            answered.append(answer[0])
        return answer

    monkeypatch.setattr(fast_lane, "answer_request", counted)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    class Server(ThreadedWSGIServer):
        # Room for all 32 clients' connections at once: with the default backlog (10) a
        # loaded machine reset some before the accepting thread got to them.
        request_queue_size = 64

    server = Server(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(application)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answered
    server.shutdown()
    server.server_close()


# The offline Stripe: served over HTTP on a free port, the real `stripe` client pointed at it.


class HeldEvents:
    """Events the offline Stripe sent, waiting to be delivered by the test."""

    def __init__(self):
        self.held = []

    def __call__(self, event):
        self.held.append(event)

    def of_type(self, event_type):
        return [e for e in self.held if e["type"] == event_type]

    def take(self):
        taken, self.held = self.held, []
        return taken


@pytest.fixture(scope="session")
def _offline_stripe_server():
    held = HeldEvents()
    stand_in = OfflineStripe(deliver=held)
    server = serve(stand_in)
    yield stand_in, held, server
    server.shutdown()


@pytest.fixture
def offline_stripe(_offline_stripe_server, monkeypatch):
    """The stand-in, emptied, with the Stripe client pointed at it."""
    stand_in, held, server = _offline_stripe_server
    stand_in.reset()
    held.take()
    monkeypatch.setattr(stripe, "api_base", server.url)
    stand_in.url = server.url
    return stand_in


@pytest.fixture
def stripe_events(_offline_stripe_server, offline_stripe):
    return _offline_stripe_server[1]
