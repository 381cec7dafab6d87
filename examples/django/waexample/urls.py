from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("status.json", views.status_json, name="status_json"),
    path("start", views.start, name="start"),
    path("send", views.send, name="send"),
    path("webhook", views.webhook, name="webhook"),
    path("webhook/events.json", views.events_json, name="events_json"),
]
