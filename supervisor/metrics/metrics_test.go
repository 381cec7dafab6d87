package metrics

import (
	"bytes"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(reg, 5), reg
}

// populate touches every series so that lint and promtool see all of them.
func populate(m *Metrics, org string) {
	m.SetStatus(org, state.QRRequired)
	m.SetLive(map[string]int{"direct": 2, "socks5://10.0.0.1:1080": 1})
	m.SetQueueDepth(2)
	m.BadMACError(org)
	m.BadMACTrip(org)
	m.SessionCleared(org, "bad_mac_errors")
	m.Logout(org, "logged_out")
	m.WorkerRestart(org, "crash")
	m.SetRSS(org, 48<<20)
	m.QRCode(org)
	m.ObserveStart(1500 * time.Millisecond)
	m.MessageSent(org)
	m.MessageFailed(org, "expired")
	m.SetOutboxDepth(org, 4)
	m.DecryptFailure(org, "no_session")
	m.Pruned("messages", 500)
	m.Pruned("messages", 20)
}

func TestStatusIsOneHot(t *testing.T) {
	m, _ := newTest(t)
	m.SetStatus("2", state.Restoring)
	m.SetStatus("2", state.Connected)
	if n := testutil.CollectAndCount(m.orgStatus); n != len(state.All) {
		t.Fatalf("org_status has %d series, want one per status (%d)", n, len(state.All))
	}
	for _, s := range state.All {
		want := 0.0
		if s == state.Connected {
			want = 1
		}
		if got := testutil.ToFloat64(m.orgStatus.WithLabelValues("2", string(s))); got != want {
			t.Errorf("org_status{status=%q} = %v, want %v", s, got, want)
		}
	}
}

func TestValues(t *testing.T) {
	m, _ := newTest(t)
	if got := testutil.ToFloat64(m.workersMax); got != 5 {
		t.Fatalf("workers_max = %v", got)
	}
	populate(m, "2")
	m.BadMACError("2")
	m.SessionCleared("2", "manual")
	for name, c := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"workers_live direct":               {m.workersLive.WithLabelValues("direct"), 2},
		"workers_live proxy":                {m.workersLive.WithLabelValues("socks5://10.0.0.1:1080"), 1},
		"start_queue_depth":                 {m.startQueueDepth, 2},
		"badmac_errors_total":               {m.badMACErrors.WithLabelValues("2"), 2},
		"badmac_trips_total":                {m.badMACTrips.WithLabelValues("2"), 1},
		"sessions_cleared_total bad_mac":    {m.sessionsCleared.WithLabelValues("2", "bad_mac_errors"), 1},
		"sessions_cleared_total manual":     {m.sessionsCleared.WithLabelValues("2", "manual"), 1},
		"logouts_total":                     {m.logouts.WithLabelValues("2", "logged_out"), 1},
		"worker_restarts_total":             {m.workerRestarts.WithLabelValues("2", "crash"), 1},
		"worker_rss_bytes":                  {m.workerRSS.WithLabelValues("2"), 48 << 20},
		"qr_codes_total":                    {m.qrCodes.WithLabelValues("2"), 1},
		"messages_sent_total":               {m.messagesSent.WithLabelValues("2"), 1},
		"messages_failed_total":             {m.messagesFailed.WithLabelValues("2", "expired"), 1},
		"outbox_depth":                      {m.outboxDepth.WithLabelValues("2"), 4},
		"decrypt_failures_total no_session": {m.decryptFailures.WithLabelValues("2", "no_session"), 1},
		"pruned_rows_total messages":        {m.pruned.WithLabelValues("messages"), 520},
		"pruned_rows_total broadcasts":      {m.pruned.WithLabelValues("broadcasts"), 0},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", name, got, c.want)
		}
	}

	want := `
# HELP wa_sidecar_worker_start_seconds Time from spawning a worker to its first session state.
# TYPE wa_sidecar_worker_start_seconds histogram
wa_sidecar_worker_start_seconds_bucket{le="0.1"} 0
wa_sidecar_worker_start_seconds_bucket{le="0.25"} 0
wa_sidecar_worker_start_seconds_bucket{le="0.5"} 0
wa_sidecar_worker_start_seconds_bucket{le="1"} 0
wa_sidecar_worker_start_seconds_bucket{le="2"} 1
wa_sidecar_worker_start_seconds_bucket{le="5"} 1
wa_sidecar_worker_start_seconds_bucket{le="10"} 1
wa_sidecar_worker_start_seconds_bucket{le="20"} 1
wa_sidecar_worker_start_seconds_bucket{le="30"} 1
wa_sidecar_worker_start_seconds_bucket{le="60"} 1
wa_sidecar_worker_start_seconds_bucket{le="120"} 1
wa_sidecar_worker_start_seconds_bucket{le="+Inf"} 1
wa_sidecar_worker_start_seconds_sum 1.5
wa_sidecar_worker_start_seconds_count 1
`
	if err := testutil.CollectAndCompare(m.workerStart, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestForgetRemovesEverySeriesOfTheOrg(t *testing.T) {
	m, reg := newTest(t)
	populate(m, "2")
	populate(m, "other")
	count := func() map[string]int {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, f := range families {
			for _, s := range f.GetMetric() {
				n[orgLabel(s)]++
			}
		}
		return n
	}
	before := count()
	m.Forget("2")
	after := count()
	if after["2"] != 0 {
		t.Fatalf("%d series left for the forgotten org", after["2"])
	}
	if after["other"] != before["other"] || after["other"] < len(state.All)+len(m.perOrg) {
		t.Fatalf("the other org has %d series, had %d", after["other"], before["other"])
	}
	if got := testutil.ToFloat64(m.workersLive.WithLabelValues("direct")); got != 2 {
		t.Fatalf("workers_live = %v; Forget must not touch host-wide series", got)
	}
}

func orgLabel(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "org" {
			return l.GetValue()
		}
	}
	return ""
}

