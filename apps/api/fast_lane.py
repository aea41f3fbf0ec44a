"""The fast lane: `POST /api/v1/consume` and `POST /api/v1/check`, the two calls an app makes
on every request of its own, answered without Django's request cycle.

Django's handler, its middleware and DRF's request wrapper cost more CPU per request than the
consume itself (bench/RESULTS.md). The lane is WSGI middleware in front of Django
(config/wsgi.py) that takes only requests it can answer whole, with the views' input and
output serializers, and makes one database call for the whole request: key, scope, rate,
account and the consume or check (apps/usage/api_calls.py; the rate counted in Redis first).
It answers a consume that charges or replays, and every check. Any
other request, and every error, goes on to Django untouched (the body put back, the rate
already counted), which answers as if the lane did not exist: nothing has been written then,
because a refused consume writes nothing. So every error body still comes from one handler.
"""

import functools
import io
import logging
import select
import threading
import time
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import request_started, setting_changed
from django.db import DEFAULT_DB_ALIAS, connections
from django.dispatch import receiver
from django.http.request import split_domain_port, validate_host
from rest_framework.compat import LONG_SEPARATORS, SHORT_SEPARATORS
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer

from apps.accounts.services import hash_api_key
from apps.core import metrics
from apps.core.errors import DomainError
from apps.core.logging import REQUEST_ID
from apps.core.middleware import request_id_for
from apps.usage import api_calls, fast_path
from apps.usage.api_calls import Caller, Refused
from apps.usage.services import ConsumeRequest

from .errors import DATABASE_ERRORS, INTERNAL_ERROR, database_unavailable, error_body
from .flat_serializers import FlatInput, FlatOutput
from .parsers import parse_exact_json
from .throttling import COUNTED, count_request, uncount_request
from .views.base import REPLAYED
from .views.consumption import CheckView, ConsumeView

logger = logging.getLogger(__name__)

# Larger bodies (metadata is at most 4 KiB) take Django's path, with its 1 MiB limit.
MAX_BODY = 8 * 1024
JSON_TYPES = {"application/json", "application/json; charset=utf-8"}
ACCEPTED = {"*/*", "application/json"}


def _consume(caller, data):
    request = ConsumeRequest.build(account=None, **data)
    outcome = api_calls.consume(caller=caller, request=request)
    if outcome is None or isinstance(outcome, Refused):
        return outcome
    if outcome.error:
        return None  # a refusal writes nothing: Django answers it in the API's words
    metrics.count_charged(replayed=outcome.replayed)
    return outcome.usage_event, REPLAYED if outcome.replayed else {}


def _check(caller, data):
    answer = api_calls.check(caller=caller, **data)
    return answer if isinstance(answer, Refused) else (answer, {})


@dataclass(frozen=True)
class Lane:
    """One path the lane answers: the view whose requests it takes (its scope and
    serializers), the service call, the success status."""

    view: type
    # (caller, valid input) -> (result, extra headers), or Refused or None: Django answers
    act: object
    status: str

    @property
    def scope(self):
        [scope] = self.view.required_scopes  # the database call judges one scope
        return scope


LANES = {
    "/api/v1/consume": Lane(ConsumeView, _consume, "201 Created"),
    "/api/v1/check": Lane(CheckView, _check, "200 OK"),
}


class _Serializers(threading.local):
    """The views' serializers, flattened (flat_serializers.py), one pair per path and thread
    (a serializer copies its fields when first used; building one per request costs more
    than validating with it)."""

    def __init__(self):
        self.by_path = {
            path: (
                FlatInput(lane.view.input_serializer()),
                FlatOutput(lane.view.output_serializer()),
            )
            for path, lane in LANES.items()
        }


_serializers = _Serializers()


def _json_encoder(renderer):
    """The encoder DRF's JSONRenderer makes afresh for every answer (json.dumps with `cls`),
    made once: the same options, as `render` sets them when no indent is asked for."""
    return renderer.encoder_class(
        ensure_ascii=renderer.ensure_ascii, allow_nan=not renderer.strict,
        separators=SHORT_SEPARATORS if renderer.compact else LONG_SEPARATORS,
    )  # fmt: skip


_encoder = _json_encoder(JSONRenderer())


