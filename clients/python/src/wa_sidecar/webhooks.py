"""Webhook signature verification, and the names of the events.

The sidecar signs each POST with X-Wa-Sidecar-Signature:
"t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>".
"""

import hashlib
import hmac
import time
from typing import Optional, Union

SIGNATURE_HEADER = "X-Wa-Sidecar-Signature"
EVENT_HEADER = "X-Wa-Sidecar-Event"
ID_HEADER = "X-Wa-Sidecar-Id"

# How far a signature's timestamp may be from now, as the sidecar's
# webhook.Tolerance: older is a replay.
TOLERANCE = 300

# The event kinds (the payload's "event"), as README "Webhooks" lists them.
STATUS_CHANGED = "status_changed"
SESSION_CLEARED = "session_cleared"
MESSAGE_STATUS = "message_status"
BROADCAST_PROGRESS = "broadcast_progress"
BROADCAST_DONE = "broadcast_done"
SEND_RESTRICTED = "send_restricted"
MESSAGE_RECEIVED = "message_received"
EVENTS = (STATUS_CHANGED, SESSION_CLEARED, MESSAGE_STATUS, BROADCAST_PROGRESS,
          BROADCAST_DONE, SEND_RESTRICTED, MESSAGE_RECEIVED)


def read_secret(path: str) -> bytes:
    """The webhook secret in a file, trimmed as the sidecar trims
    webhook.secret_file."""
    with open(path, "rb") as f:
        return f.read().strip()


def verify_webhook(secret: Union[bytes, str], body: bytes, signature_header: Optional[str],
                   now: Optional[float] = None, tolerance: float = TOLERANCE) -> bool:
    """Whether a webhook request was signed by wa-sidecar, recently.

    secret is the content of the sidecar's webhook.secret_file (bytes or
    str). The sidecar trims white space around the file's content (the
    newline echo or an editor leaves), and so does this check: a secret
    read with open(path, "rb").read() works as it is. Keep the secret
    printable ASCII (openssl rand -hex 32): the sidecar also trims Unicode
    spaces, this check only ASCII ones. body is the raw request body
    (Django: request.body, before any parsing), signature_header the
    X-Wa-Sidecar-Signature value.

    The timestamp is signed too, so a recorded request cannot be replayed
    once it is more than tolerance seconds away from now, in either
    direction. Several v1 entries are allowed (one per secret while a
    secret is being rotated); one match is enough.

    The body's "timestamp" is when the sidecar recorded the event (UTC,
    RFC 3339 with milliseconds: it sorts as a string too); a time WhatsApp
    reported, such as a receipt's, is in data["wa_timestamp"].
    """
    if isinstance(secret, str):
        secret = secret.encode()
    secret = secret.strip()  # as the sidecar reads webhook.secret_file
    timestamp, signatures = "", []
    for part in (signature_header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if not (timestamp.isascii() and timestamp.isdigit()) or not signatures:
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    # compare_digest takes the same time wherever the first difference is;
    # bytes, because with str it raises on non-ASCII input.
    return any(hmac.compare_digest(expected, s.encode()) for s in signatures)


def sign(secret: Union[bytes, str], body: bytes, t: int) -> str:
    """The X-Wa-Sidecar-Signature value the sidecar sends for body at unix
    time t: for your receiver's tests."""
    if isinstance(secret, str):
        secret = secret.encode()
    mac = hmac.new(secret.strip(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"
