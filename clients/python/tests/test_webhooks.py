import unittest

from wa_sidecar import sign, verify_webhook

SECRET = b"0123456789abcdef0123456789abcdef"
BODY = b'{"id":"evt_1","event":"session_cleared","organization_id":"2"}'
NOW = 1_800_000_000


class VerifyTest(unittest.TestCase):
    def test_accepts(self) -> None:
        good = sign(SECRET, BODY, NOW)
        cases = {
            "signed now": (SECRET, good, NOW),
            "secret file read with its newline": (SECRET + b"\n", good, NOW),
            "secret as str": (SECRET.decode() + "\n", good, NOW),
            "5 minutes old": (SECRET, good, NOW + 300),
            "5 minutes ahead": (SECRET, good, NOW - 300),
            "rotated: two v1, one right": (SECRET, sign(b"old-secret-16-chars", BODY, NOW) + "," +
                                           good.split(",")[1], NOW),
            "spaces around parts": (SECRET, good.replace(",", " , "), NOW),
        }
        for what, (secret, header, now) in cases.items():
            with self.subTest(what):
                self.assertTrue(verify_webhook(secret, BODY, header, now=now))

    def test_refuses(self) -> None:
        good = sign(SECRET, BODY, NOW)
        cases = {
            "another secret": (BODY, sign(b"not-the-secret", BODY, NOW), NOW),
            "altered body": (BODY.replace(b'"2"', b'"3"'), good, NOW),
            "replayed (301 s old)": (BODY, good, NOW + 301),
            "from the future": (BODY, good, NOW - 301),
            "unsigned": (BODY, "", NOW),
            "None header": (BODY, None, NOW),
            "no v1": (BODY, "t=%d" % NOW, NOW),
            "no t": (BODY, good.split(",")[1], NOW),
            "t not digits": (BODY, good.replace("t=", "t=-"), NOW),
            "t with unicode digits": (BODY, "t=\u0661\u0662,v1=" + good.split("v1=")[1], NOW),
            "non-ASCII v1": (BODY, "t=%d,v1=\u00e9" % NOW, NOW),
        }
        for what, (body, header, now) in cases.items():
            with self.subTest(what):
                self.assertFalse(verify_webhook(SECRET, body, header, now=now))

    def test_known_vector(self) -> None:
        # From openssl dgst -sha256 -hmac, independent of this package:
        # the header the sidecar's webhook.Sign sends for BODY at NOW.
        want = "t=1800000000,v1=8ce009f16c1d7e368a81dfc2dd26497fa639954fe901575e5d53f53c5807a352"
        self.assertEqual(sign(SECRET, BODY, NOW), want)
        self.assertTrue(verify_webhook(SECRET, BODY, want, now=NOW))


if __name__ == "__main__":
    unittest.main()