def _render(output):
    """JSONRenderer().render(output), byte for byte (tests/api/test_fast_lane.py)."""
    text = _encoder.encode(output)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


class _Config:
    """The settings the lane reads on every request, read once: each `settings.X` is a lazy
    object's lookup in Python, and together they cost more CPU than rendering the answer.
    Built again when a setting changes (Django's setting_changed, which tests send)."""

    HOSTS_SEEN = 256

    def __init__(self):
        self.on = settings.API_FAST_LANE and fast_path.enabled()
        self.ssl_redirect = settings.SECURE_SSL_REDIRECT
        self.proxy_ssl_header = settings.SECURE_PROXY_SSL_HEADER
        self.forwarded_host = settings.USE_X_FORWARDED_HOST
        self.allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not self.allowed_hosts:
            self.allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        self.hosts = {}  # Host header -> allowed, as Django judges it
        self.hsts = None
        if settings.SECURE_HSTS_SECONDS:
            self.hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                self.hsts += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                self.hsts += "; preload"
        # What Django's SecurityMiddleware and XFrameOptionsMiddleware add, in their order.
        self.security_headers = []
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            self.security_headers.append(("X-Content-Type-Options", "nosniff"))
        if policy := settings.SECURE_REFERRER_POLICY:
            if isinstance(policy, str):
                policy = [part.strip() for part in policy.split(",")]
            self.security_headers.append(("Referrer-Policy", ",".join(policy)))
        if opener := settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            self.security_headers.append(("Cross-Origin-Opener-Policy", opener))
        self.security_headers.append(("X-Frame-Options", settings.X_FRAME_OPTIONS.upper()))

    def host_allowed(self, host):
        """Django's own Host check (HttpRequest.get_host), remembered per Host header."""
        allowed = self.hosts.get(host)
        if allowed is None:
            if len(self.hosts) >= self.HOSTS_SEEN:
                self.hosts.clear()  # a caller inventing Host headers gains nothing
            domain, _ = split_domain_port(host)
            allowed = self.hosts[host] = bool(domain) and validate_host(domain, self.allowed_hosts)
        return allowed


@functools.cache
def _config():
    return _Config()


@receiver(setting_changed)
def _settings_changed(**kwargs):
    _config.cache_clear()


