package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/e2e/binaries"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// binDir holds wa-supervisor and wa-worker: `make e2e` passes bin/ in
// WA_SIDECAR_BIN; otherwise TestMain builds them into a temporary directory.
var binDir string

func TestMain(m *testing.M) { binaries.Main(m, &binDir) }

// env is one emulator and one real supervisor (with real workers) in a
// temporary state directory.
type env struct {
	t        *testing.T
	dir      string
	stateDir string
	cfgPath  string
	emu      *emulator.Server
	emuURL   string
	api      *apiclient.Client
	// http is for requests the API client cannot make; like api, it
	// checks every answer against openapi.json.
	http *http.Client

	sup        *exec.Cmd
	supDone    chan struct{}
	metricsURL string
	// apiURL is the API's base URL when it listens on TCP.
	apiURL string
	tcp    bool
	logs   *logBuffer
	pids   map[int]bool // every worker PID seen, checked for leaks at the end
}

// timings are the short durations the suite runs with.
const timings = `
[workers]
max_live = 5
start_gap = "300ms"
start_jitter = ["0s", "50ms"]
health_interval = "1s"
crash_backoff = ["300ms", "2s"]
crash_limit = 5
stop_timeout = "3s"
sandbox = "require"

[badmac]
limit = 5
reset_after = "3s"
keep_archives = 3
restart_delay = "300ms"
storm_trips = 10
storm_max_cooldown = "5s"

[logout]
cooldown = "4s"

[messages]
min_interval = "200ms"
per_minute = 600
jitter = ["0s", "0s"]
expire_after = "1h"
max_jobs = 2
stalled_after = "5s"
restrict_backoff = "3s"
# a newly linked number's warm-up would hold tests that send more than
# warmup_first_day; the schedule has its own tests
daily_limit = 0
`

// options change what newEnvWith sets up.
type options struct {
	// extra is appended to the config.
	extra string
	// set replaces lines of the timings, e.g. {"cooldown = \"4s\"": "cooldown = \"60s\""}.
	set map[string]string
	// before runs after the state directory is chosen and before the
	// supervisor starts.
	before func(e *env)
	// noStart leaves starting the supervisor to the test.
	noStart bool
	// tcp puts the API on a loopback TCP port (e.apiURL) instead of a
	// unix socket.
	tcp bool
	// api is added to the [api] section.
	api string
	// worker overrides the worker binary.
	worker string
}

func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	return newEnvWith(t, options{extra: extra})
}

func newEnvWith(t *testing.T, o options) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, stateDir: filepath.Join(dir, "state"), pids: map[int]bool{}}
	tm := timings
	for old, repl := range o.set {
		if !strings.Contains(tm, old) {
			t.Fatalf("timings have no %q", old)
		}
		tm = strings.Replace(tm, old, repl, 1)
	}

	emu, err := emulator.New(emulator.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = emu.Serve(ln) }()
	e.emu = emu
	e.emuURL = "http://" + ln.Addr().String()
	t.Cleanup(func() {
		if iqs := emu.UnknownIQs(); len(iqs) > 0 {
			t.Errorf("the emulator did not understand these iqs: %v", iqs)
		}
		emu.Close()
	})

	sock := filepath.Join(dir, "api.sock")
	listen := "unix:" + sock
	if o.tcp {
		listen, e.tcp = "127.0.0.1:0", true
	}
	worker := filepath.Join(binDir, "wa-worker")
	if o.worker != "" {
		worker = o.worker
	}
	cfg := fmt.Sprintf(`state_dir = %q
worker_binary = %q
log_level = "debug"
[api]
listen = %q
%s
[metrics]
listen = "127.0.0.1:0"
[whatsapp.emulator]
url = %q
%s
%s`, e.stateDir, worker, listen, o.api, e.emuURL, tm, o.extra)
	e.cfgPath = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.api = e.newAPI("unix:"+sock, "")
	e.http = &http.Client{Transport: e.conforming(&http.Transport{Proxy: nil})}
	if o.before != nil {
		o.before(e)
	}
	if !o.noStart {
		e.startSupervisor()
	}
	t.Cleanup(e.stop)
	return e
}

