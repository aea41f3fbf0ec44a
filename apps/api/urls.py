import re

from django.urls import path, re_path, register_converter

from . import views
from .views.base import EXTERNAL_ID_MAX, ExternalIdTooLong

EXTERNAL_ID_CHARS = r"[A-Za-z0-9_\-.:@]"


class ExternalIdConverter:
    regex = rf"{EXTERNAL_ID_CHARS}{{1,{EXTERNAL_ID_MAX}}}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(ExternalIdConverter, "external_id")

# An account's endpoints, by what follows accounts/<external_id>: (view, url name).
ACCOUNT_ENDPOINTS = {
    "": (views.AccountView, "account"),
    "/balance": (views.BalanceView, "balance"),
    "/entitlements": (views.EntitlementsView, "entitlements"),
    "/ledger": (views.LedgerView, "ledger"),
    "/usage": (views.UsageView, "usage"),
    "/grants": (views.GrantCreateView, "grants"),
    "/checkout": (views.CheckoutView, "checkout"),
    "/billing-link": (views.BillingLinkView, "billing-link"),
    "/contract": (views.ContractView, "contract"),
}
# The same paths with an id too long for any account: 400 validation_error, not 404.
TOO_LONG = (
    rf"^accounts/(?P<external_id>{EXTERNAL_ID_CHARS}{{{EXTERNAL_ID_MAX + 1},}})"
    rf"(?:{'|'.join(re.escape(tail) for tail in ACCOUNT_ENDPOINTS)})$"
)

app_name = "api"
urlpatterns = [
    *(
        path(f"accounts/<external_id:external_id>{tail}", view.as_view(), name=name)
        for tail, (view, name) in ACCOUNT_ENDPOINTS.items()
    ),
    re_path(TOO_LONG, ExternalIdTooLong.as_view()),
    path("check", views.CheckView.as_view(), name="check"),
    path("consume", views.ConsumeView.as_view(), name="consume"),
    path("consume/batch", views.ConsumeBatchView.as_view(), name="consume-batch"),
    path("reservations", views.ReservationCreateView.as_view(), name="reservations"),
    path("reservations/<int:reservation_id>", views.ReservationView.as_view(),
         name="reservation"),
    path("reservations/<int:reservation_id>/commit", views.ReservationCommitView.as_view(),
         name="reservation-commit"),
    path("reservations/<int:reservation_id>/release", views.ReservationReleaseView.as_view(),
         name="reservation-release"),
    path("plans", views.PlanListView.as_view(), name="plans"),
    path("credit-packs", views.CreditPackListView.as_view(), name="credit-packs"),
    path("features", views.FeatureListView.as_view(), name="features"),
    path("webhook-endpoints", views.WebhookEndpointListView.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<int:endpoint_id>", views.WebhookEndpointView.as_view(),
         name="webhook-endpoint"),  # fmt: skip
    path("webhook-endpoints/<int:endpoint_id>/rotate-secret",
         views.WebhookEndpointRotateView.as_view(), name="webhook-endpoint-rotate"),  # fmt: skip
]  # fmt: skip
