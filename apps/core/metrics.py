"""Prometheus metrics, served at /metrics (docs/metrics.md).

Two kinds. Counters of what the web processes answer (requests, consume outcomes, Stripe
errors), kept in memory: under several workers set PROMETHEUS_MULTIPROC_DIR and the workers
keep them in files there instead, which any worker's scrape sums (prometheus_client's
multiprocess mode). And gauges read from the database while Prometheus scrapes: whatever
process did the work (a Celery worker, beat, a command), its rows say how it went. Each app
registers the collectors of its own tables from its AppConfig.ready() (`register_collector`):
this app may not import the apps above it.

Label values are routes, codes and job names, never a path or an account's id: a label value
is a series of its own, kept for weeks, and the scrape is not the place for customer data.
"""

import ipaddress
import logging
import time
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .models import OutboxTask

logger = logging.getLogger(__name__)

disable_created_metrics()  # a `_created` series beside every counter doubles what is stored

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
CHARGED, REPLAYED = "charged", "replayed"  # a consume's outcomes besides the refusals' codes
UNMATCHED = "unmatched"  # the endpoint of an answer no route gave (a 404, a redirect, a 413)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Each collector reads in a transaction of its own, every statement cut short after this: a
# slow database makes a scrape fail (creditdesk_scrape_collector_success 0), not pile up.
STATEMENT_BUDGET_MS = 500

HTTP_REQUESTS = Counter(
    "creditdesk_http_requests",
    "HTTP requests answered, by route (the URL pattern, never the path), method and status.",
    ["endpoint", "method", "status"],
)
CONSUMES = Counter(
    "creditdesk_consumes",
    "Consumes the API answered (single and batch events): charged, replayed or the code "
    "of the refusal.",
    ["outcome"],
)
STRIPE_ERRORS = Counter(
    "creditdesk_stripe_errors",
    "Stripe API calls that failed, by operation and Stripe's error class.",
    ["operation", "error"],
)

# Label children by their label values: a dict lookup per count, where labels() validates
# and locks each time (the fast lane's budget is a few microseconds a request).
_request_children = {}
_consume_children = {}


def count_request(*, endpoint, method, status):
    """One HTTP answer. `endpoint`: its route; `status`: the code, or a WSGI status line."""
    if method not in METHODS:
        method = "other"  # any word is a method to HTTP: not a label value
    key = (endpoint, method, status)
    child = _request_children.get(key)
    if child is None:
        child = _request_children[key] = HTTP_REQUESTS.labels(endpoint, method, str(status)[:3])
    child.inc()


def count_consume(*, outcome):
    """One consume the API answered: CHARGED, REPLAYED, or the refusal's error code."""
    child = _consume_children.get(outcome)
    if child is None:
        child = _consume_children[outcome] = CONSUMES.labels(outcome)
    child.inc()


def count_charged(*, replayed):
    """One consume the API answered with its charge: new, or replayed by its idempotency key."""
    count_consume(outcome=REPLAYED if replayed else CHARGED)


def count_stripe_error(*, operation, error):
    """One failed Stripe call: `operation` as "Customer.create", `error` Stripe's class name."""
    STRIPE_ERRORS.labels(operation, error).inc()


class RequestMetricsMiddleware:
    """Counts every answer Django gives; the fast lane counts the ones it gives itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        match = request.resolver_match
        count_request(
            endpoint=match.route if match else UNMATCHED,
            method=request.method,
            status=response.status_code,
        )
        return response


# --- the scrape ---------------------------------------------------------------------------

_collectors = {}  # name -> function yielding metric families, read from the database


def register_collector(*, name, collect):
    """Add `collect()` to every scrape: it reads the database and yields metric families."""
    _collectors[name] = collect


def gauge(name, documentation, labels=()):
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class DatabaseCollector:
    """Runs the registered collectors at scrape time, each within the statement budget; one
    that fails is logged and reported, and the others still answer."""

    def describe(self):
        return []  # read nothing when registered

    def collect(self):
        success = gauge(
            "creditdesk_scrape_collector_success",
            "1 if the collector read its tables in this scrape, else 0.",
            ["collector"],
        )
        took = gauge(
            "creditdesk_scrape_collector_duration_seconds",
            "How long the collector took in this scrape.",
            ["collector"],
        )
        for name, collect in _collectors.items():
            started = time.perf_counter()
            try:
                families = _within_budget(collect)
            except Exception:  # one broken collector must not fail the scrape
                logger.warning("Metrics: the %s collector failed", name, exc_info=True)
                families = None
            success.add_metric([name], 0 if families is None else 1)
            took.add_metric([name], time.perf_counter() - started)
            yield from families or []
        yield success
        yield took


def _within_budget(collect):
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_BUDGET_MS}")
        return list(collect())


DATABASE = DatabaseCollector()


def exposition():
    """The scrape's body: the counters of this process (in multiprocess mode: of every process
    writing to PROMETHEUS_MULTIPROC_DIR), then the gauges read from the database."""
    scrape = CollectorRegistry()
    if settings.PROMETHEUS_MULTIPROC_DIR:
        MultiProcessCollector(scrape, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        scrape.register(REGISTRY)  # with the process's CPU, memory and garbage collector
    scrape.register(DATABASE)
    return generate_latest(scrape)


def may_scrape(address):
    """Whether `address` (the client's, apps/core/middleware.py `client_ip`) is on
    METRICS_ALLOWED_IPS."""
    try:
        address = ipaddress.ip_address(address)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped  # a dual-stack listener's view of an IPv4 client
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


@cache
def _networks(entries):
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


# --- this app's tables ----------------------------------------------------------------------


def outbox_gauges():
    """Tasks the broker could not take yet (apps/core/outbox.py): a row normally lives for the
    moment between a commit and its publish."""
    waiting = OutboxTask.objects.aggregate(count=Count("pk"), oldest=Min("created_at"))
    count = gauge("creditdesk_outbox_tasks", "Tasks waiting in the outbox for the broker.")
    count.add_metric([], waiting["count"])
    age = gauge(
        "creditdesk_outbox_oldest_task_seconds",
        "Age of the oldest task in the outbox (0 when it is empty).",
    )
    oldest = waiting["oldest"]
    age.add_metric([], 0 if oldest is None else (timezone.now() - oldest).total_seconds())
    return [count, age]
