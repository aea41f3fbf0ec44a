"""What every API view shares: the account a key may see, and replay headers."""

import re

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.views import APIView

from apps.accounts.models import Account
from apps.accounts.selectors import account_by_external_id
from apps.core.errors import AccountNotFound, IdempotencyKeysDiffer, InvalidInput

EXTERNAL_ID_MAX = Account._meta.get_field("external_id").max_length

REPLAYED = {"Idempotent-Replayed": "true"}


class ApiView(APIView):
    """`required_scopes` is a tuple, or a dict by HTTP method."""

    required_scopes = ()

    def account_for(self, external_id):
        """The account this key may act on. A key bound to an account sees only that one;
        any other id answers account_not_found (404, never 403, so ids cannot be probed)."""
        key = self.request.auth
        if key.account_id is not None:
            if key.account.external_id != external_id:
                raise AccountNotFound()
            return key.account
        account = account_by_external_id(external_id=external_id)
        if account is None:
            raise AccountNotFound()
        return account

    def accounts_for(self, external_ids):
        """`{external_id: account}` for those of `external_ids` this key may act on."""
        key = self.request.auth
        if key.account_id is not None:
            own = key.account
            return {own.external_id: own} if own.external_id in external_ids else {}
        found = Account.objects.filter(external_id__in=external_ids)
        return {account.external_id: account for account in found}

    def service_key_only(self, what):
        """Refuse a key bound to an account (it may not set its own plan or prices)."""
        if self.request.auth.account_id is not None:
            raise exceptions.PermissionDenied(
                f"Only a service key may {what}; a key bound to an account may not."
            )

    def may_see(self, account_id):
        key = self.request.auth
        return key.account_id is None or key.account_id == account_id

    def valid(self, serializer_class, data):
        header = None
        if IDEMPOTENCY_FIELD in serializer_class._declared_fields:
            header = idempotency_header(self.request.headers.get(IDEMPOTENCY_HEADER))
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        if header is None:
            return serializer.validated_data
        body = serializer.validated_data.get(IDEMPOTENCY_FIELD)
        if body is not None and body != header:
            # 409, not 400: each key is valid alone; together they name two requests.
            raise IdempotencyKeysDiffer()
        return {**serializer.validated_data, IDEMPOTENCY_FIELD: header}


# Stripe's convention, which many clients send on their own: the header says what the body's
# `idempotency_key` says, with the same rules (one of the two, or both the same).
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_FIELD = "idempotency_key"
# At most 255 characters, as the body field; printable ASCII, which any HTTP stack carries
# unchanged (spaces inside only: a header's outer spaces are not part of its value).
IDEMPOTENCY_HEADER_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$"
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    description="The same as the body's `idempotency_key` (send one, or both the same).",
    pattern=IDEMPOTENCY_HEADER_PATTERN,
)


def idempotency_header(value):
    """The `Idempotency-Key` header's key (None without one); one no body key could be is
    refused as the body field would be (400)."""
    if value is not None and not re.fullmatch(IDEMPOTENCY_HEADER_PATTERN.strip("^$"), value):
        raise InvalidInput(
            "The Idempotency-Key header is 1 to 255 printable ASCII characters.",
            details={IDEMPOTENCY_FIELD: ["1 to 255 printable ASCII characters"]},
        )
    return value


@extend_schema(exclude=True)
class ExternalIdTooLong(ApiView):
    """An account path whose id is longer than any account's (urls.py routes it here): once the
    key is checked, every method answers 400 validation_error, not 404 for a path that exists."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise InvalidInput(
            f"external_id is {len(kwargs['external_id'])} characters; at most {EXTERNAL_ID_MAX}.",
            details={"external_id": [f"at most {EXTERNAL_ID_MAX} characters"]},
        )
