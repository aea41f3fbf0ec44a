from django.urls import path, register_converter

from . import views


class ExternalIdConverter:
    regex = r"[A-Za-z0-9_\-.:@]{1,255}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(ExternalIdConverter, "external_id")

app_name = "api"
urlpatterns = [
    path("accounts/<external_id:external_id>", views.AccountView.as_view(), name="account"),
    path("accounts/<external_id:external_id>/balance", views.BalanceView.as_view(),
         name="balance"),
    path("accounts/<external_id:external_id>/entitlements", views.EntitlementsView.as_view(),
         name="entitlements"),
    path("accounts/<external_id:external_id>/ledger", views.LedgerView.as_view(), name="ledger"),
    path("accounts/<external_id:external_id>/usage", views.UsageView.as_view(), name="usage"),
    path("accounts/<external_id:external_id>/grants", views.GrantCreateView.as_view(),
         name="grants"),
    path("accounts/<external_id:external_id>/checkout", views.CheckoutView.as_view(),
         name="checkout"),
    path("accounts/<external_id:external_id>/billing-link", views.BillingLinkView.as_view(),
         name="billing-link"),
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
]  # fmt: skip
