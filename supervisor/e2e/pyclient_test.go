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
