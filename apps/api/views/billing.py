from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.billing.billing_page import billing_link
from apps.billing.checkout import start_checkout
from apps.catalog.models import CreditPack, Plan
from apps.catalog.selectors import on_sale
from apps.core.errors import InvalidInput

from .. import serializers
from .base import ApiView


class CheckoutView(ApiView):
    required_scopes = ("accounts:write",)

    @extend_schema(
        request=serializers.CheckoutIn,
        responses={201: serializers.CheckoutOut},
        summary="Start a Stripe Checkout for a credit pack or a plan",
    )
    def post(self, request, external_id):
        account = self.account_for(external_id)
        data = self.valid(serializers.CheckoutIn, request.data)
        checkout = start_checkout(
            account=account,
            credit_pack=_on_sale(CreditPack, "credit_pack", data.get("credit_pack")),
            plan=_on_sale(Plan, "plan", data.get("plan")),
            success_url=data["success_url"],
            cancel_url=data["cancel_url"],
        )
        return Response(serializers.CheckoutOut(checkout).data, status=status.HTTP_201_CREATED)


def _on_sale(model, field, code):
    if code is None:
        return None
    found = on_sale(model=model, code=code)
    if found is None:
        raise InvalidInput(f"No {field.replace('_', ' ')} {code!r} is on sale.",
                           details={field: ["unknown or not on sale"]})  # fmt: skip
    return found


class BillingLinkView(ApiView):
    required_scopes = ("accounts:write",)

    @extend_schema(
        request=None,
        responses={201: serializers.BillingLinkOut},
        summary="A signed, expiring link to the account's hosted billing page",
    )
    def post(self, request, external_id):
        link = billing_link(account=self.account_for(external_id))
        return Response(serializers.BillingLinkOut(link).data, status=status.HTTP_201_CREATED)
