from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("<str:token>/", views.billing_page, name="page"),
    path("<str:token>/buy", views.buy, name="buy"),
    path("<str:token>/checkout-status", views.checkout_status, name="checkout-status"),
]
