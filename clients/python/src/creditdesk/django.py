"""`requires_credits` for Django views, with Django's defaults:

    from creditdesk.django import requires_credits

    @requires_credits("reports.export", account=lambda request, *a, **k: request.user.org_id)
    def export(request): ...

The client is built once from settings (CREDITDESK_API_KEY, CREDITDESK_BASE_URL; else the
environment's variables of the same names), and a refusal answers the API's own error as
JSON with its status (402, 403) unless `on_refused(error, request, *args, **kwargs)` answers
in the app's way (a template, a redirect to the pricing page). Async views work too.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.http import JsonResponse  # type: ignore[import-untyped]

from .async_client import AsyncCreditDesk
from .client import CreditDesk
from .decorators import C, F
from .decorators import requires_credits as plain_requires_credits
from .errors import APIError
from .types import Quantity


def _from_settings(kind: type[C]) -> C:
    return kind(
        getattr(settings, "CREDITDESK_API_KEY", None),
        base_url=getattr(settings, "CREDITDESK_BASE_URL", None),
    )


@functools.cache
def default_client() -> CreditDesk:
    return _from_settings(CreditDesk)


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncCreditDesk] = (
    weakref.WeakKeyDictionary()
)


def default_async_client() -> AsyncCreditDesk:
    """One per event loop: its connections belong to the loop that opened them, and Django
    under WSGI runs each async view in a loop of its own (under ASGI there is one)."""
    loop = asyncio.get_running_loop()
    if loop not in _async_clients:
        _async_clients[loop] = _from_settings(AsyncCreditDesk)
    return _async_clients[loop]


def refusal_response(error: APIError, *args: Any, **kwargs: Any) -> Any:
    """The API's error body and status, as the app's answer."""
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return JsonResponse(body, status=error.status)


def requires_credits(
    feature: str,
    *,
    account: Callable[..., str],
    quantity: Quantity | Callable[..., Quantity] = 1,
    reserve: bool = False,
    actual: Callable[..., Quantity] | None = None,
    on_refused: Callable[..., Any] | None = None,
    client: CreditDesk | AsyncCreditDesk | Callable[[], Any] | None = None,
) -> Callable[[F], F]:
    """creditdesk.decorators.requires_credits with the client from settings and a JSON
    refusal by default; `account(request, *args, **kwargs)` names the account."""

    def decorate(view: F) -> F:
        source = client or (
            default_async_client if inspect.iscoroutinefunction(view) else default_client
        )
        return plain_requires_credits(
            feature,
            account=account,
            quantity=quantity,
            client=source,
            reserve=reserve,
            actual=actual,
            on_refused=on_refused or refusal_response,
        )(view)

    return decorate
