"""The webhook view: verifies the signature, then dispatches the event."""

import json
import logging
from typing import Any, Dict, List, Tuple

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .. import webhooks
from . import conf, signals

log = logging.getLogger("wa_sidecar")


def _seen_key(event_id: str) -> str:
    return "wa_sidecar:event:" + event_id


@csrf_exempt  # the signature is what authenticates the sidecar
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """Answers 503 while no secret is set (so that the sidecar keeps the
    events and retries them), 403 to a bad or expired signature, 400 to a
    body that is not an event, 204 once the signals ran, and 500 when a
    receiver raised (the sidecar then delivers the event again)."""
    secret = conf.webhook_secret()
    if secret is None:
        return HttpResponse("webhook secret not configured\n", status=503)
    if not webhooks.verify_webhook(secret, request.body, request.headers.get(webhooks.SIGNATURE_HEADER, "")):
        return HttpResponse("bad or expired signature\n", status=403)
    try:
        event = json.loads(request.body)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"] \
            or not isinstance(event.get("event"), str):
        return HttpResponse("not an event: want a JSON object with an id and an event\n", status=400)

    alias = conf.get("DEDUPE_CACHE")
    cache = caches[alias] if alias else None
    if cache is not None and cache.get(_seen_key(event["id"])):
        return HttpResponse(status=204)  # delivered before: at least once
    failed = dispatch(event)
    if failed:
        return HttpResponse(f"{len(failed)} receivers failed; see the log\n", status=500)
    if cache is not None:
        cache.set(_seen_key(event["id"]), 1, conf.get("DEDUPE_TTL"))
    return HttpResponse(status=204)


def dispatch(event: Dict[str, Any]) -> List[Tuple[Any, Exception]]:
    """Send webhook_received and the event's own signal; the receivers
    that raised, with their errors (each logged)."""
    kind, org = event["event"], str(event.get("organization_id", ""))
    failed = []
    for signal in (signals.webhook_received, signals.BY_EVENT.get(kind)):
        if signal is None:
            continue
        for receiver, result in signal.send_robust(sender=kind, event=event, organization_id=org):
            if isinstance(result, Exception):
                log.error("wa-sidecar webhook %s %s org=%s: receiver %r raised: %r",
                          kind, event["id"], org, receiver, result, exc_info=result)
                failed.append((receiver, result))
    return failed
