"""A real HTTP receiver on localhost that records what it is sent and verifies it the way
docs/webhooks.md tells a receiver to."""

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings

# The receiver code from the docs, run as printed: if the docs drift, these tests fail.
_DOCS = (settings.BASE_DIR / "docs" / "webhooks.md").read_text()
_SNIPPET = re.search(r"```python\n(.*?)```", _DOCS, re.S).group(1)
_NAMESPACE = {}
exec(_SNIPPET, _NAMESPACE)
DOCUMENTED_VERIFY = _NAMESPACE["verify"]


@dataclass
class Receiver:
    url: str
    status: int = 200
    received: list = field(default_factory=list)

    def verify(self, secret, request):
        """Verify as docs/webhooks.md tells a receiver to: with the function printed there."""
        return DOCUMENTED_VERIFY(secret, request["signature"], request["body"])

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
                    "host": self.headers["Host"],
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
