"""The offline Stripe's state: its objects (in memory, and in a JSON file for the demo), the
events it emits and their delivery to webhook endpoints. The API calls (`api.py`) and what
happens outside the API (`world.py`) are mixed in."""

import json
import logging
import secrets
import threading
import time
from pathlib import Path

import requests

from .api import ApiObjects
from .wire import API_VERSION, PREFIXES, StripeError, missing, sign
from .world import World

logger = logging.getLogger(__name__)


class OfflineStripe(ApiObjects, World):
    """The stand-in's state and its operations. `deliver(event)` sends an event; by default to
    every registered endpoint over HTTP (tests pass their own to hold events back)."""

    def __init__(self, *, state_file=None, deliver=None):
        self.lock = threading.RLock()
        self.state_file = Path(state_file) if state_file else None
        self.deliver = deliver or self.post_to_endpoints
        self.objects = {}
        self.idempotent = {}  # Idempotency-Key -> answer, replayed as Stripe does
        self.lose_next_answer = False  # the next API write applies, then answers 500
        self.holds = {}  # API path -> Hold: its next write applies, then its answer waits
        if self.state_file and self.state_file.exists():
            self.objects = json.loads(self.state_file.read_text())

    # --- storage ---------------------------------------------------------------------------

    def reset(self):
        with self.lock:
            self.objects = {}
            self.idempotent = {}
            self.holds = {}

    def hold_next_answer(self, path):
        """The next write to `/v1/<path>` takes effect (and is kept for its idempotency key),
        then its answer waits until the Hold is released: the caller can be killed while
        Stripe has done what it asked."""
        with self.lock:
            hold = self.holds[path] = Hold()
        return hold

    def _save(self):
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.objects))
            tmp.replace(self.state_file)

    def all(self, kind):
        return self.objects.setdefault(kind, {})

    def get(self, kind, object_id):
        found = self.all(kind).get(object_id)
        if found is None:
            raise missing(kind.replace("checkout.", ""), object_id)
        return found

    def new(self, kind, object_id=None, **fields):
        object_id = object_id or f"{PREFIXES[kind]}_{secrets.token_hex(12)}"
        if object_id in self.all(kind):
            raise StripeError(
                400, f"A {kind} with id {object_id} already exists.", code="resource_already_exists"
            )
        obj = {
            "id": object_id,
            "object": kind,
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
        }
        obj.update(fields)
        self.all(kind)[object_id] = obj
        return obj

    # --- events ----------------------------------------------------------------------------

    def emit(self, event_type, obj, previous=None):
        data = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        event = self.new(
            "event",
            type=event_type,
            api_version=API_VERSION,
            data=data,
            pending_webhooks=len(self.endpoints()),
            request={"id": None, "idempotency_key": None},
        )
        event.pop("metadata")
        self._outbox.append(event)
        return event

    def endpoints(self):
        return [e for e in self.all("webhook_endpoint").values() if e["status"] == "enabled"]

    def post_to_endpoints(self, event):
        """Send like Stripe: to each enabled endpoint, signed with its secret; a failure is
        retried a few times with backoff in the background."""
        payload = json.dumps(event)
        for endpoint in self.endpoints():
            wanted = endpoint["enabled_events"]
            if "*" not in wanted and event["type"] not in wanted:
                continue
            threading.Thread(
                target=self._post, args=(endpoint, payload), daemon=True, name="offline-webhook"
            ).start()

    @staticmethod
    def _post(endpoint, payload, attempts=6):
        for attempt in range(attempts):
            try:
                answer = requests.post(
                    endpoint["url"],
                    data=payload.encode(),
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "Stripe-Signature": sign(payload, endpoint["secret"]),
                        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    },
                    timeout=30,
                    allow_redirects=False,
                )
                if 200 <= answer.status_code < 300:
                    return
                logger.warning("webhook to %s answered %s", endpoint["url"], answer.status_code)
            except requests.RequestException as error:
                logger.warning("webhook to %s failed: %s", endpoint["url"], error)
            time.sleep(2**attempt)

    def run(self, operation, *args, **kwargs):
        """One operation under the lock; its events go out after the state is saved."""
        with self.lock:
            self._outbox = []
            try:
                result = operation(*args, **kwargs)
            finally:
                events, self._outbox = self._outbox, []
                self._save()
        for event in events:
            self.deliver(event)
        return result

    @property
    def base_url(self):
        return getattr(self, "_base_url", "http://127.0.0.1:12111")


class Hold:
    """A write whose answer is held back: `reached` once it has taken effect; the answer goes
    out when `release()` is called (or after a minute, so no thread waits forever)."""

    def __init__(self):
        self.reached = threading.Event()
        self._released = threading.Event()

    def wait(self):
        self.reached.set()
        self._released.wait(60)

    def release(self):
        self._released.set()
