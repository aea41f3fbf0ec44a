"""The Python client (clients/python) against a live CreditDesk: the project's WSGI
application (the fast lane in front of Django) on a threaded server, as gunicorn serves it."""

import httpx
import pytest
from creditdesk import AsyncCreditDesk, CreditDesk, RetryPolicy

from apps.accounts.services import create_api_key
from tests.ledger import priced_account

SCOPES = ["usage:read", "usage:write", "accounts:write", "grants:write", "webhooks:write"]
QUICK = RetryPolicy(base_delay=0.01, max_delay=0.05)  # the rules as shipped, the waits short


@pytest.fixture
def server(wsgi_server):
    return wsgi_server[0]


@pytest.fixture
def acme(transactional_db):
    """An account with 100 credits and a feature `api_call` at 1 credit a unit."""
    account, _ = priced_account(credits=100, external_id="acme")
    return account


@pytest.fixture
def key(transactional_db):
    return create_api_key(name="sdk", scopes=SCOPES)[1]


@pytest.fixture
def cd(server, key):
    with CreditDesk(key, base_url=server, retries=QUICK) as client:
        yield client


@pytest.fixture
def async_cd(server, key):
    return AsyncCreditDesk(key, base_url=server, retries=QUICK)


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Faults(httpx.BaseTransport):
    """A fault-injecting proxy between the client and the live server: `script` holds what
    happens to each request in turn, then requests pass through untouched.

    - "refuse": the connection fails before the request is sent (ConnectError);
    - "lose": the request reaches the server and runs, and its answer is lost (ReadError);
    - an int status (with `retry_after`): that answer, the server never asked;
    - None: passed through."""

    def __init__(self, *script, retry_after=None):
        self.script = list(script)
        self.retry_after = retry_after
        self.seen = []  # (method, path, body) of every request the client sent
        self.real = httpx.HTTPTransport()

    def handle_request(self, request):
        self.seen.append((request.method, request.url.path, request.read()))
        fault = self.script.pop(0) if self.script else None
        if fault == "refuse":
            raise httpx.ConnectError("connection refused (injected)", request=request)
        if fault == "lose":
            self.real.handle_request(request).read()
            raise httpx.ReadError("connection reset before the answer (injected)", request=request)
        if isinstance(fault, int):
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return httpx.Response(fault, headers=headers, json=_error_body(fault))
        return self.real.handle_request(request)

    def close(self):  # the client closes its transport: this one's connections end with it
        self.real.close()


def _error_body(status):
    code = {429: "rate_limited", 500: "internal_error"}.get(status, f"http_{status}")
    return {"error": {"code": code, "message": "injected", "details": {}}}


@pytest.fixture
def faulty(server, key):
    """`faulty(*script, retry_after=None, retries=QUICK)` -> (client, Faults)."""
    clients = []

    def make(*script, retry_after=None, retries=QUICK):
        faults = Faults(*script, retry_after=retry_after)
        client = CreditDesk(key, base_url=server, retries=retries, transport=faults)
        clients.append(client)
        return client, faults

    yield make
    for client in clients:
        client.close()
