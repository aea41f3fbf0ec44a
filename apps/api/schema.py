from django.db import DatabaseError
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from apps.catalog.models import CreditPack, CreditType, Plan


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key created in the admin or with `manage.py create_api_key`.",
        }


# The error responses of each operation (docs/api-reference.md), beyond 401, 403
# permission_denied, 429 and 503, which every operation can give, and 400 malformed_json / 413
# for every request body.
CODES = {
    400: "validation_error, malformed_json",
    401: "unauthenticated",
    402: "insufficient_credits (details: credit_type, credits_required, available)",
    403: (
        "permission_denied, feature_not_enabled, quota_exceeded, account_suspended, "
        "destination_refused"
    ),
    404: "account_not_found, feature_not_found, contract_not_found, not_found",
    409: (
        "idempotency_key_reused, idempotency_keys_differ, reservation_not_held, "
        "subscription_managed_by_stripe, "
        "already_subscribed, checkout_already_open"
    ),
    413: "batch_too_large",
    429: "rate_limited (with Retry-After)",
    502: "payment_provider_error (Stripe could not be reached or refused; nothing charged)",
    503: (
        "service_unavailable (with Retry-After: the database could not be reached, or the "
        "connection was lost mid-request; retry with the same Idempotency-Key)"
    ),
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
    ("/api/v1/accounts/{external_id}/contract", "get"): [404],
    ("/api/v1/accounts/{external_id}/contract", "put"): [400, 404],
    ("/api/v1/accounts/{external_id}/contract", "delete"): [400, 404],
    ("/api/v1/check", "post"): [400, 404],
    ("/api/v1/consume", "post"): [400, 402, 403, 404, 409],
    ("/api/v1/consume/batch", "post"): [400],
    ("/api/v1/reservations", "post"): [400, 402, 403, 404, 409],
    ("/api/v1/reservations/{reservation_id}", "get"): [404],
    ("/api/v1/reservations/{reservation_id}/commit", "post"): [400, 402, 403, 404, 409],
    ("/api/v1/reservations/{reservation_id}/release", "post"): [404, 409],
    ("/api/v1/webhook-endpoints", "get"): [],
    ("/api/v1/webhook-endpoints", "post"): [400, 404],
    ("/api/v1/webhook-endpoints/{endpoint_id}", "get"): [404],
    ("/api/v1/webhook-endpoints/{endpoint_id}", "delete"): [404],
    ("/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "post"): [400, 404],
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
    in the API's error body."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {401, 403, 429, 503, *OPERATION_ERRORS.get((path, method), [])}
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


# OpenAPI links: the values one operation's answer gives the next (schemathesis's stateful
# phase follows them; Swagger UI shows them). By operation id and response status.
ACCOUNT_ID = {"external_id": "$request.path.external_id"}
RESERVATION_ID = {"reservation_id": "$response.body#/id"}
LINKS = {
    ("accounts_update", "200"): {
        "GetAccount": ("accounts_retrieve", ACCOUNT_ID),
        "GetBalance": ("accounts_balance_retrieve", ACCOUNT_ID),
        "GetEntitlements": ("accounts_entitlements_retrieve", ACCOUNT_ID),
        "GetLedger": ("accounts_ledger_retrieve", ACCOUNT_ID),
        "GetUsage": ("accounts_usage_retrieve", ACCOUNT_ID),
        "GrantCredits": ("accounts_grants_create", ACCOUNT_ID),
    },
    ("reservations_create", "201"): {
        "GetReservation": ("reservations_retrieve", RESERVATION_ID),
        "CommitReservation": ("reservations_commit_create", RESERVATION_ID),
        "ReleaseReservation": ("reservations_release_create", RESERVATION_ID),
    },
    ("reservations_commit_create", "200"): {
        "GetCommittedReservation": (
            "reservations_retrieve",
            {"reservation_id": "$response.body#/reservation/id"},
        ),
    },
}
LINKS[("accounts_update", "201")] = LINKS[("accounts_update", "200")]


def add_links(result, generator, request, public):
    """drf-spectacular postprocessing hook: the OpenAPI links of LINKS."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                links = LINKS.get((operation.get("operationId"), status))
                if links:
                    response["links"] = {
                        name: {"operationId": target, "parameters": dict(parameters)}
                        for name, (target, parameters) in links.items()
                    }
    return result


def add_catalog_codes(result, generator, request, public):
    """drf-spectacular postprocessing hook: the catalog codes a request may name, as the
    server takes them now (the schema is built per request, so it follows the catalog).
    A plan for an account: an active plan. A checkout: an active, public pack or plan that
    has its Stripe price, and exactly one of the two. A grant: a credit type, which must be
    named when there are several. A code outside these lists is a schema violation."""
    schemas = result.get("components", {}).get("schemas", {})
    on_sale = {"active": True, "public": True, "stripe_price_id__isnull": False}
    codes = {
        ("AccountInRequest", "plan"): Plan.objects.filter(current=True, active=True),
        ("CheckoutInRequest", "plan"): Plan.objects.filter(current=True, **on_sale),
        ("CheckoutInRequest", "credit_pack"): CreditPack.objects.filter(**on_sale),
    }
    codes[("GrantInRequest", "credit_type")] = CreditType.objects.all()
    try:
        codes = {key: list(q.order_by("code").values_list("code", flat=True))
                 for key, q in codes.items()}  # fmt: skip
    except DatabaseError:
        # No catalog to read (`check --deploy` or `manage.py api_reference` before `migrate`,
        # or no database): the fields are marked all the same, with the codes left open, so
        # the reference written from the schema does not depend on a database.
        codes = dict.fromkeys(codes)
    credit_types = codes[("GrantInRequest", "credit_type")] or []
    for (component, field), values in codes.items():
        schema = schemas.get(component, {}).get("properties", {}).get(field)
        if schema is None:
            continue
        if values is not None:
            # An empty enum is not valid JSON Schema; `not: {}` admits nothing, as the server
            # does.
            schema.update({"enum": values} if values else {"not": {}})
        schema["x-catalog-codes"] = True
    checkout = schemas.get("CheckoutInRequest")
    if checkout is not None:
        checkout["oneOf"] = [{"required": ["credit_pack"]}, {"required": ["plan"]}]
    grant = schemas.get("GrantInRequest")
    if grant is not None:
        grant["properties"]["credit_type"]["x-required-if-several"] = True
        if len(credit_types) > 1:
            grant["required"] = sorted({*grant.get("required", []), "credit_type"})
    return result


def add_scopes(result, generator, request, public):
    """drf-spectacular postprocessing hook: each operation's `x-scopes`, the API-key scopes
    its view requires (none: any valid key)."""
    for path, _regex, method, callback in generator.endpoints:
        operation = result.get("paths", {}).get(path, {}).get(method.lower())
        if operation is None:
            continue
        scopes = getattr(callback.cls, "required_scopes", ())
        if isinstance(scopes, dict):
            scopes = scopes.get(method.upper(), ())
        operation["x-scopes"] = list(scopes)
    return result


# --- docs/api-reference.md, generated from the schema ----------------------------------------

REFERENCE_INTRO = """\
# API reference

<!-- Generated from the OpenAPI schema: `.venv/bin/python manage.py api_reference >
docs/api-reference.md`. tests/test_docs.py fails when this file is out of date. -->

Every endpoint of the REST API v1 with its parameters, body fields, answers, error codes and
the API-key scopes it needs. [api.md](api.md) walks through the common flows with `curl`;
`/api/schema/` is the same contract as OpenAPI (with the catalog's current codes filled in)
and `/api/docs/` renders it. The test suite runs schemathesis with every check against it:
the server accepts what this reference allows, refuses what it forbids, and answers only what
it lists, but for the few rules no schema can state (the last list below).

## Authentication and scopes

Every request sends `Authorization: Bearer <key>`. A missing, unknown, revoked or expired
key answers 401 `unauthenticated`; a key without the operation's scope answers 403
`permission_denied`. Scopes: `usage:read` (balances, ledger, usage, reservations),
`usage:write` (check, consume, batch, reservations), `accounts:write` (accounts, contracts,
checkout, billing links), `grants:write` (service keys only: a key bound to an account cannot
have it; nor can it set a contract), `webhooks:write` (webhook endpoints: a key bound to an
account manages its own account's).
A key bound to an account sees only that account: any other id answers 404, never 403.
Keys are rate-limited per minute: over it, 429 `rate_limited` with `Retry-After`.

## Conventions

- Bodies are JSON objects (`Content-Type: application/json`); a body that is not valid JSON
  answers 400 `malformed_json`, one over 1 MiB 413. Fields not listed are ignored.
- Credit amounts and quantities: a decimal string such as `"12.5"` or a JSON number, greater
  than zero, at most 6 decimal places and 18 digits before the point; never rounded.
  Responses always give them as strings with 6 places (`"12.500000"`).
- Date-times are RFC 3339 with a zone (`2026-11-01T00:00:00Z`). A query parameter given empty
  (`?at=`) is a 400, not "not given".
- Strings are taken as sent: a number is not a string, spaces are not trimmed, and no string
  may contain a NUL character (`\\u0000`).
- `metadata` is a JSON object of at most 4 KiB (as compact JSON) and 256 keys; its numbers
  must fit a double.
- Rules a schema cannot state, each a 400 `validation_error`: a grant's `expires_at` must be
  in the future; a charge (quantity × the feature's price) must stay below 10^18 credits.
  A checkout names an item on sale and synced to Stripe: `/api/schema/` lists those codes,
  and while there are none no checkout body is valid. A contract names features and credit
  types that exist (features active; an on/off feature takes only `enabled`), gives a
  `currency` and an `overage.unit_price` exactly when it gives a `price` (a price in its
  currency's smallest unit), an overage `limit` only with `policy: allow`, ends after it
  starts and in the future, sets at least one term per feature listed, and has no field it
  does not know (a misspelt term would leave the
  plan's in force): [contracts.md](contracts.md).
"""


WEBHOOKS_INTRO = """\
The events CreditDesk POSTs to webhook endpoints (`/api/schema/` describes them as OpenAPI
3.1 `webhooks`). Each body is `{"id", "type", "created_at", "data"}`, signed in the
`CreditDesk-Signature` header; `id` (`evt_…`) is the same on every retry. Receiving,
verifying and retrying: [webhooks.md](webhooks.md)."""


def reference_markdown(schema):
    """docs/api-reference.md from the OpenAPI document `schema` (a dict)."""
    components = schema.get("components", {}).get("schemas", {})
    lines = [REFERENCE_INTRO, "## Errors", "",
             'Every error answers `{"error": {"code", "message", "details"}}`.', "",
             "| status | codes |", "|---|---|"]  # fmt: skip
    lines += [f"| {status} | {codes} |" for status, codes in sorted(CODES.items())]
    lines += ["", "## Operations", ""]
    referenced = set()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            lines += _operation_lines(method, path, operation, components, referenced)
    lines += _webhook_lines(schema.get("webhooks", {}), components, referenced)
    seen = set()
    while referenced - seen:  # the objects the operations name, and the objects they name
        for name in referenced - seen:
            seen.add(name)
            _field_table(components[name], referenced)
    lines += ["## Objects", ""]
    for name in sorted(referenced - {"Error"}):
        table = _field_table(components[name], referenced, answer=True)
        lines += [f"### {name}", "", *table, ""]
    return "\n".join(lines).rstrip() + "\n"


def _webhook_lines(webhooks, components, referenced):
    """The events sent to webhook endpoints: the `data` of each (the envelope is the same)."""
    lines = ["## Webhooks", "", WEBHOOKS_INTRO, ""] if webhooks else []
    for event_type, item in webhooks.items():
        operation = item["post"]
        envelope = components[_ref_name(operation["requestBody"]["content"]["application/json"])]
        summary = operation["summary"]
        lines += [f"### {event_type}", "", summary[0].upper() + summary[1:] + ".", "",
                  "`data`:", "", *_field_table(components[_ref_name(
                      envelope["properties"]["data"])], referenced, answer=True)]  # fmt: skip
    return lines


def _ref_name(schema):
    """The component a `$ref` names (of a schema, or of a media type's `schema`)."""
    return (schema.get("schema") or schema)["$ref"].rsplit("/", 1)[-1]


def _operation_lines(method, path, operation, components, referenced):
    scopes = ", ".join(f"`{scope}`" for scope in operation.get("x-scopes") or []) or "any key"
    lines = [f"### {method.upper()} {path}", "", operation.get("summary", "") + ".", "",
             f"Scopes: {scopes}.", ""]  # fmt: skip
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | notes |", "|---|---|---|---|---|"]
        for p in parameters:
            notes = p.get("description", "") or p["schema"].get("description", "")
            lines.append(f"| `{p['name']}` | {p['in']} | {_type(p['schema'], referenced)} | "
                         f"{'yes' if p.get('required') else 'no'} | {_cell(notes)} |")  # fmt: skip
        lines.append("")
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        name = _ref_name(body)
        lines += ["Body:", ""] + _field_table(components[name], referenced)
        if "oneOf" in components[name]:
            required = [" or ".join(f"`{f}`" for f in o["required"]) for o in
                        components[name]["oneOf"]]  # fmt: skip
            lines.append(f"Exactly one of {' and '.join(required)}.")
            lines.append("")
    lines += ["| status | answer |", "|---|---|"]
    for status, response in sorted(operation.get("responses", {}).items()):
        content = response.get("content", {}).get("application/json", {}).get("schema", {})
        answer = _type(content, referenced) if content else "no body"
        if status.startswith("2"):
            lines.append(f"| {status} | {answer} |")
        else:
            lines.append(f"| {status} | {_cell(response.get('description', ''))} |")
    links = [
        f"`{name}` → {link['operationId']}"
        for response in operation.get("responses", {}).values()
        for name, link in response.get("links", {}).items()
    ]
    if links:
        lines += ["", "Links (OpenAPI): " + ", ".join(dict.fromkeys(links)) + "."]
    return [*lines, ""]


def _field_table(component, referenced, *, answer=False):
    required = set(component.get("required", []))
    rows = ["| field | type | required | notes |", "|---|---|---|---|"]
    for field, schema in component.get("properties", {}).items():
        needed = "yes" if field in required else "no"
        if schema.get("x-required-if-several"):
            needed = "if several exist"  # the catalog decides: the reference stays the same
        rows.append(f"| `{field}` | {_type(schema, referenced, answer=answer)} | {needed} | "
                    f"{_cell(schema.get('description', ''))} |")  # fmt: skip
    return [*rows, ""]


def _type(schema, referenced, *, answer=False):
    """A schema in a few words: its type and every constraint (in an answer, not the integer
    limits of the database's columns, which differ between PostgreSQL and SQLite)."""
    limits = DATABASE_LIMITS if answer else set()
    if "$ref" in schema:
        name = _ref_name(schema)
        referenced.add(name)
        return f"[{name}](#{name.lower()})"
    if "oneOf" in schema:
        return " or ".join(_type(option, referenced, answer=answer) for option in schema["oneOf"])
    if "allOf" in schema:
        return " and ".join(_type(option, referenced, answer=answer) for option in schema["allOf"])
    kind, nullable = schema.get("type", "any"), schema.get("nullable", False)
    if isinstance(kind, list):  # OpenAPI 3.1: ["string", "null"]
        nullable = "null" in kind
        kind = next((name for name in kind if name != "null"), "null")
    words = []
    if kind == "array":
        words.append(f"array of {_type(schema.get('items', {}), referenced, answer=answer)}")
    elif schema.get("x-catalog-codes"):
        words.append("string: a code of the catalog (the schema lists the current ones)")
    elif "enum" in schema:
        words.append(" \\| ".join(f"`{value}`" for value in schema["enum"] if value is not None))
    elif kind == "integer":
        words.append(kind)  # int32/int64 and their limits are the database's, not the API's
    else:
        words.append(kind + (f" ({schema['format']})" if "format" in schema else ""))
    for key, text in (("pattern", "matching `{}`"), ("minLength", "length ≥ {}"),
                      ("maxLength", "length ≤ {}"), ("minItems", "≥ {} items"),
                      ("maxItems", "≤ {} items"), ("maxProperties", "≤ {} keys"),
                      ("multipleOf", "a multiple of {}"), ("default", "default `{}`")):  # fmt: skip
        if key in schema and not (key == "pattern" and schema.get("x-catalog-codes")):
            words.append(text.format(_cell(str(schema[key]))))
    for bound, exclusive, sign in (("minimum", "exclusiveMinimum", ">"), ("maximum",
                                   "exclusiveMaximum", "<")):  # fmt: skip
        if exclusive in schema:  # OpenAPI 3.1: the bound itself, excluded
            words.append(f"{sign} {schema[exclusive]}")
        elif bound in schema and schema[bound] not in limits:
            words.append(("≥ " if sign == ">" else "≤ ") + str(schema[bound]))
    if nullable:
        words.append("or null")
    if schema.get("readOnly"):
        words.append("read-only")
    return ", ".join(words)


# Integer columns' limits, which differ between PostgreSQL and SQLite: the reference leaves
# them out of answers so it reads the same on both.
DATABASE_LIMITS = {sign * 2**bits - (sign > 0) for sign in (1, -1) for bits in (15, 31, 63)}


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")
