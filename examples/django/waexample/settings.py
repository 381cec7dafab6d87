"""Settings of the example, from the environment.

WA_SIDECAR_API                  the status API: "http://127.0.0.1:8089" or "unix:/path/api.sock"
WA_SIDECAR_API_KEY              the key sent as x-api-key (empty: none, the sidecar's dev mode)
WA_SIDECAR_WEBHOOK_SECRET_FILE  the sidecar's webhook.secret_file (empty: webhooks refused)
WA_SIDECAR_ORG                  the organization the page shows
"""
import os

WA_SIDECAR_API = os.environ.get("WA_SIDECAR_API", "http://127.0.0.1:8089")
WA_SIDECAR_API_KEY = os.environ.get("WA_SIDECAR_API_KEY", "")
WA_SIDECAR_WEBHOOK_SECRET_FILE = os.environ.get("WA_SIDECAR_WEBHOOK_SECRET_FILE", "")
WA_SIDECAR_ORG = os.environ.get("WA_SIDECAR_ORG", "demo")

# A development setup: set DJANGO_SECRET_KEY and DEBUG=0 anywhere else.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["waexample"]  # for its templates/
MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
ROOT_URLCONF = "waexample.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {}  # webhook events are kept in memory (see views.py)
USE_TZ = True
