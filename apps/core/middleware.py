"""Request ids: every response carries `X-Request-ID` (the caller's, if it sent a sane one),
and every line logged while the request is served carries it too (apps/core/logging.py), so
a customer's report can be matched to the log lines."""

import re
import secrets

from django.conf import settings

from .logging import REQUEST_ID

SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request.headers.get("X-Request-ID", ""))
        # Cleared on request_finished (apps.py), not here: Django logs a 4xx or 5xx answer
        # after the middleware has returned it.
        REQUEST_ID.set(request.request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


def request_id_for(incoming):
    return incoming if SANE.match(incoming) else secrets.token_hex(16)


def client_ip(request):
    """The caller's address: the peer's, or behind TRUSTED_PROXY_COUNT proxies the entry they
    appended to X-Forwarded-For (entries further left are the client's word, not theirs)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if proxies and len(forwarded) >= proxies and forwarded[-proxies]:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
