"""A client for wa-sidecar's status API, and the webhook signature check.

Standard library only: copy this file into your project.

    from wa_sidecar_client import WaSidecar, WaSidecarError, verify_webhook

    wa = WaSidecar("unix:/run/wa-sidecar/api.sock", api_key=KEY)
    wa.start("2")
    wa.status("2")["status"]          # "qr_required", later "connected"
    wa.send("2", "573001234567", "Your order #1042 has shipped",
            idempotency_key="order-1042-shipped")

Every method returns the API's JSON answer (a dict, or a list for list())
and raises WaSidecarError for anything else.
"""

import base64
import hashlib
import hmac
import http.client
import json
import socket
import time
from urllib.parse import quote, urlsplit

SIGNATURE_HEADER = "X-Wa-Sidecar-Signature"


class WaSidecarError(Exception):
    """The API answered an error, or could not be reached.

    status is the HTTP status (None when there was no answer), code the
    API's machine word ("cooldown", "unknown_org", "bad_body", ...) or
    "unreachable", message the API's sentence, and retry_after the seconds
    of a Retry-After header (a 409 cooldown, a 503) or None.
    """

    def __init__(self, status, code, message, retry_after=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __str__(self):
        return f"{self.message} ({self.status or 'no answer'}, {self.code})"


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket; "localhost" only fills the Host header."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class WaSidecar:
    """The status API at base: "http://127.0.0.1:8089" or "unix:/path/api.sock".

    http.client rather than urllib: urllib would send the request (and the
    key) through an http_proxy from the environment, and cannot speak to a
    unix socket.
    """

    def __init__(self, base, api_key=None, timeout=10):
        self.base = base
        self.api_key = api_key
        self.timeout = timeout
        if base.startswith("unix:"):
            self._unix_path = base[len("unix:"):]
        else:
            url = urlsplit(base)
            if url.scheme != "http" or not url.hostname:
                raise ValueError(f"wa-sidecar API address {base!r}: want http://host:port or unix:/path")
            self._unix_path = None
            self._host, self._port = url.hostname, url.port

    def status(self, org):
        return self._call("GET", _org(org))

    def list(self):
        return self._call("GET", "/v1/orgs")

    def start(self, org, force=False):
        """Register if new and start or link (202; 200 if already connected)."""
        return self._call("POST", _org(org, "start"), {"force": True} if force else None)

    def stop(self, org):
        return self._call("POST", _org(org, "stop"))

    def clear(self, org):
        """Archive the session and relink with a new QR (the manual Bad MAC cure)."""
        return self._call("POST", _org(org, "clear"))

    def logout(self, org):
        return self._call("POST", _org(org, "logout"))

    def pair_phone(self, org, phone):
        """The code ("ABCD-EFGH") to type on the phone instead of scanning."""
        return self._call("POST", _org(org, "pair-phone"), {"phone": phone})["code"]

    def send(self, org, to, text, idempotency_key=None):
        """Queue a text; the answer is the message, already committed.

        Pass your own id (order, notification) as idempotency_key: a retry
        of the call then answers the first message instead of sending twice.
        """
        body = {"to": to, "text": text}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return self._call("POST", _org(org, "messages"), body)

    def upload_media(self, org, data, mime, filename=""):
        """Store a file (bytes) for media messages; the answer's media_id
        names it. The same bytes again give the same id."""
        body = {"data": base64.b64encode(data).decode("ascii"), "mime": mime}
        if filename:
            body["filename"] = filename
        return self._call("POST", _org(org, "media"), body)

    def send_media(self, org, to, media_id, caption="", idempotency_key=None):
        """Queue an uploaded file (image, video, voice note or document,
        by its MIME type) with an optional caption."""
        body = {"to": to, "media": media_id}
        if caption:
            body["text"] = caption
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return self._call("POST", _org(org, "messages"), body)

    def message(self, org, message_id):
        return self._call("GET", _org(org, "messages", message_id))

    def broadcast(self, org, recipients, text, idempotency_key=None):
        body = {"recipients": list(recipients), "text": text}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return self._call("POST", _org(org, "broadcasts"), body)

    def broadcast_status(self, org, broadcast_id):
        return self._call("GET", _org(org, "broadcasts", broadcast_id))

    def _connection(self):
        if self._unix_path is not None:
            return _UnixConnection(self._unix_path, self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _call(self, method, path, body=None):
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as err:
            raise WaSidecarError(None, "unreachable", f"wa-sidecar API at {self.base}: {err}") from err
        finally:
            conn.close()
        if 200 <= resp.status < 300:
            return json.loads(raw)
        try:
            answer = json.loads(raw)
            message, code = answer["error"], answer["code"]
        except (ValueError, TypeError, KeyError):
            message, code = raw.decode(errors="replace").strip() or resp.reason, "http_error"
        retry_after = resp.getheader("Retry-After")
        raise WaSidecarError(resp.status, code, message,
                             int(retry_after) if retry_after and retry_after.isdigit() else None)


def _org(org, *rest):
    return "/".join(["/v1/orgs", *(quote(str(p), safe="") for p in (org, *rest))])


def verify_webhook(secret, body, signature_header, now=None, tolerance=300):
    """Whether a webhook request was signed by wa-sidecar, recently.

    secret is the content of the sidecar's webhook.secret_file (bytes or
    str). The sidecar trims white space around the file's content (the
    newline echo or an editor leaves), and so does this check: a secret
    read with open(path, "rb").read() works as it is. Keep the secret
    printable ASCII (openssl rand -hex 32): the sidecar also trims Unicode
    spaces, this check only ASCII ones. body is the raw request body
    (Django: request.body, before any parsing),
    signature_header the X-Wa-Sidecar-Signature value:
    "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".

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
