"""The wa_sidecar package against the real supervisor, run by
TestPythonPackageAgainstTheDaemon: every route once, and the typed errors
the daemon's answers become. Arguments: API base, API key file (written
with a trailing newline, as install.sh used to), a connected org, the
recipient."""

import hashlib
import re
import sys
import time

from wa_sidecar import (BadRequest, HoldActive, NotFound, Unauthorized, WaSidecar)

base, key_file, org, to = sys.argv[1:5]
wa = WaSidecar(base, api_key_file=key_file)


def eventually(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)


def raises(cls, call):
    try:
        call()
    except cls as err:
        return err
    raise AssertionError(f"{call} did not raise {cls.__name__}")


assert wa.healthz() == {"status": "ok"}, wa.healthz()
assert wa.readyz()["status"] == "ready"
assert [o["organization_id"] for o in wa.orgs()] == [org], wa.orgs()
assert wa.status(org)["status"] == "connected"

err = raises(Unauthorized, lambda: WaSidecar(base, api_key="not-the-key").orgs())
assert (err.status, err.code) == (401, "unauthorized"), repr(err)
err = raises(NotFound, lambda: wa.status("nobody"))
assert err.code == "unknown_org", repr(err)
err = raises(BadRequest, lambda: wa.send(org, "+57 300 123 45", "hi"))
assert err.code == "bad_body" and err.message.startswith("to:"), repr(err)

# Messages: the same key answers the first message; the recipient gets it.
m = wa.send(org, "+57 300 123 4567", "Hello from wa_sidecar", idempotency_key="py-1")
assert m["to"] == to and m["status"] == "queued", m
assert wa.send(org, to, "Hello from wa_sidecar", idempotency_key="py-1")["id"] == m["id"]
eventually("delivered", lambda: wa.message(org, m["id"])["status"] in ("delivered", "read"))
assert m["id"] in [x["id"] for x in wa.messages(org, limit=10)["messages"]]
assert all(x["status"] == "delivered" for x in wa.messages(org, status="delivered")["messages"])

data = b"%PDF-1.7 " + bytes(range(256)) * 40
media = wa.upload_media(org, data, "application/pdf", "factura.pdf")
assert media["media_id"] == "sha256:" + hashlib.sha256(data).hexdigest(), media
assert media["size"] == len(data) and media["filename"] == "factura.pdf", media
fm = wa.send_media(org, to, media["media_id"], caption="Your invoice", idempotency_key="inv-1")
assert fm["media"] == media["media_id"] and fm["status"] == "queued", fm

(check,) = wa.check_numbers(org, ["+57 300 123 4567"])
assert check["number"] == to and check["input"] == "+57 300 123 4567", check

job = wa.broadcast(org, ["573001230001", "+57 300 123 0002", "573001230001"], "December offers",
                   idempotency_key="py-b")
assert job["total"] == 2, job
assert job["id"] in [b["id"] for b in wa.broadcasts(org, limit=5)["broadcasts"]]
assert wa.broadcast_status(org, job["id"])["id"] == job["id"]
cancelled = wa.cancel_broadcast(org, job["id"])
assert cancelled["status"] in ("cancelled", "done"), cancelled

# Webhooks are off in this config: the dead letters' route says so.
assert raises(NotFound, wa.dead_webhooks).status == 404

# A second organization: pair by phone code, stop, delete.
other = "pyq"
assert wa.start(other)["organization_id"] == other
eventually("a QR for " + other, lambda: wa.status(other)["status"] == "qr_required")
assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", wa.pair_phone(other, "573007915999"))
wa.stop(other)
assert wa.delete(other)["deleted"] is True
assert raises(NotFound, lambda: wa.status(other)).code == "unknown_org"

# Logout: a cooldown follows, which start and clear answer as HoldActive.
wa.logout(org)
eventually("logged_out", lambda: wa.status(org)["status"] == "logged_out")
for call in (lambda: wa.start(org), lambda: wa.clear(org)):
    err = raises(HoldActive, call)
    assert err.status == 409 and err.code == "cooldown" and err.retry_after and err.retry_after > 0, repr(err)
print("ok")
