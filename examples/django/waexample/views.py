"""One organization's WhatsApp page (status, QR, outbox, send) and what
the webhooks brought. The webhook view itself is the package's
(wa_sidecar.django): this module only listens to its signals."""

import mimetypes
import threading
import uuid
from collections import deque

from django import forms
from django.conf import settings
from django.dispatch import receiver
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from wa_sidecar import WaSidecarError
from wa_sidecar.django import client, signals

ORG = settings.WA_SIDECAR_ORG
# How many of the latest messages the page's outbox shows.
OUTBOX_ROWS = 10


class SendForm(forms.Form):
    # Any spelling the sidecar reads ("+57 300 123 4567", "573001234567",
    # and "(300) 123-4567" with its default_country): the sidecar parses the
    # number and names what is wrong with it, so the form checks no more
    # than a length (the sidecar's own bound).
    to = forms.CharField(label="To (e.g. +57 300 123 4567)", max_length=64)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                           label="Text (the caption when a file is attached)")
    attachment = forms.FileField(required=False,
                                 help_text="An image, an MP4 video, a voice note (.ogg) or any document.")
    # A fresh key with every page: a double click, or the browser resending
    # the form, queues the message once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False)

    def clean(self):
        data = super().clean()
        if not data.get("text", "").strip() and not data.get("attachment"):
            raise forms.ValidationError("Write a text or attach a file.")
        return data


def _queue(data):
    """Queue the form's message: a text, or the attached file uploaded
    first (POST .../media) and sent with the text as its caption."""
    wa, key = client(), data["idempotency_key"]
    f = data.get("attachment")
    if not f:
        return wa.send(ORG, data["to"], data["text"], idempotency_key=key)
    mime = f.content_type or mimetypes.guess_type(f.name)[0] or "application/octet-stream"
    media = wa.upload_media(ORG, f.read(), mime, f.name)
    return wa.send_media(ORG, data["to"], media["media_id"], caption=data["text"], idempotency_key=key)


def _page(request, form=None, error=None):
    if form is None:
        form = SendForm(initial={"idempotency_key": uuid.uuid4().hex})
    context = {"org": ORG, "form": form, "error": error,
               "not_registered": f"Organization {ORG} is not registered yet: press Start / link to register it and show its QR."}
    wa = client()
    try:
        context["status"] = wa.status(ORG)
        context["outbox"] = wa.messages(ORG, limit=OUTBOX_ROWS)["messages"]
        if "sent" in request.GET:
            context["sent"] = wa.message(ORG, request.GET["sent"])
    except WaSidecarError as err:
        context["error"] = error or err
    return render(request, "waexample/org.html", context)


def _error_json(err):
    # 502: the error is the sidecar's, not this request's; the sidecar's own
    # status and code travel in the body.
    return JsonResponse({"error": err.message, "code": err.code, "sidecar_status": err.status,
                         "retry_after": err.retry_after}, status=502)


def _wants_json(request):
    return "application/json" in request.headers.get("Accept", "")


@require_GET
def index(request):
    return _page(request)


@require_GET
def status_json(request):
    """The status object, polled by the page every second."""
    try:
        return JsonResponse(client().status(ORG))
    except WaSidecarError as err:
        return _error_json(err)


@require_GET
def outbox_json(request):
    """The latest messages, polled by the page while one is on its way."""
    try:
        return JsonResponse(client().messages(ORG, limit=OUTBOX_ROWS))
    except WaSidecarError as err:
        return _error_json(err)


@require_POST
def start(request):
    try:
        client().start(ORG)
    except WaSidecarError as err:  # a 409 cooldown says until when in its sentence
        return _page(request, error=err)
    return redirect("index")


@require_POST
def send(request):
    """The send form; with Accept: application/json it answers the message as JSON."""
    form = SendForm(request.POST, request.FILES)
    if not form.is_valid():
        if _wants_json(request):
            return JsonResponse({"error": form.errors.get_json_data(), "code": "bad_form"}, status=400)
        return _page(request, form=form)
    try:
        message = _queue(form.cleaned_data)
    except WaSidecarError as err:
        if _wants_json(request):
            return _error_json(err)
        form.add_error(None, err.message)  # e.g. "to: ..." for a number the sidecar refuses
        return _page(request, form=form)
    if _wants_json(request):
        return JsonResponse(message, status=202)
    return redirect(reverse("index") + "?sent=" + message["id"])


# The latest verified events, kept in memory so that the example needs no
# database. A real application stores what it needs in its database, from
# receivers like this one; the package's view has already checked the
# signature and dropped events delivered twice.
_events = deque(maxlen=100)
_events_lock = threading.Lock()


@receiver(signals.webhook_received, dispatch_uid="waexample_record_event")
def _record(sender, event, **kwargs):
    with _events_lock:
        _events.append(event)


@require_GET
def events_json(request):
    """The latest webhook events, to look at in a browser (and for the tests); not for production."""
    with _events_lock:
        return JsonResponse({"events": list(_events)})
