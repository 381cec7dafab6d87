package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// pythonPackage runs script with Debian's python3 and the repository's
// wa_sidecar package (clients/python/src) on its path, in dir, and returns
// its output.
func pythonPackage(t *testing.T, dir string, args ...string) ([]byte, error) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s: %v", python, err)
		}
		t.Skipf("no %s: %v", python, err)
	}
	src, err := filepath.Abs("../../clients/python/src")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+src, "PYTHONDONTWRITEBYTECODE=1")
	return cmd.CombinedOutput()
}

// The package's own unit tests (clients/python/tests: unittest, a fake API,
// Django's test client and locmem mail backend), run here so that make
// test runs them with Debian's python3 and Django.
func TestPythonPackageUnitTests(t *testing.T) {
	needDjango(t)
	dir, err := filepath.Abs("../../clients/python")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pythonPackage(t, dir, "-m", "unittest", "discover", "-s", "tests", "-t", ".")
	if err != nil {
		t.Fatalf("python -m unittest: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("skipped")) {
		t.Fatalf("python -m unittest skipped tests:\n%s", out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

// The package's verify_webhook takes the secret file as read, with the
// newline echo leaves: the supervisor trims white space around the secret,
// and so does the package, so the two agree on the key.
func TestPythonClientTrimsTheSecret(t *testing.T) {
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
	script := `import sys
from wa_sidecar import verify_webhook, read_secret
with open(sys.argv[1], "rb") as f:
    raw = f.read()
print(verify_webhook(raw, sys.argv[2].encode(), sys.argv[3]), verify_webhook(raw.decode(), sys.argv[2].encode(), sys.argv[3]),
      verify_webhook(read_secret(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]))
`
	out, err := pythonPackage(t, dir, "-c", script, path, body, header)
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "True True True" {
		t.Fatalf("verify_webhook with the secret file as read (bytes, str, read_secret): %s, want True True True", got)
	}
}

// The wa_sidecar package against the real supervisor, workers and
// emulator, with an API key file that ends in a newline: every route, the
// typed errors (401, 404, 400, 409 cooldown), a message the recipient's
// phone shows, and the Django app's wa_sidecar_status command.
func TestPythonPackageAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	const org, phone, to = "pyk", "573007915410", "573001234567"
	key := rand.Text()
	e := newEnvWith(t, options{tcp: true, before: withAPIKey(key)})
	e.api = apiclient.New(strings.TrimPrefix(e.apiURL, "http://"), key)
	e.link(org, phone)
	e.status(org) // notes the worker's pid for the leak check at the end
	// withAPIKey wrote the key file with a newline, as install.sh used to.
	keyFile := filepath.Join(e.dir, "api_key")

	// The Django app's management command, through the example's settings.
	needDjango(t)
	example, err := filepath.Abs("../../examples/django")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "manage.py", "wa_sidecar_status")
	cmd.Dir = example
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "WA_SIDECAR_API="+e.apiURL,
		"WA_SIDECAR_API_KEY_FILE="+keyFile, "WA_SIDECAR_ORG="+org)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("manage.py wa_sidecar_status: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ORG") ||
		strings.Join(strings.Fields(lines[1])[:3], " ") != org+" connected "+phone+":1@s.whatsapp.net" {
		t.Fatalf("wa_sidecar_status printed:\n%s", out)
	}

	script, err := filepath.Abs("testdata/pyclient_e2e.py")
	if err != nil {
		t.Fatal(err)
	}
	out, err = pythonPackage(t, e.dir, script, e.apiURL, keyFile, org, to)
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var texts []string
	for _, d := range e.deliveries(phone, false) {
		if d.To == to {
			texts = append(texts, d.Text)
		}
	}
	if len(texts) == 0 || texts[0] != "Hello from wa_sidecar" {
		t.Fatalf("the recipient %s shows %q, want the package's message first", to, texts)
	}
}
