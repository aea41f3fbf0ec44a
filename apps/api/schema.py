from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key created in the admin or with `manage.py create_api_key`.",
        }


# The error responses of API.md, per operation (beyond 401, 403 permission_denied and 429,
# which every operation can give, and 400 malformed_json / 413 for every request body).
CODES = {
    400: "validation_error, malformed_json",
    401: "unauthenticated",
    402: "insufficient_credits (details: credit_type, credits_required, available)",
    403: "permission_denied, feature_not_enabled, quota_exceeded, account_suspended",
    404: "account_not_found, feature_not_found, not_found",
    409: (
        "idempotency_key_reused, reservation_not_held, subscription_managed_by_stripe, "
        "already_subscribed, checkout_already_open"
    ),
    413: "batch_too_large",
    429: "rate_limited (with Retry-After)",
    502: "payment_provider_error (Stripe could not be reached or refused; nothing charged)",
}
OPERATION_ERRORS = {
    ("/api/v1/accounts/{external_id}", "get"): [404],
    ("/api/v1/accounts/{external_id}", "put"): [400, 404, 409],
    ("/api/v1/accounts/{external_id}/balance", "get"): [400, 404],
    ("/api/v1/accounts/{external_id}/entitlements", "get"): [404],
    ("/api/v1/accounts/{external_id}/ledger", "get"): [400, 404],
    ("/api/v1/accounts/{external_id}/usage", "get"): [400, 404],
    ("/api/v1/accounts/{external_id}/grants", "post"): [400, 404, 409],
    ("/api/v1/accounts/{external_id}/checkout", "post"): [400, 404, 409, 502],
    ("/api/v1/accounts/{external_id}/billing-link", "post"): [404],
    ("/api/v1/check", "post"): [400, 404],
    ("/api/v1/consume", "post"): [400, 402, 403, 404, 409],
    ("/api/v1/consume/batch", "post"): [400],
    ("/api/v1/reservations", "post"): [400, 402, 403, 404, 409],
    ("/api/v1/reservations/{reservation_id}", "get"): [404],
    ("/api/v1/reservations/{reservation_id}/commit", "post"): [400, 402, 403, 404, 409],
    ("/api/v1/reservations/{reservation_id}/release", "post"): [404, 409],
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation lists the errors it can answer,
    in API.md's error body."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {401, 403, 429, *OPERATION_ERRORS.get((path, method), [])}
            if "requestBody" in operation or method in ("post", "put"):
                statuses |= {400, 413}
            for status in sorted(statuses):
                operation.setdefault("responses", {}).setdefault(
                    str(status),
                    {
                        "description": CODES[status],
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                )
    return result
