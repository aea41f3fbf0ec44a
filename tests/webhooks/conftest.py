"""A real HTTP receiver on localhost that records what it is sent and verifies it the way
docs/webhooks.md tells a receiver to."""

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Receiver:
    url: str
    status: int = 200
    received: list = field(default_factory=list)

    def verify(self, secret, request):
        """docs/webhooks.md: HMAC-SHA256 of `<t>.<raw body>`, compared in constant time."""
        parts = dict(item.split("=", 1) for item in request["signature"].split(","))
        expected = hmac.new(
            secret.encode(), f"{parts['t']}.".encode() + request["body"], hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])

    def events(self):
        return [json.loads(r["body"]) for r in self.received]


@pytest.fixture
def receiver():
    state = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["receiver"].received.append(
                {
                    "body": body,
                    "signature": self.headers["CreditDesk-Signature"],
                    "event_id": self.headers["CreditDesk-Event-Id"],
                    "content_type": self.headers["Content-Type"],
                }
            )
            self.send_response(state["receiver"].status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_port}/hooks")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()


from tests.periods.conftest import calendar  # noqa: E402, F401 - the fixed calendar fixture
