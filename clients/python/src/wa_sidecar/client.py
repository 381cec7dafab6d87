"""The client of wa-sidecar's status API."""

import base64
import http.client
import json
import socket
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, cast
from urllib.parse import quote, urlencode, urlsplit

from .errors import Booting, Unreachable, WaSidecarError, error_for

JSON = Dict[str, Any]

# How long, in all, calls wait for a booting sidecar (503 booting) by
# default: it loads its state in a second or two; a minute covers a slow
# disk without hiding a sidecar that never comes up.
DEFAULT_BOOT_WAIT = 30.0


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket; "localhost" only fills the Host header."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def read_key(path: str) -> str:
    """An API key from a file, such as /etc/wa-sidecar/api_key, without
    the white space around it (a trailing newline would be an invalid
    header value)."""
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


class WaSidecar:
    """The status API at base: "http://127.0.0.1:8089" or "unix:/path/api.sock".

        wa = WaSidecar("unix:/run/wa-sidecar/api.sock", api_key_file="/etc/wa-sidecar/api_key")
        wa.start("2")
        wa.status("2")["status"]          # "qr_required", later "connected"
        wa.send("2", "+57 300 123 4567", "Your order #1042 has shipped",
                idempotency_key="order-1042-shipped")

    Every method returns the API's JSON answer and raises a WaSidecarError
    subclass (errors.py) for anything else. A 503 booting (the sidecar is
    loading its state) is retried after its Retry-After, for at most
    boot_wait seconds in all, then raised as Booting.

    http.client rather than urllib: urllib would send the request (and the
    key) through an http_proxy from the environment, and cannot speak to a
    unix socket.
    """

    def __init__(self, base: str, api_key: Optional[str] = None, *, api_key_file: Optional[str] = None,
                 timeout: float = 10, boot_wait: float = DEFAULT_BOOT_WAIT,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if api_key is not None and api_key_file is not None:
            raise ValueError("wa-sidecar: give api_key or api_key_file, not both")
        if api_key_file is not None:
            api_key = read_key(api_key_file)
        # The key as read from a file keeps its newline; the sidecar trims
        # its own copy the same way.
        self.api_key = (api_key or "").strip() or None
        self.base = base
        self.timeout = timeout
        self.boot_wait = boot_wait
        self._sleep = sleep
        self._monotonic = monotonic
        self._unix_path: Optional[str] = None
        self._host, self._port = "", None
        if base.startswith("unix:"):
            self._unix_path = base[len("unix:"):]
            if not self._unix_path:
                raise ValueError(f"wa-sidecar API address {base!r}: the socket path is empty")
        else:
            url = urlsplit(base)
            if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
                raise ValueError(f"wa-sidecar API address {base!r}: want http://host:port or unix:/path")
            self._host, self._port = url.hostname, url.port

    # Health.

    def healthz(self) -> JSON:
        return self._obj("GET", "/healthz")

    def readyz(self) -> JSON:
        return self._obj("GET", "/readyz")

    # Organizations.

    def orgs(self) -> List[JSON]:
        """Every organization's status object, sorted by id."""
        return cast(List[JSON], self._call("GET", "/v1/orgs"))

    list = orgs  # the name the example's copy of this client used

    def status(self, org: str) -> JSON:
        return self._obj("GET", _path("orgs", org))

    def start(self, org: str, force: bool = False, proxy: Optional[str] = None) -> JSON:
        """Register if new and start or link (202; 200 if already connected).
        force replaces a live worker; proxy ("" for direct) applies from the
        next start."""
        body: JSON = {}
        if force:
            body["force"] = True
        if proxy is not None:
            body["proxy"] = proxy
        return self._obj("POST", _path("orgs", org, "start"), body or None)

    def stop(self, org: str) -> JSON:
        return self._obj("POST", _path("orgs", org, "stop"))

    def logout(self, org: str) -> JSON:
        """Unlink the device on WhatsApp (a cooldown follows)."""
        return self._obj("POST", _path("orgs", org, "logout"))

    def clear(self, org: str) -> JSON:
        """Archive the session and relink with a new QR (the manual Bad MAC cure)."""
        return self._obj("POST", _path("orgs", org, "clear"))

    def delete(self, org: str) -> JSON:
        """Stop and forget (the auth directory is archived); its queued messages fail."""
        return self._obj("DELETE", _path("orgs", org))

    def pair_phone(self, org: str, phone: str) -> str:
        """The code ("ABCD-EFGH") to type on the phone instead of scanning."""
        return str(self._obj("POST", _path("orgs", org, "pair-phone"), {"phone": phone})["code"])

    # Messages.

    def send(self, org: str, to: str, text: str = "", idempotency_key: Optional[str] = None,
             media_id: Optional[str] = None) -> JSON:
        """Queue a text, or an uploaded file with text as its caption; the
        answer is the message, already committed.

        Pass your own id (order, notification) as idempotency_key: a retry
        of the call then answers the first message instead of sending twice.
        """
        body: JSON = {"to": to}
        if text:
            body["text"] = text
        if media_id:
            body["media"] = media_id
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return self._obj("POST", _path("orgs", org, "messages"), body)

    def send_media(self, org: str, to: str, media_id: str, caption: str = "",
                   idempotency_key: Optional[str] = None) -> JSON:
        """Queue an uploaded file (image, video, voice note or document, by
        its MIME type) with an optional caption."""
        return self.send(org, to, caption, idempotency_key=idempotency_key, media_id=media_id)

    def message(self, org: str, message_id: str) -> JSON:
        return self._obj("GET", _path("orgs", org, "messages", message_id))

    def messages(self, org: str, status: Optional[str] = None, limit: Optional[int] = None,
                 after: Optional[str] = None) -> JSON:
        """A page of messages, newest first: {"messages": [...], "next"};
        pass "next" as after for the following page."""
        query = {k: v for k, v in (("status", status), ("limit", limit), ("after", after)) if v}
        return self._obj("GET", _path("orgs", org, "messages"), query=query)

    def upload_media(self, org: str, data: bytes, mime: str, filename: str = "") -> JSON:
        """Store a file (bytes) for media messages; the answer's media_id
        names it. The same bytes again give the same id."""
        body: JSON = {"data": base64.b64encode(data).decode("ascii"), "mime": mime}
        if filename:
            body["filename"] = filename
        return self._obj("POST", _path("orgs", org, "media"), body)

    # Broadcasts.

    def broadcast(self, org: str, recipients: Iterable[str], text: str = "",
                  idempotency_key: Optional[str] = None, media_id: Optional[str] = None) -> JSON:
        """Queue one message per recipient (duplicates removed) as a job."""
        body: JSON = {"recipients": [*recipients]}
        if text:
            body["text"] = text
        if media_id:
            body["media"] = media_id
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return self._obj("POST", _path("orgs", org, "broadcasts"), body)

    def broadcasts(self, org: str, limit: Optional[int] = None) -> JSON:
        """The jobs, newest first: {"broadcasts": [...]}."""
        return self._obj("GET", _path("orgs", org, "broadcasts"), query={"limit": limit} if limit else None)

    def broadcast_status(self, org: str, broadcast_id: str) -> JSON:
        return self._obj("GET", _path("orgs", org, "broadcasts", broadcast_id))

    def cancel_broadcast(self, org: str, broadcast_id: str) -> JSON:
        """Cancel a job: its unsent messages fail with reason cancelled."""
        return self._obj("POST", _path("orgs", org, "broadcasts", broadcast_id, "cancel"))

    # Contacts.

    def check_numbers(self, org: str, numbers: Iterable[str]) -> List[JSON]:
        """Whether each number is on WhatsApp, in the order given."""
        answer = self._obj("POST", _path("orgs", org, "contacts", "check"), {"numbers": [*numbers]})
        return cast(List[JSON], answer["results"])

    # Webhook dead letters.

    def dead_webhooks(self, limit: Optional[int] = None) -> List[JSON]:
        """Events given up after webhook.give_up_after, newest first."""
        answer = self._obj("GET", "/v1/webhooks/dead", query={"limit": limit} if limit else None)
        return cast(List[JSON], answer["dead_letters"])

    def retry_dead_webhook(self, event_id: str) -> JSON:
        return self._obj("POST", _path("webhooks", "dead", event_id, "retry"))

    # Transport.

    def _connection(self) -> http.client.HTTPConnection:
        if self._unix_path is not None:
            return _UnixConnection(self._unix_path, self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _obj(self, method: str, path: str, body: Optional[JSON] = None,
             query: Optional[Dict[str, Any]] = None) -> JSON:
        """A call whose answer is a JSON object."""
        return cast(JSON, self._call(method, path, body, query))

    def _call(self, method: str, path: str, body: Optional[JSON] = None,
              query: Optional[Dict[str, Any]] = None) -> Any:
        if query:
            path += "?" + urlencode(query)
        deadline = self._monotonic() + self.boot_wait
        while True:
            try:
                return self._once(method, path, body)
            except Booting as err:
                wait = float(err.retry_after if err.retry_after is not None else 1)
                if self._monotonic() + wait > deadline:
                    raise
                self._sleep(wait)

    def _once(self, method: str, path: str, body: Optional[JSON]) -> Any:
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
            raise Unreachable(None, "unreachable", f"wa-sidecar API at {self.base}: {err}") from err
        finally:
            conn.close()
        if 200 <= resp.status < 300:
            try:
                return json.loads(raw)
            except ValueError as err:
                raise WaSidecarError(resp.status, "bad_answer",
                                     f"wa-sidecar API at {self.base}: {method} {path}: not JSON: {err}") from err
        try:
            answer = json.loads(raw)
            message, code = str(answer["error"]), str(answer["code"])
        except (ValueError, TypeError, KeyError):
            message, code = raw.decode(errors="replace").strip() or resp.reason, "http_error"
        retry_after = resp.getheader("Retry-After")
        raise error_for(resp.status, code, message,
                        int(retry_after) if retry_after and retry_after.isdigit() else None)


def _path(*parts: str) -> str:
    return "/v1/" + "/".join(quote(str(p), safe="") for p in parts)
