"""The signals the webhook view sends, one per event kind, after the
event's signature is verified (and, with DEDUPE_CACHE, once per event id).

Each is sent with sender = the event kind and keyword arguments event (the
payload: id, event, organization_id, status, reason, timestamp, data) and
organization_id:

    from django.dispatch import receiver
    from wa_sidecar.django import signals

    @receiver(signals.message_status)
    def on_message_status(sender, event, organization_id, **kwargs):
        Notification.objects.filter(wa_message_id=event["data"]["wa_message_id"]).update(status=event["status"])

webhook_received comes first, for every event, kinds not listed here too.
Receivers run inside the webhook's request: keep them quick (the sidecar
waits up to 10 s) and idempotent (delivery is at least once). When one
raises, the view answers 500 and the sidecar delivers the event again.
"""

from typing import Dict

from django.dispatch import Signal

from .. import webhooks

webhook_received = Signal()
status_changed = Signal()
session_cleared = Signal()
message_status = Signal()
broadcast_progress = Signal()
broadcast_done = Signal()
send_restricted = Signal()
message_received = Signal()

BY_EVENT: Dict[str, Signal] = {
    webhooks.STATUS_CHANGED: status_changed,
    webhooks.SESSION_CLEARED: session_cleared,
    webhooks.MESSAGE_STATUS: message_status,
    webhooks.BROADCAST_PROGRESS: broadcast_progress,
    webhooks.BROADCAST_DONE: broadcast_done,
    webhooks.SEND_RESTRICTED: send_restricted,
    webhooks.MESSAGE_RECEIVED: message_received,
}
