"""A reusable Django app for wa-sidecar: settings, a webhook view that
verifies each event and dispatches it as a Django signal, the
wa_sidecar_status management command, and an optional email to an
organization's owner when its WhatsApp session must be linked again.

    INSTALLED_APPS = [..., "wa_sidecar.django"]
    WA_SIDECAR = {
        "API": "unix:/run/wa-sidecar/api.sock",
        "API_KEY_FILE": "/etc/wa-sidecar/api_key",
        "WEBHOOK_SECRET_FILE": "/etc/myproject/wa_webhook_secret",
        "OWNER_EMAIL": "myproject.whatsapp.owner_email",   # org id -> address
    }
    urlpatterns = [..., path("wa-sidecar/", include("wa_sidecar.django.urls"))]

    from wa_sidecar.django import client
    client().send("2", "+57 300 123 4567", "Your order #1042 has shipped")

See conf.py for every setting, signals.py for the signals.
"""

from .conf import client, webhook_secret

__all__ = ["client", "webhook_secret"]
