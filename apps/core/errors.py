"""Domain errors. Services raise these; the API's one exception handler maps `code` to an HTTP
status and the API's error body (docs/api-reference.md), commands print `message`. No HTTP
codes in services."""

from .decimals import format_decimal


class DomainError(Exception):
    code = "error"
    default_message = "The request could not be completed."

    def __init__(self, message=None, *, details=None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class InvalidInput(DomainError):
    """Input that breaks a rule; `details` maps field -> list of messages."""

    code = "validation_error"
    default_message = "The input is not valid."


class NotFound(DomainError):
    code = "not_found"
    default_message = "Not found."


class AccountNotFound(NotFound):
    code = "account_not_found"
    default_message = "No account has that id."


class ContractNotFound(NotFound):
    code = "contract_not_found"
    default_message = "The account has no contract."


class FeatureNotFound(NotFound):
    code = "feature_not_found"
    default_message = "No active feature has that code."

    @classmethod
    def of(cls, code):
        return cls(f"No active feature has the code {code!r}.")


class InsufficientCredits(DomainError):
    """Details: credit_type, credits_required, available (decimal strings)."""

    code = "insufficient_credits"
    default_message = "Not enough credits."

    @classmethod
    def of(cls, *, credit_type, required, available):
        return cls(
            f"{format_decimal(required)} {credit_type} needed, "
            f"{format_decimal(max(available, 0))} available.",
            details={
                "credit_type": credit_type,
                "credits_required": format_decimal(required),
                "available": format_decimal(available),
            },
        )


class Forbidden(DomainError):
    """The account may not do this (entitlement, quota, status)."""


class FeatureNotEnabled(Forbidden):
    code = "feature_not_enabled"
    default_message = "The account's plan does not include this feature."

    @classmethod
    def of(cls, code):
        return cls(f"The account's plan does not include {code!r}.")


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"
    default_message = "The account has used this feature's quota for the period."

    @classmethod
    def of(cls, *, feature, limit, used):
        return cls(
            f"{feature}: {format_decimal(used)} of {format_decimal(limit)} used this period.",
            details={
                "feature": feature,
                "limit_per_period": format_decimal(limit),
                "used_this_period": format_decimal(used),
            },
        )


class DestinationRefused(Forbidden):
    """A webhook URL the server may not send to (apps/webhooks/destinations.py)."""

    code = "destination_refused"
    default_message = "Webhooks may not be sent to this URL."


class AccountSuspended(Forbidden):
    code = "account_suspended"
    default_message = "The account is suspended."


class Conflict(DomainError):
    pass


class ChangedMeanwhile(Conflict):
    """What the user confirmed is no longer what is stored: someone saved it since."""

    code = "changed_meanwhile"
    default_message = "It was changed by someone else since you saw it; nothing was saved."


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "This idempotency key was already used with a different request."


class IdempotencyKeysDiffer(Conflict):
    """The request names two keys: the `Idempotency-Key` header and another in its body."""

    code = "idempotency_keys_differ"
    default_message = "The Idempotency-Key header and the body's idempotency_key differ."


class ReservationNotHeld(Conflict):
    code = "reservation_not_held"
    default_message = "The reservation is no longer held."


class PaymentProviderError(DomainError):
    """Stripe could not be reached or refused the request; nothing was charged or changed."""

    code = "payment_provider_error"
    default_message = "The payment provider could not complete the request; try again."


class SubscriptionManagedByStripe(Conflict):
    """The subscription is billed through Stripe: only Stripe changes it (its webhook then
    settles ours)."""

    code = "subscription_managed_by_stripe"
    default_message = (
        "The account's subscription is billed through Stripe: change its plan on the billing "
        "page (Stripe then confirms it), or cancel it at Stripe first."
    )


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    default_message = "The account already has a Stripe subscription: change its plan instead."


class CheckoutAlreadyOpen(Conflict):
    code = "checkout_already_open"
    default_message = (
        "A plan Checkout of this account is already open: finish it, or wait until it expires."
    )
