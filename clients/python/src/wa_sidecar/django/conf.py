"""The WA_SIDECAR setting, a dict:

API                  the status API, "http://127.0.0.1:8089" (default) or "unix:/run/wa-sidecar/api.sock"
API_KEY              the key sent as x-api-key (white space around it is stripped), or
API_KEY_FILE         a file holding it (/etc/wa-sidecar/api_key); neither: no key (dev mode)
TIMEOUT              seconds per API call (10)
BOOT_WAIT            seconds in all that a call waits for a booting sidecar (30)
WEBHOOK_SECRET       the sidecar's webhook secret, or
WEBHOOK_SECRET_FILE  a copy of its webhook.secret_file; neither: the webhook view answers 503
DEDUPE_CACHE         the cache alias ("default") that remembers delivered event ids, so
                     that a delivery made twice dispatches once; None: no deduplication
DEDUPE_TTL           seconds an event id is remembered (86400)
OWNER_EMAIL          who to tell when an organization must scan the QR again: a callable
                     or its dotted path, taking the organization id and returning an address,
                     a list of them, or None; or a dict {org id: address}. None (default): no email
OWNER_EMAIL_FROM     the sender (default: DEFAULT_FROM_EMAIL)
RELINK_URL           where the owner scans again, with {org} for the id
                     ("https://shop.example/whatsapp/{org}"); put in the email when set
"""

import threading
from typing import Any, Callable, Dict, List, Optional

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ..client import DEFAULT_BOOT_WAIT, WaSidecar
from ..webhooks import read_secret

DEFAULTS: Dict[str, Any] = {
    "API": "http://127.0.0.1:8089",
    "API_KEY": None,
    "API_KEY_FILE": None,
    "TIMEOUT": 10,
    "BOOT_WAIT": DEFAULT_BOOT_WAIT,
    "WEBHOOK_SECRET": None,
    "WEBHOOK_SECRET_FILE": None,
    "DEDUPE_CACHE": "default",
    "DEDUPE_TTL": 86400,
    "OWNER_EMAIL": None,
    "OWNER_EMAIL_FROM": None,
    "RELINK_URL": None,
}


def get(name: str) -> Any:
    """One key of WA_SIDECAR, or its default."""
    conf = getattr(settings, "WA_SIDECAR", {})
    if not isinstance(conf, dict):
        raise ImproperlyConfigured(f"WA_SIDECAR is a {type(conf).__name__}, want a dict")
    unknown = sorted(set(conf) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(f"WA_SIDECAR has unknown keys {unknown}; known: {sorted(DEFAULTS)}")
    return conf.get(name, DEFAULTS[name])


_lock = threading.Lock()
_client: Optional[WaSidecar] = None


def client() -> WaSidecar:
    """The client for WA_SIDECAR, made once (again after the setting changes)."""
    global _client
    with _lock:
        if _client is None:
            if get("API_KEY") and get("API_KEY_FILE"):
                raise ImproperlyConfigured("WA_SIDECAR: set API_KEY or API_KEY_FILE, not both")
            try:
                _client = WaSidecar(get("API"), api_key=get("API_KEY") or None,
                                    api_key_file=get("API_KEY_FILE") or None,
                                    timeout=get("TIMEOUT"), boot_wait=get("BOOT_WAIT"))
            except (OSError, ValueError) as err:
                raise ImproperlyConfigured(f"WA_SIDECAR: {err}") from err
        return _client


def webhook_secret() -> Optional[bytes]:
    """The webhook secret, trimmed as the sidecar trims it, or None when
    none is set. The file is read at each call, so a rotated secret applies
    without a restart."""
    secret, path = get("WEBHOOK_SECRET"), get("WEBHOOK_SECRET_FILE")
    if secret and path:
        raise ImproperlyConfigured("WA_SIDECAR: set WEBHOOK_SECRET or WEBHOOK_SECRET_FILE, not both")
    if path:
        return read_secret(path) or None
    if secret:
        return (secret.encode() if isinstance(secret, str) else bytes(secret)).strip() or None
    return None


def owner_addresses(org: str) -> List[str]:
    """The addresses OWNER_EMAIL gives for org (none when it is unset)."""
    owner = get("OWNER_EMAIL")
    if owner is None:
        return []
    if isinstance(owner, dict):
        found = owner.get(org)
    else:
        resolve: Callable[[str], Any] = import_string(owner) if isinstance(owner, str) else owner
        if not callable(resolve):
            raise ImproperlyConfigured(f"WA_SIDECAR OWNER_EMAIL is a {type(owner).__name__}: "
                                       "want a callable, its dotted path, or a dict")
        found = resolve(org)
    if not found:
        return []
    return [found] if isinstance(found, str) else [a for a in found if a]


def _reset(*, setting: str, **kwargs: Any) -> None:
    global _client
    if setting == "WA_SIDECAR":
        with _lock:
            _client = None


setting_changed.connect(_reset)
