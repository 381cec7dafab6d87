"""The app's URLs: include them under a prefix of your choice,
path("wa-sidecar/", include("wa_sidecar.django.urls")), and give the sidecar
webhook.url = "https://your.site/wa-sidecar/webhook"."""

from django.urls import path

from . import views

urlpatterns = [
    path("webhook", views.webhook, name="wa_sidecar_webhook"),
]
