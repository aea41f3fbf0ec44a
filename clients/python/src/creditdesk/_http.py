"""What the sync and async clients share around a request: settings, headers, answers,
errors, and the retry decision for one call (`Attempts`)."""

from __future__ import annotations

import os
from typing import Any

import httpx

from ._calls import Call
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    BatchInterrupted,
    CreditDeskError,
    ReservationNotHeld,
    error_class,
)
from .retries import NOT_SENT, RetryPolicy
from .types import Reservation

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 10.0


def settings(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    """The key and URL given, else CREDITDESK_API_KEY and CREDITDESK_BASE_URL."""
    key = api_key or os.environ.get("CREDITDESK_API_KEY")
    if not key:
        raise ValueError("an API key is needed: api_key=... or CREDITDESK_API_KEY")
    url = base_url or os.environ.get("CREDITDESK_BASE_URL") or DEFAULT_BASE_URL
    return key, url.rstrip("/")


def headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": f"creditdesk-python/{__version__}",
    }


def answer(response: httpx.Response) -> Any:
    """The JSON of a successful answer (None for 204)."""
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def api_error(response: httpx.Response) -> APIError:
    """The typed exception for an error answer, from its `{"error": {...}}` body (a body
    that is not one, say a proxy's HTML page, still gives the status's class)."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or f"http_{response.status_code}")
    message = str(error.get("message") or response.reason_phrase or "error")
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    cls = error_class(response.status_code, code)
    return cls(
        message,
        status=response.status_code,
        code=code,
        details=details,
        headers=dict(response.headers),
    )


class Attempts:
    """The tries of one call: after each failure, the wait before the next, or the error."""

    def __init__(self, call: Call, policy: RetryPolicy) -> None:
        self.call = call
        self.policy = policy
        self.retry = 0
        self.maybe_ran = False  # an earlier try reached the server and its answer was lost

    def done_before(self, response: httpx.Response) -> bool:
        """A DELETE answered 404 after a try that may have run: that try deleted it."""
        return self.maybe_ran and self.call.method == "DELETE" and response.status_code == 404

    def after_error(self, error: httpx.TransportError) -> float:
        self.maybe_ran = self.maybe_ran or not isinstance(error, NOT_SENT)
        wait = self._delay(error=error)
        if wait is None:
            raise APIConnectionError(f"{self.call.method} {self.call.path}: {error!r}") from error
        return wait

    def after_answer(self, response: httpx.Response) -> float:
        self.maybe_ran = self.maybe_ran or response.status_code >= 500
        wait = self._delay(response=response)
        if wait is None:
            raise api_error(response)
        return wait

    def _delay(
        self, *, error: Exception | None = None, response: httpx.Response | None = None
    ) -> float | None:
        wait = self.policy.delay(
            retry=self.retry,
            replayable=self.call.replayable,
            keyed=self.call.keyed,
            response=response,
            error=error,
        )
        self.retry += 1
        return wait


def request_args(call: Call) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.params or None}
    if call.body is not None:
        args["json"] = call.body
    return args


def held(reservation: Reservation) -> Reservation:
    """A reservation to work under: one replayed by its idempotency key may have been
    committed or released since, and then nothing is held for the work."""
    if reservation["status"] != "held":
        raise ReservationNotHeld(
            f"reservation {reservation['id']} is {reservation['status']}, not held",
            status=409,
            code="reservation_not_held",
        )
    return reservation


def add_results(results: list[Any], answered: list[Any]) -> None:
    """A batch request's results after those of the earlier ones: `index` into all events."""
    start = len(results)
    results.extend({**result, "index": start + n} for n, result in enumerate(answered))


def interrupted(error: CreditDeskError, results: list[Any], unsent: list[Call]) -> BatchInterrupted:
    remaining = [event for call in unsent for event in call.body["events"]]
    return BatchInterrupted(
        f"{len(results)} events answered, {len(remaining)} not: {error}",
        results=results,
        remaining=remaining,
    )
