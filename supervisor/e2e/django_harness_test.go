package e2e

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// python is Debian's interpreter, which python3-django is installed for
// (not a pyenv or venv python3 that PATH may find first).
const python = "/usr/bin/python3"

// djangoRunner serves the example on a port the kernel picks and prints
// it: Django's threaded development server, without runserver's fixed port
// and autoreloader.
const djangoRunner = `
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

app = get_wsgi_application()
server = ThreadedWSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
server.set_app(app)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
`

// needDjango skips the test when Django is not installed, except in CI,
// where .ci/run installs it and its absence is a failure.
func needDjango(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import django").CombinedOutput()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "" {
		t.Skipf("%s cannot import django (apt-get install python3-django): %v %s", python, err, out)
	}
	t.Fatalf("%s cannot import django: %v %s", python, err, out)
}

// djangoConfig is the example's environment.
type djangoConfig struct {
	api, apiKey, secretFile, org string
	// ownerEmail receives the relink email (printed on Django's stdout).
	ownerEmail string
}

// djangoServer is the example Django project, served by a real Python
// process, and a browser-like client of it (cookies kept, redirects
// followed).
type djangoServer struct {
	t    *testing.T
	url  string
	http *http.Client
	logs *syncBuffer
	// out is Django's stdout: the console email backend's emails.
	out *syncBuffer
}

func startDjango(t *testing.T, c djangoConfig) *djangoServer {
	t.Helper()
	dir, err := filepath.Abs("../../examples/django")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", djangoRunner)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"DJANGO_SETTINGS_MODULE=waexample.settings",
		"PYTHONDONTWRITEBYTECODE=1", // no __pycache__ in the source tree
		"WA_SIDECAR_API="+c.api,
		"WA_SIDECAR_API_KEY="+c.apiKey,
		"WA_SIDECAR_WEBHOOK_SECRET_FILE="+c.secretFile,
		"WA_SIDECAR_ORG="+c.org,
		"WA_SIDECAR_OWNER_EMAIL="+c.ownerEmail,
	)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	d := &djangoServer{t: t, logs: logs, out: &syncBuffer{}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("django log (the end):\n%s", logs.tail(40))
		}
	})

	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
				continue
			}
			_, _ = d.out.Write([]byte(sc.Text() + "\n"))
		}
	}()
	select {
	case p := <-port:
		d.url = "http://127.0.0.1:" + p
	case <-done:
		t.Fatalf("django exited before listening:\n%s", logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("django not listening after 30s:\n%s", logs.String())
	}
	jar, _ := cookiejar.New(nil)
	d.http = &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	return d
}

// get fetches path and returns the status and body.
func (d *djangoServer) get(path string) (int, []byte) {
	d.t.Helper()
	resp, err := d.http.Get(d.url + path)
	if err != nil {
		d.t.Fatalf("django GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// getJSON fetches path into out and returns the status.
func (d *djangoServer) getJSON(path string, out any) int {
	d.t.Helper()
	code, b := d.get(path)
	if err := json.Unmarshal(b, out); err != nil {
		d.t.Fatalf("django GET %s: %d %v in %s", path, code, err, b)
	}
	return code
}

var hiddenInput = regexp.MustCompile(`name="(csrfmiddlewaretoken|idempotency_key)" value="([^"]*)"`)

// form loads the page, as a browser before a submit: its CSRF token (the
// cookie comes with it) and the send form's idempotency key.
func (d *djangoServer) form() url.Values {
	d.t.Helper()
	code, page := d.get("/")
	if code != http.StatusOK {
		d.t.Fatalf("django page: %d %s", code, page)
	}
	v := url.Values{}
	for _, m := range hiddenInput.FindAllSubmatch(page, -1) {
		v.Set(string(m[1]), string(m[2]))
	}
	if v.Get("csrfmiddlewaretoken") == "" {
		d.t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return v
}

// post submits a form to path; with out it asks for JSON and decodes the
// answer, without it follows the redirect as a browser does. It returns the
// final status and body.
func (d *djangoServer) post(path string, form url.Values, out any) (int, []byte) {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if out != nil {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("django POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			d.t.Fatalf("django POST %s: %s %v in %s", path, resp.Status, err, b)
		}
	}
	return resp.StatusCode, b
}

// postWebhook posts body to the webhook view as the sidecar would, with
// the signature header given, and returns the status.
func (d *djangoServer) postWebhook(body []byte, signature string) int {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.url+"/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("X-Wa-Sidecar-Signature", signature)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("django POST /webhook: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// events is what the webhook view recorded: verified events, each id once.
func (d *djangoServer) events() []webhook.Payload {
	d.t.Helper()
	var v struct{ Events []webhook.Payload }
	if code := d.getJSON("/webhook/events.json", &v); code != http.StatusOK {
		d.t.Fatalf("django events: %d", code)
	}
	return v.Events
}

// sign is the X-Wa-Sidecar-Signature value for body at unix time t.
func sign(secret, body []byte, t int64) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%d.", t)
	mac.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", t, hex.EncodeToString(mac.Sum(nil)))
}

// writeSecret writes a webhook secret file (mode 0600) and returns its
// path and content. No trailing newline, so that nothing depends on how
// either side trims the file.
func writeSecret(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	secret := []byte(rand.Text())
	path := filepath.Join(dir, "webhook_secret")
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, secret
}

// withAPIKey makes the supervisor require key (through api.api_key_file);
// the test then gives e.api the key.
func withAPIKey(key string) func(e *env) {
	return func(e *env) {
		keyFile := filepath.Join(e.dir, "api_key")
		if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
			e.t.Fatal(err)
		}
		addConfig(e, "[api]\n", fmt.Sprintf("api_key_file = %q\n", keyFile))
	}
}

// appendConfig adds text at the end of the config file.
func appendConfig(e *env, text string) {
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + text); err != nil {
		e.t.Fatal(err)
	}
}

// addConfig inserts lines into the config file after the line after.
func addConfig(e *env, after, lines string) {
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(after)) {
		e.t.Fatalf("config has no %q", after)
	}
	b = bytes.Replace(b, []byte(after), []byte(after+lines), 1)
	if err := os.WriteFile(e.cfgPath, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// syncBuffer is an io.Writer that several goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// tail is the last n lines.
func (s *syncBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimSpace(s.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
