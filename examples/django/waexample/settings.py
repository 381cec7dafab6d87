"""Settings of the example, from the environment.

WA_SIDECAR_API                  the status API: "http://127.0.0.1:8089" or "unix:/path/api.sock"
WA_SIDECAR_API_KEY              the key sent as x-api-key (empty: none, the sidecar's dev mode), or
WA_SIDECAR_API_KEY_FILE         a file holding it (/etc/wa-sidecar/api_key)
WA_SIDECAR_WEBHOOK_SECRET_FILE  the sidecar's webhook.secret_file (empty: webhooks refused)
WA_SIDECAR_ORG                  the organization the page shows
WA_SIDECAR_OWNER_EMAIL          who is emailed when that organization must scan again
                                (empty: nobody); the email is printed on the console
WA_SIDECAR_RELINK_URL           where the email says the QR is (default: this example's
                                page under `runserver 127.0.0.1:8000`)
"""
import os
import sys
from pathlib import Path

# The package from this repository (clients/python), without installing
# it: a real project runs `pip install ./clients/python` instead.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "clients" / "python" / "src"))

WA_SIDECAR_ORG = os.environ.get("WA_SIDECAR_ORG", "demo")
_owner = os.environ.get("WA_SIDECAR_OWNER_EMAIL", "")
WA_SIDECAR = {
    "API": os.environ.get("WA_SIDECAR_API", "http://127.0.0.1:8089"),
    "API_KEY": os.environ.get("WA_SIDECAR_API_KEY", ""),
    "API_KEY_FILE": os.environ.get("WA_SIDECAR_API_KEY_FILE", ""),
    "WEBHOOK_SECRET_FILE": os.environ.get("WA_SIDECAR_WEBHOOK_SECRET_FILE", ""),
    "OWNER_EMAIL": {WA_SIDECAR_ORG: _owner} if _owner else None,
    "RELINK_URL": os.environ.get("WA_SIDECAR_RELINK_URL", "http://127.0.0.1:8000/"),
}
# The example prints emails instead of sending them; a real project sets
# its EMAIL_BACKEND (SMTP) and DEFAULT_FROM_EMAIL.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# A development setup: set DJANGO_SECRET_KEY and DEBUG=0 anywhere else.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["waexample", "wa_sidecar.django"]
MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
ROOT_URLCONF = "waexample.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {}  # webhook events are kept in memory (see views.py)
USE_TZ = True
