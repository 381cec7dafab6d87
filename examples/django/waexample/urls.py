from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("status.json", views.status_json, name="status_json"),
    path("outbox.json", views.outbox_json, name="outbox_json"),
    path("start", views.start, name="start"),
    path("send", views.send, name="send"),
    path("webhook/events.json", views.events_json, name="events_json"),
    # The package's webhook view, at /webhook: it verifies the signature
    # and sends the signals that views.py records.
    path("", include("wa_sidecar.django.urls")),
]
