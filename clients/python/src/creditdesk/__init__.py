"""The Python client of the CreditDesk credits API.

    from creditdesk import CreditDesk
    cd = CreditDesk(api_key="cd_live_...", base_url="https://credits.example.com")
    cd.consume(account="acme", feature="api_call", quantity=1)

docs/sdk.md is the guide; every method mirrors an operation of docs/api-reference.md.
"""

from ._version import __version__
from .async_client import AsyncCreditDesk, AsyncHold
from .client import CreditDesk, Hold
from .decorators import requires_credits
from .errors import (
    AccountNotFound,
    AccountSuspended,
    AlreadySubscribed,
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequest,
    BatchInterrupted,
    BatchTooLarge,
    ChangedMeanwhile,
    CheckoutAlreadyOpen,
    Conflict,
    ContractNotFound,
    CreditDeskError,
    DestinationRefused,
    FeatureNotEnabled,
    FeatureNotFound,
    Forbidden,
    IdempotencyKeyReused,
    IdempotencyKeysDiffer,
    InsufficientCredits,
    NotFound,
    PaymentProviderError,
    PaymentRequired,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ReservationNotHeld,
    ServerError,
    SubscriptionManagedByStripe,
    ValidationError,
)
from .retries import NO_RETRIES, RetryPolicy
from .webhooks import InvalidSignature, verify_webhook

__all__ = [
    "APIConnectionError",
    "APIError",
    "AccountNotFound",
    "AccountSuspended",
    "AlreadySubscribed",
    "AsyncCreditDesk",
    "AsyncHold",
    "AuthenticationError",
    "BadRequest",
    "BatchInterrupted",
    "BatchTooLarge",
    "ChangedMeanwhile",
    "CheckoutAlreadyOpen",
    "Conflict",
    "ContractNotFound",
    "CreditDesk",
    "CreditDeskError",
    "DestinationRefused",
    "FeatureNotEnabled",
    "FeatureNotFound",
    "Forbidden",
    "Hold",
    "IdempotencyKeyReused",
    "IdempotencyKeysDiffer",
    "InsufficientCredits",
    "InvalidSignature",
    "NO_RETRIES",
    "NotFound",
    "PaymentProviderError",
    "PaymentRequired",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "ReservationNotHeld",
    "RetryPolicy",
    "ServerError",
    "SubscriptionManagedByStripe",
    "ValidationError",
    "__version__",
    "requires_credits",
    "verify_webhook",
]