class FastLane:
    """WSGI middleware around Django's application."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        answer = answer_request(environ)
        if answer is None:
            return self.app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [body]


def answer_request(environ):
    """`(status line, headers, body)`, or None: Django answers (the body is put back)."""
    if not (
        environ["REQUEST_METHOD"] == "POST"
        and environ.get("PATH_INFO") in LANES
        and not environ.get("SCRIPT_NAME")
        and (config := _config()).on  # on PostgreSQL: its one statement is a function
    ):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= MAX_BODY:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    lane = LANES[environ["PATH_INFO"]]
    serializer_in, serializer_out = _serializers.by_path[environ["PATH_INFO"]]
    try:
        prepared = _prepare(environ, body, serializer_in, lane.scope, config)
    except Exception:
        # Nothing is written yet (the lane's one statement comes later): Django answers, and
        # logs whatever this was.
        logger.warning("The fast lane handed a request on after an error", exc_info=True)
        return None
    if prepared is None:
        return None
    request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
    token = REQUEST_ID.set(request_id)  # on every line logged from here (apps/core/logging.py)
    try:
        return _answer(environ, lane, prepared, serializer_out, request_id, config)
    finally:
        REQUEST_ID.reset(token)


def _answer(environ, lane, prepared, serializer_out, request_id, config):
    """answer_request's, once the request is the lane's to try."""
    status = lane.status
    try:
        answer = lane.act(*prepared)
        if isinstance(answer, Refused) and answer.before_the_rate:
            uncount_request(environ.pop(COUNTED))
        if answer is None or isinstance(answer, Refused):
            return None
        result, extra_headers = answer
        output = serializer_out(result)
    except DomainError:
        return None  # a refusal writes nothing: Django answers it in the API's words
    except DATABASE_ERRORS as error:
        # Unreachable, or lost mid-statement (perhaps committed): not handed on to Django,
        # which could charge again. The connection is marked; the next request replaces it.
        code, extra_headers, output = database_unavailable(request_id, error)
        status = f"{code} Service Unavailable"
    except Exception:
        # A bug: what Django's error handler would answer.
        logger.exception("Unhandled error in the fast lane (request %s)", request_id)
        status, extra_headers = "500 Internal Server Error", {}  # a 500 is no replay
        output = error_body("internal_error", INTERNAL_ERROR, {"request_id": request_id})
    content = _render(output)
    # A key of LANES: "/" and the route Django's resolver names (the middleware's label).
    metrics.count_request(endpoint=environ["PATH_INFO"][1:], method="POST", status=status)
    return status, _headers(environ, extra_headers, request_id, len(content), config), content


def _prepare(environ, body, serializer_in, scope, config):
    """`(caller, valid input)` if the lane can take this request, else None."""
    if environ.get("CONTENT_TYPE", "").lower() not in JSON_TYPES:
        return None
    if not config.host_allowed(_host(environ, config)):
        return None
    if environ.get("HTTP_ACCEPT", "*/*") not in ACCEPTED:
        return None  # DRF negotiates (406, or JSON with an indent the client asked for)
    if config.ssl_redirect and not _secure(environ, config):
        return None
    if "HTTP_IDEMPOTENCY_KEY" in environ:
        return None  # the views read the header (ApiView.valid): one place for its rules
    keyword, _, raw_key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if keyword.lower() != "bearer":
        return None
    try:
        payload = parse_exact_json(body)
    except ValueError:
        return None
    try:
        data = serializer_in(payload)
    except (ValidationError, DjangoValidationError):
        return None
    raw_key = raw_key.strip()
    key_hash = hash_api_key(raw_key)
    # Counted before the key is known: the database call that authenticates also judges the
    # count against the key's limit (DRF's order: key, scope, rate, then the view).
    environ[COUNTED] = counted = count_request(key_hash)
    caller = Caller.of(raw_key=raw_key, key_hash=key_hash, scope=scope, rate_count=counted.number,
                       external_id=data.pop("account"))  # fmt: skip
    if caller is None:  # not even of a key's form: DRF counts only a known key's requests
        uncount_request(environ.pop(COUNTED))
        return None
    _recycle_connection(environ)
    return caller, data


def _recycle_connection(environ):
    """Django's request_started handler (close_old_connections), sent only when it has work:
    sent on every request, it also schedules a health check (`SELECT 1`, CONN_HEALTH_CHECKS)
    before the next query, a round trip as long as the lane's whole statement. Instead, an
    idle connection the server has closed (a restart, an idle timeout) is found without a
    round trip: its socket has something to read (the server's goodbye, or the end)."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.x` looks the thread's up again
    if db.errors_occurred or (db.close_at is not None and time.monotonic() >= db.close_at):
        request_started.send(sender=FastLane, environ=environ)
    elif db.connection is not None and _closed_by_server(db.connection):
        db.close()  # the statement below opens a new one


def _closed_by_server(psycopg_connection):
    """Between requests nothing may arrive on an idle connection (nothing here LISTENs)."""
    try:
        poller = select.poll()  # not select.select: it refuses descriptors past 1023
        poller.register(psycopg_connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):  # no socket any more
        return True


def _headers(environ, extra, request_id, length, config):
    """The headers Django's stack gives the same answer (tests compare the two)."""
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(length)),
        ("Allow", "POST, OPTIONS"),
        *extra.items(),
        ("X-Request-ID", request_id),
    ]
    if config.hsts and _secure(environ, config):
        headers.append(("Strict-Transport-Security", config.hsts))
    headers += config.security_headers
    return headers


def _host(environ, config):
    """HttpRequest.get_host()'s choice of header. One that is there but empty is refused (by
    the check): only a missing Host falls back to SERVER_NAME."""
    if config.forwarded_host and "HTTP_X_FORWARDED_HOST" in environ:
        return environ["HTTP_X_FORWARDED_HOST"]
    if "HTTP_HOST" in environ:
        return environ["HTTP_HOST"]
    return environ.get("SERVER_NAME", "")


def _secure(environ, config):
    """HttpRequest.is_secure()."""
    if config.proxy_ssl_header:
        header, secure_value = config.proxy_ssl_header
        value = environ.get(header)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"
