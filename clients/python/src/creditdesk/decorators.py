"""`requires_credits`: charge for a function's work before it runs (any framework).

    @requires_credits("reports.export", account=lambda request, **_: request.user.org_id,
                      client=cd, on_refused=lambda error, *args, **kwargs: refuse(error))
    def export(request): ...

The function runs only when the consume succeeded (once charged, a use that then raises is
not refunded). With `reserve=True` the credits are held before it runs and the actual use
(`actual(result, *args, **kwargs)`, by default the quantity held) committed after; if it
raises, or used nothing, the hold is released and nothing is charged. A coroutine
function gets an async wrapper and needs an AsyncCreditDesk. creditdesk.django has the same
decorator with Django's defaults (a JSON 402/403, the client from settings).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar, cast

from ._calls import decimal_text
from .async_client import AsyncCreditDesk
from .client import CreditDesk
from .errors import (
    AccountSuspended,
    APIError,
    FeatureNotEnabled,
    InsufficientCredits,
    QuotaExceeded,
)
from .types import Quantity

F = TypeVar("F", bound=Callable[..., Any])

REFUSALS = (InsufficientCredits, FeatureNotEnabled, QuotaExceeded, AccountSuspended)
"""The answers that mean "not this account, not now" (402 and the 403s about the account);
anything else (a wrong key, an unknown feature) is the integration's bug and is raised."""

ClientSource = CreditDesk | AsyncCreditDesk | Callable[[], CreditDesk | AsyncCreditDesk]


def requires_credits(
    feature: str,
    *,
    account: Callable[..., str],
    quantity: Quantity | Callable[..., Quantity] = 1,
    client: ClientSource,
    reserve: bool = False,
    actual: Callable[..., Quantity] | None = None,
    on_refused: Callable[..., Any] | None = None,
) -> Callable[[F], F]:
    """`account` and a callable `quantity` receive the function's own arguments;
    `on_refused(error, *args, **kwargs)` answers instead of the function when the account
    may not (without it the error is raised); `client` is a client or a function giving one
    (called at each call, so it can be built lazily)."""

    def decorate(function: F) -> F:
        def charge_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Quantity]:
            amount = quantity(*args, **kwargs) if callable(quantity) else quantity
            return account(*args, **kwargs), amount

        def used(result: Any, held: Quantity, args: tuple[Any, ...], kwargs: Any) -> Quantity:
            return actual(result, *args, **kwargs) if actual is not None else held

        def refused(error: APIError, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if on_refused is None:
                raise error
            return on_refused(error, *args, **kwargs)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                cd = _client(client, AsyncCreditDesk)
                who, amount = charge_args(args, kwargs)
                ran = False  # a refusal raised by the function itself is not ours to answer
                try:
                    if not reserve:
                        await cd.consume(account=who, feature=feature, quantity=amount)
                        ran = True
                        return await function(*args, **kwargs)
                    async with cd.reserve(who, feature, amount) as hold:
                        ran = True
                        result = await function(*args, **kwargs)
                        actual = used(result, amount, args, kwargs)
                        if _positive(actual):  # else nothing used: the block releases it all
                            try:
                                await hold.commit(actual)
                            except InsufficientCredits:
                                await hold.commit(amount)  # see _positive
                        return result
                except REFUSALS as error:
                    if ran:
                        raise
                    return refused(error, args, kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            cd = _client(client, CreditDesk)
            who, amount = charge_args(args, kwargs)
            ran = False  # a refusal raised by the function itself is not ours to answer
            try:
                if not reserve:
                    cd.consume(account=who, feature=feature, quantity=amount)
                    ran = True
                    return function(*args, **kwargs)
                with cd.reserve(who, feature, amount) as hold:
                    ran = True
                    result = function(*args, **kwargs)
                    actual = used(result, amount, args, kwargs)
                    if _positive(actual):  # else nothing used: the block releases it all
                        try:
                            hold.commit(actual)
                        except InsufficientCredits:
                            hold.commit(amount)  # see _positive
                    return result
            except REFUSALS as error:
                if ran:
                    raise
                return refused(error, args, kwargs)

        return cast(F, wrapper)

    return decorate


def _positive(actual: Quantity) -> bool:
    """Whether the work used anything. When it used more than was held and the balance
    cannot cover the excess, the work is done all the same: what was held is charged (the
    `quantity` given is the most a call may take)."""
    return Decimal(decimal_text(actual)) > 0


C = TypeVar("C", CreditDesk, AsyncCreditDesk)


def _client(source: ClientSource, kind: type[C]) -> C:
    found = source if isinstance(source, CreditDesk | AsyncCreditDesk) else source()
    if not isinstance(found, kind):
        raise TypeError(f"this function needs a {kind.__name__}, not a {type(found).__name__}")
    return found
