"""The email to an organization's owner when its WhatsApp session ended
and someone must scan a QR again: after a session_cleared (the sidecar
archived a corrupted session, or someone cleared it) and after a
status_changed to logged_out (the phone unlinked the device, or WhatsApp
did).

It is off until WA_SIDECAR["OWNER_EMAIL"] says who the owner is. The text
comes from the templates wa_sidecar/owner_relink_subject.txt and
wa_sidecar/owner_relink_body.txt: override them in your own templates
directory to change it.
"""

import logging
from typing import Any, Dict

from django.core.mail import send_mail
from django.template.loader import render_to_string

from . import conf

log = logging.getLogger("wa_sidecar")

# What the owner is told happened, by event and reason.
_WHY = {
    ("session_cleared", "bad_mac_errors"): "its session could no longer decrypt messages and was reset",
    ("session_cleared", "manual"): "its session was reset",
    ("status_changed", "logged_out"): "it was logged out from WhatsApp",
}


def on_session_cleared(sender: str, event: Dict[str, Any], organization_id: str, **kwargs: Any) -> None:
    notify_owner(event, organization_id)


def on_status_changed(sender: str, event: Dict[str, Any], organization_id: str, **kwargs: Any) -> None:
    if event.get("status") == "logged_out":
        notify_owner(event, organization_id)


def notify_owner(event: Dict[str, Any], org: str) -> int:
    """Email org's owner that it must be linked again; the number of
    messages sent (0 when OWNER_EMAIL gives nobody)."""
    to = conf.owner_addresses(org)
    if not to:
        return 0
    kind = event.get("event", "")
    # A status_changed's reason is the worker's event (device_removed,
    # logout, ...): its status says what happened.
    why = (_WHY.get((kind, event.get("reason") or "")) or _WHY.get((kind, event.get("status") or ""))
           or "its session ended")
    relink = conf.get("RELINK_URL")
    context = {
        "organization_id": org,
        "event": event,
        "why": why,
        "relink_url": relink.format(org=org) if relink else "",
    }
    subject = " ".join(render_to_string("wa_sidecar/owner_relink_subject.txt", context).split())
    body = render_to_string("wa_sidecar/owner_relink_body.txt", context)
    sent = int(send_mail(subject, body, conf.get("OWNER_EMAIL_FROM"), to))
    log.info("wa-sidecar: told the owner of org=%s to link it again (event %s %s)", org, kind, event.get("id"))
    return sent
