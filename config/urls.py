from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.billing.admin import djstripe_custom_action
from apps.core.views import healthz, metrics, readyz

admin.site.site_header = "CreditDesk"
admin.site.site_title = "CreditDesk admin"
admin.site.index_title = "Back office"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path(
        "admin/djstripe/<str:model>/action/<str:action_name>/<str:model_name>/",
        djstripe_custom_action,
    ),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),  # 404 unless enabled, and for the allowed only
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("apps.api.urls")),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("billing/", include("apps.billing.urls")),
]

handler404 = "apps.api.errors.page_not_found"
handler500 = "apps.api.errors.server_error"
