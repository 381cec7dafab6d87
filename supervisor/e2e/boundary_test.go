package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// The report of the issue, as a browser would send it: in keyless dev mode
// a page on any origin POSTed text/plain to logout, and DNS rebinding read
// the QR codes. Neither gets through, and the device stays linked. A name
// listed in api.allowed_hosts (a Kubernetes Service's) passes the Host
// check; any other name still does not.
func TestABrowserPageCannotDriveTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{tcp: true, api: `allowed_hosts = ["wa-sidecar-api.wa-sidecar.svc"]`})
	e.link("br", "573007915290")
	send := func(method, path, body string, header map[string]string, host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, e.apiURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name         string
		method, path string
		body         string
		header       map[string]string
		host         string
		want         int
	}{
		{"cross-site text/plain logout", "POST", "/v1/orgs/br/logout", "{}",
			map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, "", http.StatusForbidden},
		{"same request without Origin", "POST", "/v1/orgs/br/logout", "{}",
			map[string]string{"Content-Type": "text/plain"}, "", http.StatusUnsupportedMediaType},
		{"fetch metadata says cross-site", "POST", "/v1/orgs/br/clear", "",
			map[string]string{"Sec-Fetch-Site": "cross-site"}, "", http.StatusForbidden},
		{"DNS rebinding", "GET", "/v1/orgs", "", nil, "evil.example", http.StatusForbidden},
	} {
		if code, body := send(c.method, c.path, c.body, c.header, c.host); code != c.want || strings.Contains(body, "qr") {
			t.Fatalf("%s: %d %s, want %d", c.name, code, body, c.want)
		}
	}
	if s := e.status("br"); s.Status != state.Connected {
		t.Fatalf("the device was touched: %+v", s)
	}
	if code, _ := send("GET", "/v1/orgs/br", "", nil, "localhost"); code != http.StatusOK {
		t.Fatalf("a local caller is refused: %d", code)
	}
	if code, body := send("GET", "/v1/orgs/br", "", nil, "wa-sidecar-api.wa-sidecar.svc:8089"); code != http.StatusOK {
		t.Fatalf("a name listed in api.allowed_hosts is refused: %d %s", code, body)
	}
}

// A worker binary replaced under a running supervisor is refused until the
// supervisor restarts: the organization fails at once with a sentence
// saying so (not after crash_limit restarts), and resumes by itself after
// the restart.
func TestReplacedWorkerBinaryIsRefused(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "wa-worker")
	data, err := os.ReadFile(filepath.Join(binDir, "wa-worker"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, options{worker: bin})
	e.link("rbin", "573007915291")
	pid := e.status("rbin").WorkerPID
	script := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\"\n", filepath.Join(binDir, "wa-worker"))
	if err := os.WriteFile(bin+".new", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s := e.waitStatus("rbin", state.Failed, 60*time.Second)
	if !strings.Contains(s.LastError, "changed since the supervisor started; restart the supervisor") {
		t.Fatalf("last_error %q does not say why", s.LastError)
	}
	if v := e.metric("wa_sidecar_worker_restarts_total", map[string]string{"org": "rbin", "reason": "start_failed"}); v != 0 {
		t.Fatalf("the refusal counted as %v crashes of the organization", v)
	}
	// The restart the sentence asks for runs it again, by itself, on the
	// new binary.
	e.stop()
	e.startSupervisor()
	e.waitStatus("rbin", state.Connected, 30*time.Second)
}
