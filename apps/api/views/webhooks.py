"""Webhook endpoints over the API (docs/webhooks.md): an app registers where CreditDesk sends
its events, for one account or for every account, and rotates the signing secret. A key
bound to an account manages that account's endpoints only; the admin keeps editing them all."""

from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.core.errors import NotFound
from apps.webhooks.models import WebhookEndpoint
from apps.webhooks.services import create_endpoint, delete_endpoint, rotate_secret

from .. import serializers
from .base import ApiView

SCOPES = ("webhooks:write",)


class WebhookEndpointListView(ApiView):
    required_scopes = SCOPES

    @extend_schema(
        operation_id="webhook_endpoints_list",
        responses=serializers.WebhookEndpointListOut,
        summary="The webhook endpoints this key sees",
    )
    def get(self, request):
        return Response(serializers.WebhookEndpointListOut({"results": self.endpoints()}).data)

    @extend_schema(
        request=serializers.WebhookEndpointIn,
        responses={201: serializers.WebhookEndpointSecretOut},
        summary="Register a webhook endpoint; its secret is in this answer only",
    )
    def post(self, request):
        data = self.valid(serializers.WebhookEndpointIn, request.data)
        external_id = data.get("account")
        if external_id is None:
            self.service_key_only("register an endpoint for every account")
        account = self.account_for(external_id) if external_id is not None else None
        endpoint = create_endpoint(
            account=account, url=data["url"], event_types=data["event_types"],
            description=data["description"],
        )  # fmt: skip
        body = serializers.WebhookEndpointSecretOut(endpoint).data
        return Response(body, status=status.HTTP_201_CREATED)

    def endpoints(self):
        found = WebhookEndpoint.objects.select_related("account").order_by("pk")
        key = self.request.auth
        return found.filter(account_id=key.account_id) if key.account_id else found


class WebhookEndpointMixin:
    def endpoint(self, endpoint_id):
        """The endpoint, if this key may see it (a bound key: its account's); else 404."""
        endpoint = WebhookEndpoint.objects.select_related("account").filter(pk=endpoint_id).first()
        if endpoint is None or not self.may_see(endpoint.account_id):
            raise NotFound("No such webhook endpoint.")
        return endpoint


class WebhookEndpointView(WebhookEndpointMixin, ApiView):
    required_scopes = SCOPES

    @extend_schema(responses=serializers.WebhookEndpointOut, summary="A webhook endpoint")
    def get(self, request, endpoint_id):
        return Response(serializers.WebhookEndpointOut(self.endpoint(endpoint_id)).data)

    @extend_schema(responses={204: None}, summary="Remove a webhook endpoint")
    def delete(self, request, endpoint_id):
        delete_endpoint(endpoint=self.endpoint(endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateView(WebhookEndpointMixin, ApiView):
    required_scopes = SCOPES

    @extend_schema(
        request=serializers.RotateSecretIn,
        responses=serializers.WebhookEndpointSecretOut,
        summary="A new signing secret; the old one signs too for the overlap",
    )
    def post(self, request, endpoint_id):
        data = self.valid(serializers.RotateSecretIn, request.data)
        endpoint = rotate_secret(
            endpoint=self.endpoint(endpoint_id), overlap=timedelta(hours=data["overlap_hours"])
        )
        return Response(serializers.WebhookEndpointSecretOut(endpoint).data)
