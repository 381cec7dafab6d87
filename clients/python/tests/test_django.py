"""The Django app, with Django's test client and the locmem mail backend.
Skipped when Django is not installed (apt-get install python3-django)."""

import io
import json
import os
import tempfile
import time
import unittest

try:
    import django
    from django.conf import settings
except ImportError:  # pragma: no cover - depends on the machine
    django = None

if django is not None and not settings.configured:
    settings.configure(
        SECRET_KEY="test",
        INSTALLED_APPS=["wa_sidecar.django"],
        ROOT_URLCONF="tests.django_urls",
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        DEFAULT_FROM_EMAIL="whatsapp@shop.example",
        DATABASES={},
        USE_TZ=True,
        WA_SIDECAR={},
    )
    django.setup()

from wa_sidecar import sign  # noqa: E402

from .fakeapi import FakeAPI, answer  # noqa: E402

SECRET = "0123456789abcdef0123456789abcdef"
OWNERS = {"2": "owner@shop.example"}


def owner_of(org):
    return ["a@shop.example", "b@shop.example"] if org == "7" else None


def event(id, kind="session_cleared", org="2", status="queued", reason="bad_mac_errors"):
    return {"id": id, "event": kind, "organization_id": org, "status": status, "reason": reason,
            "timestamp": "2026-12-04T10:00:00.000Z", "data": {}}


@unittest.skipIf(django is None, "Django is not installed")
class WebhookViewTest(unittest.TestCase):
    def setUp(self):
        from django.core import mail
        from django.core.cache import cache
        from django.test import Client
        from django.test.utils import override_settings

        cache.clear()
        mail.outbox = []
        self.client = Client()
        self.override = override_settings(WA_SIDECAR={"WEBHOOK_SECRET": SECRET + "\n"})
        self.override.enable()
        self.addCleanup(self.override.disable)
        self.received = []
        from wa_sidecar.django import signals

        def record(sender, event, organization_id, **kw):
            self.received.append((sender, event["id"], organization_id))

        for sig in (signals.webhook_received, signals.session_cleared, signals.message_status):
            sig.connect(record, weak=False, dispatch_uid="test-record")
            self.addCleanup(sig.disconnect, dispatch_uid="test-record")

    def post(self, body, signature=None, now=None):
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        headers = {}
        if signature is not False:
            headers["HTTP_X_WA_SIDECAR_SIGNATURE"] = signature or sign(SECRET, raw, int(now or time.time()))
        return self.client.post("/wa-sidecar/webhook", raw, content_type="application/json", **headers)

    def test_dispatches_once_per_event(self):
        self.assertEqual(self.post(event("evt_1")).status_code, 204)
        self.assertEqual(self.post(event("evt_1")).status_code, 204)  # delivered again
        self.assertEqual(self.post(event("evt_2", kind="message_status", status="delivered")).status_code, 204)
        self.assertEqual(self.post(event("evt_3", kind="some_future_kind")).status_code, 204)
        self.assertEqual(self.received, [
            ("session_cleared", "evt_1", "2"), ("session_cleared", "evt_1", "2"),
            ("message_status", "evt_2", "2"), ("message_status", "evt_2", "2"),
            ("some_future_kind", "evt_3", "2"),
        ])

    def test_refusals(self):
        raw = json.dumps(event("evt_x")).encode()
        now = int(time.time())
        cases = [
            ("unsigned", raw, False, 403),
            ("another secret", raw, sign("not-the-secret", raw, now), 403),
            ("replayed", raw, sign(SECRET, raw, now - 600), 403),
            ("not JSON", b"nope", None, 400),
            ("no id", json.dumps({"event": "x"}).encode(), None, 400),
            ("a list", b"[]", None, 400),
        ]
        for what, body, signature, want in cases:
            with self.subTest(what):
                self.assertEqual(self.post(body, signature).status_code, want)
        self.assertEqual(self.client.get("/wa-sidecar/webhook").status_code, 405)
        self.assertEqual(self.received, [])

    def test_no_secret_is_503(self):
        from django.test.utils import override_settings

        with override_settings(WA_SIDECAR={}):
            self.assertEqual(self.post(event("evt_1")).status_code, 503)

    def test_secret_file(self):
        from django.test.utils import override_settings

        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(SECRET + "\n")
        self.addCleanup(os.unlink, f.name)
        with override_settings(WA_SIDECAR={"WEBHOOK_SECRET_FILE": f.name}):
            self.assertEqual(self.post(event("evt_1")).status_code, 204)

    def test_a_failing_receiver_gets_the_event_again(self):
        from wa_sidecar.django import signals

        calls = []

        def flaky(sender, event, **kw):
            calls.append(event["id"])
            if len(calls) == 1:
                raise RuntimeError("database down")

        signals.broadcast_done.connect(flaky, weak=False, dispatch_uid="flaky")
        self.addCleanup(signals.broadcast_done.disconnect, dispatch_uid="flaky")
        body = event("evt_b", kind="broadcast_done", status="done")
        with self.assertLogs("wa_sidecar", "ERROR"):
            self.assertEqual(self.post(body).status_code, 500)
        self.assertEqual(self.post(body).status_code, 204)  # the sidecar's retry
        self.assertEqual(self.post(body).status_code, 204)  # a duplicate: not dispatched
        self.assertEqual(calls, ["evt_b", "evt_b"])


