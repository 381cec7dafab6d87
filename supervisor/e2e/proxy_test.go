package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/worker/testproxy"
)

// startWith POSTs start with a JSON body to the TCP API and returns the
// status and the raw answer.
func (e *env) startWith(org string, body any) (int, string) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := e.http.Post(e.apiURL+"/v1/orgs/"+org+"/start", "application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// get returns the raw answer of a GET on the TCP API.
func (e *env) get(path string) string {
	e.t.Helper()
	resp, err := e.http.Get(e.apiURL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

// noSecret fails if a secret shows in the supervisor's log, the API's
// list or the metrics.
func (e *env) noSecret(secrets ...string) {
	e.t.Helper()
	resp, err := http.Get(e.metricsURL)
	if err != nil {
		e.t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, secret := range secrets {
		for where, text := range map[string]string{
			"log": e.logs.String(), "GET /v1/orgs": e.get("/v1/orgs"), "/metrics": string(metrics),
		} {
			if strings.Contains(text, secret) {
				e.t.Fatalf("a proxy password shows in %s", where)
			}
		}
	}
}

// An organization with a SOCKS5 or HTTP CONNECT proxy connects only
// through it; one without connects directly; no password shows anywhere.
func TestProxiedAndDirectOrganizations(t *testing.T) {
	t.Parallel()
	socks := testproxy.StartSOCKS5(t, "alice", "socks-pw-7f3a")
	connect := testproxy.StartHTTPConnect(t, "bob", "connect-pw-91c2")
	e := newEnvWith(t, options{tcp: true})
	for _, c := range []struct {
		org, phone string
		p          *testproxy.Proxy
		egress     string
	}{
		{"px-socks", "573007915340", socks, proxy.Egress(socks.URL)},
		{"px-http", "573007915341", connect, proxy.Egress(connect.URL)},
	} {
		if code, body := e.startWith(c.org, map[string]string{"proxy": c.p.URL}); code != http.StatusAccepted {
			t.Fatalf("start %s: %d %s", c.org, code, body)
		}
		e.scanQR(c.org, c.phone)
		s := e.status(c.org)
		if s.Egress != c.egress || !strings.Contains(s.Proxy, "://***@") {
			t.Fatalf("%s shows proxy %q egress %q, want egress %s", c.org, s.Proxy, s.Egress, c.egress)
		}
		if c.p.Carried() == 0 {
			t.Fatalf("%s connected without its proxy", c.org)
		}
	}
	before := socks.Carried() + connect.Carried()
	e.link("px-direct", "573007915342")
	if s := e.status("px-direct"); s.Egress != "direct" || s.Proxy != "" {
		t.Fatalf("the direct org shows proxy %q egress %q", s.Proxy, s.Egress)
	}
	if after := socks.Carried() + connect.Carried(); after != before {
		t.Fatalf("the direct org went through a proxy (%d connections)", after-before)
	}
	if refused := append(socks.Refused(), connect.Refused()...); len(refused) > 0 {
		t.Fatalf("a worker asked a proxy for %v", refused)
	}
	if code, body := e.startWith("px-bad", map[string]string{"proxy": "ftp://u:pw-9@h:21"}); code != http.StatusBadRequest ||
		!strings.Contains(body, "proxy") || strings.Contains(body, "pw-9") {
		t.Fatalf("a bad proxy: %d %s", code, body)
	}
	e.noSecret("socks-pw-7f3a", "connect-pw-91c2", "pw-9")
}

// max_live_per_egress 2 with three proxies and seven organizations: never
// more than 2 live on one egress, and more than 5 live in all. The first
// proxy's three organizations spell it three ways (127.0.0.1, localhost, a
// zero-padded port): one proxy, one egress.
func TestLiveWorkersPerEgress(t *testing.T) {
	t.Parallel()
	proxies := []*testproxy.Proxy{
		testproxy.StartSOCKS5(t, "u0", "egress-pw-0"),
		testproxy.StartSOCKS5(t, "u1", "egress-pw-1"),
		testproxy.StartHTTPConnect(t, "u2", "egress-pw-2"),
	}
	e := newEnvWith(t, options{tcp: true, set: map[string]string{
		"max_live = 5": "max_live = 7\nmax_live_per_egress = 2",
	}})
	first := proxies[0].URL
	spelled := map[int]string{
		0: first,
		3: strings.Replace(first, "@127.0.0.1:", "@localhost:", 1),
		6: strings.Replace(first, "@127.0.0.1:", "@127.0.0.1:0", 1),
	}
	for i := range 7 {
		url := proxies[i%3].URL
		if s, ok := spelled[i]; ok {
			url = s
		}
		if code, body := e.startWith(fmt.Sprint("eg", i), map[string]string{"proxy": url}); code != http.StatusAccepted {
			t.Fatalf("start eg%d: %d %s", i, code, body)
		}
	}
	most := 0
	e.eventually(60*time.Second, "six workers live", func() error {
		var list []state.Snapshot
		if err := json.Unmarshal([]byte(e.get("/v1/orgs")), &list); err != nil {
			return err
		}
		live, perEgress := 0, map[string]int{}
		for _, s := range list {
			if s.WorkerPID != 0 {
				live++
				perEgress[s.Egress]++
				e.pids[s.WorkerPID] = true
			}
		}
		for egress, n := range perEgress {
			if n > 2 {
				t.Fatalf("%d workers live on %s with max_live_per_egress 2", n, egress)
			}
		}
		most = max(most, live)
		if live < 6 {
			return fmt.Errorf("%d live", live)
		}
		return nil
	})
	if most <= 5 {
		t.Fatalf("at most %d live: the per-egress cap did not let more than 5 run", most)
	}
	// The seventh waits for its egress, not for the host.
	if s := e.status("eg6"); s.Status != state.Queued {
		t.Fatalf("eg6 (third on its egress) is %s", s.Status)
	}
	if v := e.metric("wa_sidecar_workers_live", map[string]string{"egress": proxy.Egress(proxies[0].URL)}); v != 2 {
		t.Fatalf("workers_live on the first proxy = %v", v)
	}
	e.noSecret("egress-pw-0", "egress-pw-1", "egress-pw-2")
}

// A dead proxy: a clear error naming its host, the crash backoff, no
// password anywhere, and another organization unaffected.
func TestDeadProxy(t *testing.T) {
	t.Parallel()
	deadURL := testproxy.DeadURL(t, "socks5", "carol", "dead-pw-55")
	dead := proxy.Egress(deadURL)
	e := newEnvWith(t, options{tcp: true})
	if code, body := e.startWith("dp", map[string]string{"proxy": deadURL}); code != http.StatusAccepted {
		t.Fatalf("start: %d %s", code, body)
	}
	e.eventually(30*time.Second, "the failed start retried", func() error {
		s := e.status("dp")
		if s.RetryCount < 2 || !strings.Contains(s.LastError, dead) {
			return fmt.Errorf("retry_count %d last_error %q", s.RetryCount, s.LastError)
		}
		return nil
	})
	s := e.status("dp")
	if s.BadMAC.Trips != 0 || s.Status == state.LoggedOut || s.CooldownUntil != nil {
		t.Fatalf("a dead proxy counted as a Bad MAC or a LOGOUT: %+v", s)
	}
	e.link("dp-other", "573007915343")
	e.noSecret("dead-pw-55")
}
