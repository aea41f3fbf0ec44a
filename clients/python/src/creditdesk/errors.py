"""The API's errors as exceptions: one class per error code, grouped under one per status.

Catch a group (`NotFound`, `Forbidden`, `Conflict`) or a single code (`InsufficientCredits`);
every one carries `status`, `code`, `message` and `details` as the API sent them.
"""

from __future__ import annotations

from typing import Any


class CreditDeskError(Exception):
    """Anything the client raises."""


class APIConnectionError(CreditDeskError):
    """No answer came back (connection refused, reset, timed out), after the retries allowed."""


class BatchInterrupted(CreditDeskError):
    """consume_batch stopped at a request that failed (its error is `__cause__`). `results`:
    the events answered before it, `index` into the events given; `remaining`: the events
    from the failed request on, each with the idempotency key it was sent with, so
    `consume_batch(error.remaining)` charges none of them twice."""

    def __init__(self, message: str, *, results: list[Any], remaining: list[Any]) -> None:
        super().__init__(message)
        self.results = results
        self.remaining = remaining


class APIError(CreditDeskError):
    """The API answered with an error: `{"error": {"code", "message", "details"}}`."""

    status: int = 0
    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.headers = headers or {}

    @property
    def request_id(self) -> str | None:
        """The server's id of the request (X-Request-ID): quote it when reporting a 500."""
        value = self.details.get("request_id") or self.headers.get("x-request-id")
        return str(value) if value else None

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class BadRequest(APIError):
    """400: the request broke a rule (`validation_error`) or was not JSON (`malformed_json`)."""


class ValidationError(BadRequest):
    code = "validation_error"


class AuthenticationError(APIError):
    """401: the key is missing, unknown, revoked or expired."""

    code = "unauthenticated"


class PaymentRequired(APIError):
    """402."""


class InsufficientCredits(PaymentRequired):
    """Not enough credits; `details`: credit_type, credits_required, available."""

    code = "insufficient_credits"


class Forbidden(APIError):
    """403: the key may not, or the account may not use what it asked for."""


class PermissionDenied(Forbidden):
    code = "permission_denied"


class FeatureNotEnabled(Forbidden):
    code = "feature_not_enabled"


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"


class AccountSuspended(Forbidden):
    code = "account_suspended"


class DestinationRefused(Forbidden):
    code = "destination_refused"


class NotFound(APIError):
    """404."""

    code = "not_found"


class AccountNotFound(NotFound):
    code = "account_not_found"


class FeatureNotFound(NotFound):
    code = "feature_not_found"


class ContractNotFound(NotFound):
    code = "contract_not_found"


class Conflict(APIError):
    """409."""


class IdempotencyKeyReused(Conflict):
    """The key was used before for a different request."""

    code = "idempotency_key_reused"


class IdempotencyKeysDiffer(Conflict):
    code = "idempotency_keys_differ"


class ReservationNotHeld(Conflict):
    """The reservation was committed, released or expired already."""

    code = "reservation_not_held"


class ChangedMeanwhile(Conflict):
    code = "changed_meanwhile"


class SubscriptionManagedByStripe(Conflict):
    code = "subscription_managed_by_stripe"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"


class CheckoutAlreadyOpen(Conflict):
    code = "checkout_already_open"


class BatchTooLarge(APIError):
    """413."""

    code = "batch_too_large"


class RateLimited(APIError):
    """429, after the retries allowed; `retry_after` is the server's wait in seconds."""

    code = "rate_limited"

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(APIError):
    """5xx."""


class PaymentProviderError(ServerError):
    """502: Stripe could not be reached or refused; nothing was charged."""

    code = "payment_provider_error"


BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BatchTooLarge,
    429: RateLimited,
}


def _codes(root: type[APIError]) -> dict[str, type[APIError]]:
    found = {}
    for cls in root.__subclasses__():
        if "code" in cls.__dict__:
            found[cls.code] = cls
        found.update(_codes(cls))
    return found


BY_CODE: dict[str, type[APIError]] = _codes(APIError)


def error_class(status: int, code: str) -> type[APIError]:
    """The most precise class: the code's own, else the status's group."""
    if code in BY_CODE:
        return BY_CODE[code]
    if status >= 500:
        return ServerError
    return BY_STATUS.get(status, APIError)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the API sends seconds; an HTTP date is not used by it)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
