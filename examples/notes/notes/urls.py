from django.urls import path

from . import views

urlpatterns = [
    path("summarize", views.summarize),
    path("render", views.render),
    path("credits", views.credits),
    path("hooks/creditdesk", views.creditdesk_hook),
]