@unittest.skipIf(django is None, "Django is not installed")
class OwnerEmailTest(unittest.TestCase):
    def setUp(self):
        from django.core import mail
        from django.core.cache import cache

        cache.clear()
        mail.outbox = []

    def deliver(self, conf, *events):
        from django.test import Client
        from django.test.utils import override_settings

        with override_settings(WA_SIDECAR={"WEBHOOK_SECRET": SECRET, **conf}):
            for e in events:
                raw = json.dumps(e).encode()
                r = Client().post("/wa-sidecar/webhook", raw, content_type="application/json",
                                  HTTP_X_WA_SIDECAR_SIGNATURE=sign(SECRET, raw, int(time.time())))
                self.assertEqual(r.status_code, 204)

    def test_cleared_and_logged_out_mail_the_owner(self):
        from django.core import mail

        self.deliver({"OWNER_EMAIL": OWNERS, "RELINK_URL": "https://shop.example/wa/{org}"},
                     event("evt_1"),
                     event("evt_1"),  # at least once: the same event again mails once
                     event("evt_2", kind="status_changed", status="logged_out", reason="device_removed"),
                     event("evt_3", kind="status_changed", status="connected", reason="connected"),
                     event("evt_4", kind="message_status", status="failed"),
                     event("evt_5", org="9"))  # no owner known: no mail
        self.assertEqual(len(mail.outbox), 2)
        cleared, logged_out = mail.outbox
        for m in mail.outbox:
            self.assertEqual(m.to, ["owner@shop.example"])
            self.assertEqual(m.from_email, "whatsapp@shop.example")
            self.assertEqual(m.subject, "WhatsApp for 2 must be linked again")
            self.assertIn("Close WhatsApp Web", m.body)
            self.assertIn("The QR code is at https://shop.example/wa/2\n", m.body)
        self.assertIn("could no longer decrypt messages", cleared.body)
        self.assertIn("logged out from WhatsApp", logged_out.body)

    def test_owner_from_a_callable_or_its_path(self):
        from django.core import mail

        for owner in (owner_of, "tests.test_django.owner_of"):
            with self.subTest(owner=owner):
                mail.outbox = []
                from django.core.cache import cache

                cache.clear()
                self.deliver({"OWNER_EMAIL": owner, "OWNER_EMAIL_FROM": "ops@shop.example"},
                             event("evt_7", org="7", reason="manual"), event("evt_8", org="8"))
                (m,) = mail.outbox
                self.assertEqual((m.to, m.from_email), (["a@shop.example", "b@shop.example"], "ops@shop.example"))
                self.assertIn("its session was reset", m.body)
                self.assertIn("Scan the new QR code", m.body)
                self.assertNotIn("The QR code is at", m.body)

    def test_off_without_owner_email(self):
        from django.core import mail

        self.deliver({}, event("evt_1"), event("evt_2", kind="status_changed", status="logged_out"))
        self.assertEqual(mail.outbox, [])


@unittest.skipIf(django is None, "Django is not installed")
class SettingsAndCommandTest(unittest.TestCase):
    def test_unknown_key_is_named(self):
        from django.core.exceptions import ImproperlyConfigured
        from django.test.utils import override_settings

        from wa_sidecar.django import client

        with override_settings(WA_SIDECAR={"API_KEYFILE": "/x"}):
            with self.assertRaisesRegex(ImproperlyConfigured, "API_KEYFILE"):
                client()

    def test_client_from_settings(self):
        from django.test.utils import override_settings

        from wa_sidecar.django import client

        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("the-key\n")
        self.addCleanup(os.unlink, f.name)
        with override_settings(WA_SIDECAR={"API": "unix:/run/x.sock", "API_KEY_FILE": f.name, "TIMEOUT": 3}):
            wa = client()
            self.assertIs(client(), wa)
            self.assertEqual((wa.base, wa.api_key, wa.timeout), ("unix:/run/x.sock", "the-key", 3))
        with override_settings(WA_SIDECAR={"API": "http://127.0.0.1:9"}):
            self.assertEqual(client().base, "http://127.0.0.1:9")

    def test_status_command(self):
        from django.core.management import CommandError, call_command
        from django.test.utils import override_settings

        api = FakeAPI()
        self.addCleanup(api.close)
        api.respond = lambda r: answer(200, [
            {"organization_id": "2", "status": "connected", "jid": "573007915262:1@s.whatsapp.net",
             "outbox": {"queued": 3, "sent_today": 120, "failed_today": 1}},
            {"organization_id": "7", "status": "failed", "last_error": "worker exited: status 1",
             "outbox": {"queued": 0, "sent_today": 0, "failed_today": 0}},
        ])
        out = io.StringIO()
        with override_settings(WA_SIDECAR={"API": api.base, "API_KEY": "k"}):
            call_command("wa_sidecar_status", stdout=out)
            lines = out.getvalue().splitlines()
            self.assertEqual(lines[0].split(), ["ORG", "STATUS", "JID", "QUEUED", "SENT", "TODAY", "FAILED",
                                                "TODAY", "LAST", "ERROR"])
            self.assertEqual(lines[1].split(), ["2", "connected", "573007915262:1@s.whatsapp.net", "3", "120",
                                                "1", "-"])
            self.assertEqual(lines[2].split()[:2], ["7", "failed"])
            self.assertTrue(lines[2].endswith("worker exited: status 1"))
            self.assertEqual(api.requests[0].headers["x-api-key"], "k")

            out = io.StringIO()
            call_command("wa_sidecar_status", "--json", stdout=out)
            self.assertEqual([o["organization_id"] for o in json.loads(out.getvalue())], ["2", "7"])

            api.respond = lambda r: answer(404, {"error": "organization 9 is not registered", "code": "unknown_org"})
            with self.assertRaisesRegex(CommandError, "organization 9 is not registered"):
                call_command("wa_sidecar_status", "9", stdout=io.StringIO())
            self.assertEqual(api.requests[-1].path, "/v1/orgs/9")


if __name__ == "__main__":
    unittest.main()