func TestNamesFromTheDesign(t *testing.T) {
	m, reg := newTest(t)
	populate(m, "2")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, n := range []string{"workers_live", "workers_max", "org_status", "badmac_errors_total",
		"badmac_trips_total", "sessions_cleared_total", "logouts_total", "worker_restarts_total",
		"worker_rss_bytes", "qr_codes_total", "messages_sent_total", "messages_failed_total",
		"outbox_depth", "start_queue_depth", "worker_start_seconds", "decrypt_failures_total", "persist_errors_total",
		"send_seconds", "broadcasts_active", "broadcasts_stalled", "send_restricted", "pruned_rows_total"} {
		if !slices.Contains(names, "wa_sidecar_"+n) {
			t.Errorf("wa_sidecar_%s missing", n)
		}
	}
	for _, n := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s missing: Go and process collectors not registered", n)
		}
	}
}

func TestLint(t *testing.T) {
	m, reg := newTest(t)
	populate(m, "2")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestPromtool checks the scraped text with the tool the design names. CI
// installs it (.ci/), so there its absence is a failure rather than a skip.
func TestPromtool(t *testing.T) {
	promtool := findPromtool()
	if promtool == "" {
		if os.Getenv("CI") == "" {
			t.Skip("promtool not on PATH nor in .tools/")
		}
		t.Fatal("promtool not on PATH nor in .tools/, and CI is set")
	}
	m, reg := newTest(t)
	populate(m, "2")
	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("wa_sidecar_org_status{org=\"2\",status=\"qr_required\"} 1")) {
		t.Fatalf("scrape lacks org_status:\n%s", body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func findPromtool() string {
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", ".tools", "promtool"))
	if err != nil {
		return ""
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return p
	}
	return ""
}

// A registered organization's counters exist at 0 before their first
// event, reason labels included, so panels and increase() see the first.
func TestSeriesExistFromRegistration(t *testing.T) {
	m, reg := newTest(t)
	m.SetStatus("9", state.Queued)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			key := f.GetName()
			for _, l := range s.GetLabel() {
				if l.GetName() != "org" {
					key += "," + l.GetValue()
				}
			}
			have[key] = true
		}
	}
	for _, want := range []string{
		"wa_sidecar_badmac_errors_total", "wa_sidecar_badmac_trips_total", "wa_sidecar_qr_codes_total",
		"wa_sidecar_messages_sent_total", "wa_sidecar_messages_failed_total,expired", "wa_sidecar_outbox_depth",
		"wa_sidecar_send_restricted", "wa_sidecar_sessions_cleared_total,bad_mac_errors", "wa_sidecar_sessions_cleared_total,manual",
		"wa_sidecar_logouts_total,device_removed", "wa_sidecar_worker_restarts_total,crash",
		"wa_sidecar_webhook_deliveries_total,delivered", "wa_sidecar_webhook_queue_depth", "wa_sidecar_webhook_dead_letters",
	} {
		if !have[want] {
			t.Errorf("no series %s after registration", want)
		}
	}
}

// An egress whose last worker left shows 0, not a vanished series.
func TestLiveByEgress(t *testing.T) {
	m, _ := newTest(t)
	m.SetLive(map[string]int{"direct": 1, "socks5://10.0.0.1:1080": 2})
	m.SetLive(map[string]int{"direct": 1})
	if got := testutil.ToFloat64(m.workersLive.WithLabelValues("socks5://10.0.0.1:1080")); got != 0 {
		t.Fatalf("the emptied egress shows %v", got)
	}
	if got := testutil.ToFloat64(m.workersLive.WithLabelValues("direct")); got != 1 {
		t.Fatalf("direct shows %v", got)
	}
}
