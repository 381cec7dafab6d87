package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// The Python client's verify_webhook takes the secret file as read, with
// the newline echo leaves: the supervisor trims white space around the
// secret, and so does the client, so the two agree on the key.
func TestPythonClientTrimsTheSecret(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no %s: %v", python, err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "webhook_secret")
	if err := os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Webhook.SecretFile = path
	secret, err := cfg.WebhookSecret()
	if err != nil {
		t.Fatal(err)
	}
	body := `{"id":"evt_1","event":"status_changed"}`
	header := webhook.Sign(secret, []byte(body), time.Now())
	client, err := filepath.Abs("../../examples/django")
	if err != nil {
		t.Fatal(err)
	}
	script := `import sys
from wa_sidecar_client import verify_webhook
with open(sys.argv[1], "rb") as f:
    raw = f.read()
print(verify_webhook(raw, sys.argv[2].encode(), sys.argv[3]), verify_webhook(raw.decode(), sys.argv[2].encode(), sys.argv[3]))
`
	cmd := exec.Command(python, "-c", script, path, body, header)
	cmd.Dir = client
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "True True" {
		t.Fatalf("verify_webhook with the secret file as read (bytes, str): %s, want True True", got)
	}
}

// The Python client's upload_media and send_media against the real
// supervisor: the file is stored under its SHA-256 and the message names it.
func TestPythonClientSendsMedia(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no %s: %v", python, err)
	}
	t.Parallel()
	e := newEnvWith(t, options{tcp: true})
	e.start("py")
	client, err := filepath.Abs("../../examples/django")
	if err != nil {
		t.Fatal(err)
	}
	script := `import hashlib, sys
from wa_sidecar_client import WaSidecar
wa = WaSidecar(sys.argv[1])
data = b"%PDF-1.7 " + bytes(range(256)) * 40
m = wa.upload_media("py", data, "application/pdf", "factura.pdf")
assert m["media_id"] == "sha256:" + hashlib.sha256(data).hexdigest(), m
assert m["size"] == len(data) and m["filename"] == "factura.pdf", m
msg = wa.send_media("py", "573001270001", m["media_id"], caption="Your invoice", idempotency_key="inv-1")
assert msg["media"] == m["media_id"] and msg["status"] == "queued", msg
print("ok")
`
	cmd := exec.Command(python, "-c", script, e.apiURL)
	cmd.Dir = client
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python: %v\n%s", err, out)
	}
}
