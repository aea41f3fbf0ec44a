from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.catalog.models import CreditType
from apps.core.errors import InvalidInput
from apps.wallets.services import grant_credits

from .. import serializers
from .base import REPLAYED, ApiView


class GrantCreateView(ApiView):
    required_scopes = ("grants:write",)

    @extend_schema(
        request=serializers.GrantIn,
        responses={201: serializers.GrantOut},
        summary="Grant credits (service keys); idempotent by key",
        # The header is not declared as a parameter here: the stateful fuzzer reaches this
        # operation by a link and would then take the key's Authorization for a generated one.
        description="An `Idempotency-Key` header is taken as the body's `idempotency_key`, as "
        "on consume (both may be sent when they agree; 409 idempotency_keys_differ if not).",
    )
    def post(self, request, external_id):
        account = self.account_for(external_id)
        data = self.valid(serializers.GrantIn, request.data)
        grant, created = grant_credits(
            account=account,
            credit_type=_credit_type(data.get("credit_type")),
            amount=data["amount"],
            source=data["source"],
            expires_at=data.get("expires_at"),
            priority=data.get("priority"),
            reference=data.get("idempotency_key"),
            reason=data["reason"],
            api_key=request.auth,
        )
        return Response(
            serializers.GrantOut(grant).data,
            status=status.HTTP_201_CREATED,
            headers=None if created else REPLAYED,
        )


def _credit_type(code):
    """The named credit type, or the only one there is."""
    if code is not None:
        found = CreditType.objects.filter(code=code).first()
        if found is None:
            raise InvalidInput(f"No credit type {code!r}.", details={"credit_type": ["unknown"]})
        return found
    only = list(CreditType.objects.all()[:2])
    if len(only) != 1:
        raise InvalidInput(
            "Name the credit type: there are several.", details={"credit_type": ["required"]}
        )
    return only[0]
