import os
import tempfile
import unittest

from wa_sidecar import (BadRequest, Booting, Conflict, HoldActive, NotFound, ServerError, Unauthorized,
                        Unavailable, Unreachable, WaSidecar, WaSidecarError)

from .fakeapi import FakeAPI, answer


class FakeClock:
    """time.monotonic and time.sleep for the boot retries: sleeping moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.api = FakeAPI()
        self.addCleanup(self.api.close)

    def client(self, **kw) -> WaSidecar:
        return WaSidecar(self.api.base, **kw)

    def test_key_is_stripped(self) -> None:
        # install.sh used to write the key with a newline: read as it is,
        # it must still make a valid header, the key without it.
        self.client(api_key="s3cret\n").orgs()
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("  filekey\r\n")
        self.addCleanup(os.unlink, f.name)
        self.client(api_key_file=f.name).orgs()
        self.client().orgs()
        got = [r.headers.get("x-api-key") for r in self.api.requests]
        self.assertEqual(got, ["s3cret", "filekey", None])

    def test_key_and_key_file_together_is_an_error(self) -> None:
        with self.assertRaisesRegex(ValueError, "not both"):
            WaSidecar(self.api.base, api_key="a", api_key_file="/nonexistent")

    def test_bad_base(self) -> None:
        for base in ("https://x", "127.0.0.1:8089", "unix:", "http://h:1/prefix"):
            with self.subTest(base=base), self.assertRaisesRegex(ValueError, "address"):
                WaSidecar(base)

    def test_routes(self) -> None:
        wa = self.client()
        self.api.respond = lambda r: answer(200, {"code": "ABCD-EFGH", "results": [], "dead_letters": []})
        calls = [
            (lambda: wa.healthz(), "GET", "/healthz", None),
            (lambda: wa.readyz(), "GET", "/readyz", None),
            (lambda: wa.orgs(), "GET", "/v1/orgs", None),
            (lambda: wa.status("a/b"), "GET", "/v1/orgs/a%2Fb", None),
            (lambda: wa.start("2"), "POST", "/v1/orgs/2/start", None),
            (lambda: wa.start("2", force=True, proxy=""), "POST", "/v1/orgs/2/start", {"force": True, "proxy": ""}),
            (lambda: wa.stop("2"), "POST", "/v1/orgs/2/stop", None),
            (lambda: wa.logout("2"), "POST", "/v1/orgs/2/logout", None),
            (lambda: wa.clear("2"), "POST", "/v1/orgs/2/clear", None),
            (lambda: wa.delete("2"), "DELETE", "/v1/orgs/2", None),
            (lambda: wa.pair_phone("2", "573001234567"), "POST", "/v1/orgs/2/pair-phone", {"phone": "573001234567"}),
            (lambda: wa.send("2", "573001234567", "hi", idempotency_key="k1"), "POST", "/v1/orgs/2/messages",
             {"to": "573001234567", "text": "hi", "idempotency_key": "k1"}),
            (lambda: wa.send_media("2", "573001234567", "sha256:ab", caption="c"), "POST", "/v1/orgs/2/messages",
             {"to": "573001234567", "text": "c", "media": "sha256:ab"}),
            (lambda: wa.message("2", "msg_1"), "GET", "/v1/orgs/2/messages/msg_1", None),
            (lambda: wa.messages("2"), "GET", "/v1/orgs/2/messages", None),
            (lambda: wa.messages("2", status="failed", limit=5, after="c1"), "GET",
             "/v1/orgs/2/messages?status=failed&limit=5&after=c1", None),
            (lambda: wa.upload_media("2", b"\x00\xff", "image/png", "a.png"), "POST", "/v1/orgs/2/media",
             {"data": "AP8=", "mime": "image/png", "filename": "a.png"}),
            (lambda: wa.broadcast("2", iter(["1", "2"]), "offer", idempotency_key="p"), "POST",
             "/v1/orgs/2/broadcasts", {"recipients": ["1", "2"], "text": "offer", "idempotency_key": "p"}),
            (lambda: wa.broadcasts("2", limit=3), "GET", "/v1/orgs/2/broadcasts?limit=3", None),
            (lambda: wa.broadcast_status("2", "bc_1"), "GET", "/v1/orgs/2/broadcasts/bc_1", None),
            (lambda: wa.cancel_broadcast("2", "bc_1"), "POST", "/v1/orgs/2/broadcasts/bc_1/cancel", None),
            (lambda: wa.check_numbers("2", ["573001234567"]), "POST", "/v1/orgs/2/contacts/check",
             {"numbers": ["573001234567"]}),
            (lambda: wa.dead_webhooks(), "GET", "/v1/webhooks/dead", None),
            (lambda: wa.retry_dead_webhook("evt_1"), "POST", "/v1/webhooks/dead/evt_1/retry", None),
        ]
        for call, method, path, body in calls:
            with self.subTest(path=path):
                self.api.requests.clear()
                call()
                (r,) = self.api.requests
                self.assertEqual((r.method, r.path), (method, path))
                if body is None:
                    self.assertEqual(r.body, b"")
                else:
                    self.assertEqual(r.headers["content-type"], "application/json")
                    self.assertEqual(r.json(), body)

    def test_answers(self) -> None:
        self.api.respond = lambda r: answer(200, {"code": "ABCD-EFGH"})
        self.assertEqual(self.client().pair_phone("2", "573001234567"), "ABCD-EFGH")
        self.api.respond = lambda r: answer(200, {"results": [{"number": "1", "on_whatsapp": True}]})
        self.assertEqual(self.client().check_numbers("2", ["1"]), [{"number": "1", "on_whatsapp": True}])

    def test_errors_by_status_and_code(self) -> None:
        cases = [
            (400, "bad_body", None, BadRequest),
            (401, "unauthorized", None, Unauthorized),
            (404, "unknown_org", None, NotFound),
            (409, "conflict", None, Conflict),
            (409, "cooldown", "42", HoldActive),
            (503, "persist_failed", "5", Unavailable),
            (500, "internal", None, ServerError),
            (418, "teapot", None, WaSidecarError),
        ]
        for status, code, retry, cls in cases:
            with self.subTest(code=code):
                headers = {"Retry-After": retry} if retry else {}
                self.api.respond = lambda r: answer(status, {"error": "the sentence", "code": code}, headers)
                with self.assertRaises(cls) as ctx:
                    self.client().status("2")
                err = ctx.exception
                self.assertIs(type(err), cls)
                self.assertEqual((err.status, err.code, err.message), (status, code, "the sentence"))
                self.assertEqual(err.retry_after, int(retry) if retry else None)
        self.assertTrue(issubclass(HoldActive, Conflict) and issubclass(Booting, Unavailable))

    def test_error_that_is_not_json(self) -> None:
        self.api.respond = lambda r: (502, {"Content-Type": "text/plain"}, b"Bad Gateway\n")
        with self.assertRaises(ServerError) as ctx:
            self.client().orgs()
        self.assertEqual((ctx.exception.code, ctx.exception.message), ("http_error", "Bad Gateway"))

    def test_unreachable(self) -> None:
        base = self.api.base
        self.api.close()
        self.addCleanup(lambda: None)
        with self.assertRaises(Unreachable) as ctx:
            WaSidecar(base, timeout=2).orgs()
        self.assertIsNone(ctx.exception.status)
        self.assertEqual(ctx.exception.code, "unreachable")
        self.api = FakeAPI()  # for the cleanup

    def test_booting_is_retried_after_retry_after(self) -> None:
        answers = [answer(503, {"error": "booting", "code": "booting"}, {"Retry-After": "1"})] * 2
        answers.append(answer(200, [{"organization_id": "2"}]))
        self.api.respond = lambda r: answers.pop(0)
        clock = FakeClock()
        got = self.client(boot_wait=30, sleep=clock.sleep, monotonic=clock.monotonic).orgs()
        self.assertEqual(got, [{"organization_id": "2"}])
        self.assertEqual(clock.slept, [1.0, 1.0])
        self.assertEqual(len(self.api.requests), 3)

    def test_booting_wait_is_bounded(self) -> None:
        self.api.respond = lambda r: answer(503, {"error": "booting", "code": "booting"}, {"Retry-After": "2"})
        clock = FakeClock()
        with self.assertRaises(Booting) as ctx:
            self.client(boot_wait=5, sleep=clock.sleep, monotonic=clock.monotonic).start("2")
        self.assertEqual(ctx.exception.retry_after, 2)
        self.assertEqual(clock.slept, [2.0, 2.0])  # a third wait would pass the 5 s
        self.assertLessEqual(sum(clock.slept), 5)

    def test_other_503_is_not_retried(self) -> None:
        self.api.respond = lambda r: answer(503, {"error": "disk", "code": "persist_failed"}, {"Retry-After": "1"})
        clock = FakeClock()
        with self.assertRaises(Unavailable):
            self.client(sleep=clock.sleep, monotonic=clock.monotonic).send("2", "1", "x")
        self.assertEqual((clock.slept, len(self.api.requests)), ([], 1))


class UnixSocketTest(unittest.TestCase):
    def test_unix_socket(self) -> None:
        api = FakeAPI(unix=True)
        self.addCleanup(api.close)
        api.respond = lambda r: answer(202, {"organization_id": "2", "status": "queued"})
        got = WaSidecar(api.base, api_key="k\n").start("2")
        self.assertEqual(got["status"], "queued")
        (r,) = api.requests
        self.assertEqual((r.path, r.headers["host"], r.headers["x-api-key"]), ("/v1/orgs/2/start", "localhost", "k"))


if __name__ == "__main__":
    unittest.main()
