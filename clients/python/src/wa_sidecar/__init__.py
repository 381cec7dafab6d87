"""wa-sidecar for Python: the status API's client, webhook verification,
and (in wa_sidecar.django) a reusable Django app.

Standard library only; the Django app needs Django 3.2 or newer.
"""

from .client import WaSidecar, read_key
from .errors import (BadRequest, Booting, Conflict, Forbidden, HoldActive, NotFound, ServerError,
                     TooLarge, Unauthorized, Unavailable, Unreachable, WaSidecarError)
from .webhooks import SIGNATURE_HEADER, read_secret, sign, verify_webhook

__all__ = [
    "WaSidecar", "read_key", "read_secret", "verify_webhook", "sign", "SIGNATURE_HEADER",
    "WaSidecarError", "Unreachable", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
    "Conflict", "HoldActive", "TooLarge", "Unavailable", "Booting", "ServerError",
]
