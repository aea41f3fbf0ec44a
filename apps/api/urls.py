from django.urls import path

from . import views

app_name = "api"
urlpatterns = [
    path("plans", views.PlanListView.as_view(), name="plans"),
    path("credit-packs", views.CreditPackListView.as_view(), name="credit-packs"),
    path("features", views.FeatureListView.as_view(), name="features"),
]