// startSupervisor runs wa-supervisor serve and waits for its ready line.
func (e *env) startSupervisor() {
	e.t.Helper()
	e.logs = &logBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "wa-supervisor"), "serve", "-config", e.cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.sup = cmd
	e.supDone = make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			e.logs.add(line)
			if strings.Contains(line, `"msg":"supervisor ready"`) {
				var v struct{ API, Metrics string }
				_ = json.Unmarshal([]byte(line), &v)
				ready <- v.API + " " + v.Metrics
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(e.supDone) }()
	select {
	case addrs := <-ready:
		api, metrics, _ := strings.Cut(addrs, " ")
		e.metricsURL = "http://" + metrics + "/metrics"
		if e.tcp {
			e.apiURL = "http://" + api
			e.api = e.newAPI(api, "")
		}
	case <-e.supDone:
		e.t.Fatalf("supervisor exited before ready:\n%s", e.logs.String())
	case <-time.After(90 * time.Second):
		// Generous: TestStartRacingTheBootKeepsTheCooldown boots 1,500
		// organizations under a storm of API calls, each restore a commit,
		// and needed 50-65 s on two loaded cores; the bound is for a boot
		// that hangs, not a measure of its speed (make bench has that).
		e.t.Fatalf("supervisor not ready:\n%s", e.logs.String())
	}
}

// stop ends the supervisor with SIGTERM, as systemd would, and checks that
// it exits 0 and leaves no worker behind.
func (e *env) stop() {
	if e.sup == nil {
		return
	}
	select {
	case <-e.supDone:
	default:
		_ = e.sup.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.supDone:
			if code := e.sup.ProcessState.ExitCode(); code != 0 && !e.t.Failed() {
				e.t.Errorf("supervisor exit code %d after SIGTERM", code)
			}
		case <-time.After(30 * time.Second):
			_ = e.sup.Process.Kill()
			<-e.supDone
			e.t.Errorf("supervisor did not stop within 30s of SIGTERM")
		}
	}
	e.sup = nil
	e.waitNoWorkers()
	// `make e2e` builds the supervisor with -race, which reports on stderr.
	if e.logs.contains("WARNING: DATA RACE") {
		e.t.Errorf("a data race was reported by a supervisor or worker")
	} else if bad := e.logs.notRecords(); len(bad) > 0 {
		e.t.Errorf("%d log lines are not one JSON record in the supervisor's shape, e.g. %q", len(bad), bad[0])
	}
	if e.t.Failed() {
		e.t.Logf("supervisor log:\n%s", e.logs.String())
	}
}

// killSupervisor SIGKILLs the supervisor, as a crash or OOM would.
func (e *env) killSupervisor() {
	e.t.Helper()
	_ = e.sup.Process.Kill()
	<-e.supDone
	e.sup = nil
}

// waitNoWorkers fails unless every worker PID seen is gone.
func (e *env) waitNoWorkers() {
	e.t.Helper()
	e.eventually(15*time.Second, "no worker process left", func() error {
		for pid := range e.pids {
			if alive(pid) {
				return fmt.Errorf("worker pid %d still running", pid)
			}
		}
		return nil
	})
}

