"""The one place where errors become the API's `{"error": {code, message, details}}`
(docs/api-reference.md, "Errors")."""

import logging
import math
import sys

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from apps.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    PaymentProviderError,
)

logger = logging.getLogger(__name__)

# The API's statuses, by the domain error's class (its subclasses inherit the status).
DOMAIN_STATUS = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    InsufficientCredits: status.HTTP_402_PAYMENT_REQUIRED,
    Forbidden: status.HTTP_403_FORBIDDEN,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    PaymentProviderError: status.HTTP_502_BAD_GATEWAY,
}


class BatchTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "batch_too_large"
    default_detail = "Too many events in one batch."


INTERNAL_ERROR = "Something went wrong on our side; it has been logged."
# The database could not be reached, or the connection was lost mid-request (a restart, a
# failover). Where it was lost mid-request the request may have run: only a retry with the
# same idempotency key is sure to charge once.
DATABASE_UNAVAILABLE = (
    "The database is unavailable; try again after Retry-After seconds, with the same "
    "Idempotency-Key."
)
DATABASE_RETRY_AFTER = 1  # seconds: a restart or failover takes a few
DATABASE_ERRORS = (OperationalError, InterfaceError)


# SQLSTATEs of a connection lost or refused: the server shutting down or restarting, or a
# connection failure (class 08). Other operational errors (a deadlock, a lock or statement
# timeout) are answered 503 too, but logged with their traceback: they may be bugs.
CONNECTION_LOST = ("57P01", "57P02", "57P03")


def database_unavailable(request_id, error):
    """`(status, headers, body)` of a request cut short by the database."""
    sqlstate = getattr(error.__cause__, "sqlstate", None)
    if sqlstate is None or sqlstate.startswith("08") or sqlstate in CONNECTION_LOST:
        logger.warning("Database unavailable (request %s): %s", request_id, error)
    else:
        logger.error("Database error (request %s)", request_id, exc_info=error)
    return (
        503,
        {"Retry-After": str(DATABASE_RETRY_AFTER)},
        error_body("service_unavailable", DATABASE_UNAVAILABLE, {"request_id": request_id}),
    )


def error_body(code, message, details=None):
    return {"error": {"code": code, "message": message, "details": details or {}}}


def domain_status(exc):
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=domain_status(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, DATABASE_ERRORS):
        request_id = getattr(context.get("request"), "request_id", None)
        status_code, headers, body = database_unavailable(request_id, exc)
        return Response(body, status=status_code, headers=headers)
    if not isinstance(exc, exceptions.APIException):
        # A bug. Logged with the request's id, which the response carries; no traceback leaks.
        request = context.get("request")
        request_id = getattr(request, "request_id", None)
        logger.exception("Unhandled error in %s (request %s)", context.get("view"), request_id)
        return Response(
            error_body(
                "internal_error",
                INTERNAL_ERROR,
                {"request_id": request_id},
            ),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))

    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = error_body("validation_error", "The request is not valid.", details)
    elif isinstance(exc, exceptions.ParseError):
        body = error_body("malformed_json", str(exc.detail))
    elif isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        body = error_body("unauthenticated", str(exc.detail))
        exc.status_code = status.HTTP_401_UNAUTHORIZED
    elif isinstance(exc, exceptions.PermissionDenied):
        body = error_body("permission_denied", str(exc.detail))
    elif isinstance(exc, exceptions.NotFound):
        body = error_body("not_found", str(exc.detail))
    elif isinstance(exc, exceptions.Throttled):
        body = error_body("rate_limited", str(exc.detail))
    else:
        body = error_body(exc.default_code, str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)


def page_not_found(request, exception):
    """Django's 404 for paths no view matched: the API's error body under /api/, HTML elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "No such endpoint."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """Errors outside DRF views (middleware): no traceback leaks; the request id is logged by
    Django's own error log and sent back."""
    if request.path.startswith("/api/"):
        request_id = getattr(request, "request_id", None)
        error = sys.exc_info()[1]  # Django calls this while handling the error
        if isinstance(error, DATABASE_ERRORS):
            status_code, headers, body = database_unavailable(request_id, error)
            return JsonResponse(body, status=status_code, headers=headers)
        return JsonResponse(
            error_body(
                "internal_error",
                INTERNAL_ERROR,
                {"request_id": request_id},
            ),  # fmt: skip
            status=500,
        )
    return defaults.server_error(request)