// alive reports whether pid runs and is not a zombie waiting for its reaper.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func (e *env) eventually(timeout time.Duration, what string, check func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// throughout fails if bad becomes true before the deadline, which must be
// an instant the supervisor itself acts on (a ban's expiry): the way to
// check that nothing happens before it.
func (e *env) throughout(deadline time.Time, what string, bad func() bool) {
	e.t.Helper()
	for time.Now().Before(deadline) {
		if bad() {
			e.t.Fatalf("%s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) status(org string) state.Snapshot {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.api.Status(ctx, org)
	if err != nil {
		e.t.Fatalf("status %s: %v", org, err)
	}
	if s.WorkerPID != 0 {
		e.pids[s.WorkerPID] = true
	}
	return s
}

// waitStatus polls the status API until org is in want.
func (e *env) waitStatus(org string, want state.Status, timeout time.Duration) state.Snapshot {
	e.t.Helper()
	var s state.Snapshot
	e.eventually(timeout, fmt.Sprintf("%s to be %s", org, want), func() error {
		s = e.status(org)
		if s.Status != want {
			return fmt.Errorf("status is %s (last event %s, error %q)", s.Status, s.LastEvent, s.LastError)
		}
		return nil
	})
	return s
}

func (e *env) start(org string) state.Snapshot {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.api.Start(ctx, org)
	if err != nil {
		e.t.Fatalf("start %s: %v", org, err)
	}
	return s
}

// link starts org, scans its QR with the emulated phone and waits until it
// is connected; it returns the JID.
func (e *env) link(org, phone string) string {
	e.t.Helper()
	e.start(org)
	return e.scanQR(org, phone)
}

// scanQR waits for org's QR, scans it with the emulated phone and waits
// until the org is connected; it returns the JID.
func (e *env) scanQR(org, phone string) string {
	e.t.Helper()
	qr := e.waitStatus(org, state.QRRequired, 30*time.Second)
	if !strings.HasPrefix(qr.QR, "data:image/png;base64,") || qr.QRCode == "" || qr.QRExpiresAt == nil {
		e.t.Fatalf("QR status incomplete: %+v", qr)
	}
	var resp struct{ JID string }
	e.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": qr.QRCode, "phone": phone}, &resp)
	s := e.waitStatus(org, state.Connected, 30*time.Second)
	if !strings.HasPrefix(s.JID, phone) || s.QR != "" {
		e.t.Fatalf("connected with JID %q (want phone %s) and QR %q", s.JID, phone, s.QR)
	}
	return s.JID
}

// control calls the emulator's control API.
func (e *env) control(method, path string, body, out any) {
	e.t.Helper()
	if err := emuctl.New(e.emuURL).Do(context.Background(), method, path, body, out); err != nil {
		e.t.Fatal(err)
	}
}

// metric returns the value of the series name{labels...}, 0 if absent.
func (e *env) metric(name string, labels map[string]string) float64 {
	e.t.Helper()
	resp, err := http.Get(e.metricsURL)
	if err != nil {
		e.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatalf("parse metrics: %v", err)
	}
	fam, ok := families[name]
	if !ok {
		return 0
	}
next:
	for _, m := range fam.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// archives lists org's archived auth directories of one reason.
func (e *env) archives(org, reason string) []string {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.stateDir, "auth_sessions"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	var out []string
	prefix := org + "_" + reason + "_"
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), prefix) {
			out = append(out, en.Name())
		}
	}
	return out
}

// logBuffer keeps the supervisor's log lines for failure reports.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	from := max(0, len(b.lines)-300)
	return strings.Join(b.lines[from:], "\n")
}

// times returns the timestamps of the log lines that contain s.
func (b *logBuffer) times(s string) []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []time.Time
	for _, l := range b.lines {
		if !strings.Contains(l, s) {
			continue
		}
		var v struct{ Time time.Time }
		if json.Unmarshal([]byte(l), &v) == nil {
			out = append(out, v.Time)
		}
	}
	return out
}

// notRecords returns the lines that are not one JSON object with time,
// level and msg: what an interleaving of two writers, or a line printed in
// another shape, would leave.
func (b *logBuffer) notRecords() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var bad []string
	for _, l := range b.lines {
		var rec map[string]json.RawMessage
		if json.Unmarshal([]byte(l), &rec) != nil || rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			bad = append(bad, l)
		}
	}
	return bad
}

func (b *logBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// readyz is the daemon's readiness: nil or why not.
func (e *env) readyz() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.api.Ready(ctx)
}
