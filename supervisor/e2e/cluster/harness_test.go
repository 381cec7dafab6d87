// Package clustere2e runs three real supervisors (real workers, sandbox
// "require") as one cluster over a real etcd, with one WhatsApp emulator.
// This file is the harness; each capability's tests live in their own
// file of the package.
package clustere2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wa-sidecar/wa-sidecar/shared/contract"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster/etcdtest"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
)

// binDir holds wa-supervisor and wa-worker: `make e2e` passes bin/ in
// WA_SIDECAR_BIN; otherwise TestMain builds them.
var binDir string

func TestMain(m *testing.M) {
	binDir = os.Getenv("WA_SIDECAR_BIN")
	var cleanup func()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "wa-sidecar-cluster-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		for _, pkg := range []string{"supervisor/cmd/wa-supervisor", "worker/cmd/wa-worker"} {
			cmd := exec.Command("go", "build", "-o", dir, "github.com/wa-sidecar/wa-sidecar/"+pkg)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n", pkg, err)
				cleanup()
				os.Exit(1)
			}
		}
		binDir = dir
	}
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	os.Exit(code)
}

// APIKey is what the tests send to every node; node-to-node calls must
// carry the cluster key instead, which the harness never sends.
const APIKey = "test-api-key-for-the-cluster-e2e"

// ClusterKey is the nodes' shared key.
const ClusterKey = "test-cluster-key-0123456789abcdef"

// timings are short so that the suite stays under two minutes.
const timings = `
[workers]
max_live = 5
start_gap = "200ms"
start_jitter = ["0s", "50ms"]
health_interval = "1s"
crash_backoff = ["300ms", "2s"]
crash_limit = 5
stop_timeout = "3s"
sandbox = "require"

[logout]
cooldown = "4s"

[messages]
min_interval = "200ms"
per_minute = 600
jitter = ["0s", "0s"]
daily_limit = 0
`

// Env is one etcd, one emulator and the cluster's nodes.
type Env struct {
	T      *testing.T
	Dir    string
	Etcd   *etcdtest.Server
	Emu    *emulator.Server
	EmuURL string
	Nodes  []*Node

	mu      sync.Mutex
	supPIDs map[int]bool // every supervisor PID ever started, to match workers to
}

// Node is one supervisor of the cluster.
type Node struct {
	env      *Env
	Name     string
	StateDir string
	CfgPath  string
	// URL is the API's base URL, MetricsURL the scrape URL; both change
	// when the node restarts (kernel-chosen ports).
	URL        string
	MetricsURL string
	Logs       *LogBuffer

	cmd  *exec.Cmd
	done chan struct{}
}

// Options change what NewEnv sets up.
type Options struct {
	// Nodes is how many supervisors; 0 = 3.
	Nodes int
	// Extra is appended to every node's config.
	Extra string
	// Capacity is each node's cluster.capacity; 0 = 10.
	Capacity int
}

// NewEnv starts etcd, the emulator and the nodes n1, n2, n3 (all ready).
func NewEnv(t *testing.T, o Options) *Env {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Capacity == 0 {
		o.Capacity = 10
	}
	e := &Env{T: t, Dir: t.TempDir(), supPIDs: map[int]bool{}}
	e.Etcd = etcdtest.Start(t)

	emu, err := emulator.New(emulator.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = emu.Serve(ln) }()
	e.Emu, e.EmuURL = emu, "http://"+ln.Addr().String()
	t.Cleanup(func() { emu.Close() })

	keyPath := filepath.Join(e.Dir, "cluster.key")
	apiKeyPath := filepath.Join(e.Dir, "api.key")
	for p, k := range map[string]string{keyPath: ClusterKey, apiKeyPath: APIKey} {
		if err := os.WriteFile(p, []byte(k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= o.Nodes; i++ {
		n := &Node{env: e, Name: fmt.Sprintf("n%d", i)}
		dir := filepath.Join(e.Dir, n.Name)
		n.StateDir = filepath.Join(dir, "state")
		cfg := fmt.Sprintf(`state_dir = %q
worker_binary = %q
log_level = "debug"
[api]
listen = "127.0.0.1:0"
api_key_file = %q
[metrics]
listen = "127.0.0.1:0"
[whatsapp.emulator]
url = %q
[cluster]
etcd = [%q]
node = %q
capacity = %d
key_file = %q
lease_ttl = "2s"
%s
%s`, n.StateDir, filepath.Join(binDir, "wa-worker"), apiKeyPath, e.EmuURL, e.Etcd.URL, n.Name, o.Capacity, keyPath, timings, o.Extra)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		n.CfgPath = filepath.Join(dir, "config.toml")
		if err := os.WriteFile(n.CfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		e.Nodes = append(e.Nodes, n)
	}
	// Stopped in reverse order of the cleanups: the nodes before etcd.
	t.Cleanup(func() {
		for _, n := range e.Nodes {
			n.Stop()
		}
		e.WaitNoWorkers()
	})
	for _, n := range e.Nodes {
		n.Start()
	}
	e.WaitMembers(o.Nodes)
	return e
}

// Node returns the node named name.
func (e *Env) Node(name string) *Node {
	for _, n := range e.Nodes {
		if n.Name == name {
			return n
		}
	}
	e.T.Fatalf("no node %s", name)
	return nil
}

// Start runs the node's supervisor and waits for its ready line.
func (n *Node) Start() {
	t := n.env.T
	t.Helper()
	n.Logs = &LogBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "wa-supervisor"), "serve", "-config", n.CfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.env.mu.Lock()
	n.env.supPIDs[cmd.Process.Pid] = true
	n.env.mu.Unlock()
	n.cmd, n.done = cmd, make(chan struct{})
	ready := make(chan [2]string, 1)
	logs := n.Logs
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logs.add(line)
			if strings.Contains(line, `"msg":"supervisor ready"`) {
				var v struct{ API, Metrics string }
				_ = json.Unmarshal([]byte(line), &v)
				ready <- [2]string{v.API, v.Metrics}
			}
		}
	}()
	done := n.done
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case a := <-ready:
		n.URL, n.MetricsURL = "http://"+a[0], "http://"+a[1]+"/metrics"
	case <-done:
		t.Fatalf("node %s exited before ready:\n%s", n.Name, n.Logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("node %s not ready:\n%s", n.Name, n.Logs)
	}
}

// Running reports whether the node's supervisor runs.
func (n *Node) Running() bool { return n.cmd != nil }

// Kill SIGKILLs the node's supervisor, as a crash would; its workers die
// with it (Pdeathsig).
func (n *Node) Kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

// Stop ends the node with SIGTERM, as systemd would, and checks it exits 0
// with every log line in the supervisor's shape.
func (n *Node) Stop() {
	t := n.env.T
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		if code := n.cmd.ProcessState.ExitCode(); code != 0 && !t.Failed() {
			t.Errorf("node %s exit code %d after SIGTERM", n.Name, code)
		}
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		t.Errorf("node %s did not stop within 30s of SIGTERM", n.Name)
	}
	n.cmd = nil
	if n.Logs.contains("WARNING: DATA RACE") {
		t.Errorf("node %s: a data race was reported", n.Name)
	} else if bad := n.Logs.notRecords(); len(bad) > 0 {
		t.Errorf("node %s: %d log lines are not one JSON record, e.g. %q", n.Name, len(bad), bad[0])
	}
	if t.Failed() {
		t.Logf("node %s log:\n%s", n.Name, n.Logs)
	}
}

// Response is an API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Code is the error code of an error answer.
func (r Response) Code() string {
	var b struct{ Code string }
	_ = json.Unmarshal(r.Body, &b)
	return b.Code
}

// Do calls the node's API with the API key.
func (n *Node) Do(method, path string, body any) Response {
	return n.DoWith(method, path, body, map[string]string{"x-api-key": APIKey})
}

// DoWith calls the node's API with the given headers only.
func (n *Node) DoWith(method, path string, body any, headers map[string]string) Response {
	t := n.env.T
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("node %s %s %s: %v", n.Name, method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Status is GET /v1/orgs/{org} through n; it fails the test unless 200.
func (n *Node) Status(org string) state.Snapshot {
	t := n.env.T
	t.Helper()
	r := n.Do(http.MethodGet, "/v1/orgs/"+org, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("status of %s through %s: %d %s", org, n.Name, r.Status, r.Body)
	}
	var s state.Snapshot
	r.JSON(t, &s)
	return s
}

// List is GET /v1/orgs through n.
func (n *Node) List() []state.Snapshot {
	t := n.env.T
	t.Helper()
	r := n.Do(http.MethodGet, "/v1/orgs", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("list through %s: %d %s", n.Name, r.Status, r.Body)
	}
	var s []state.Snapshot
	r.JSON(t, &s)
	return s
}

// HasMetric reports whether n exposes at least one series of the family.
func (n *Node) HasMetric(name string) bool {
	n.env.T.Helper()
	fam, ok := n.families()[name]
	return ok && len(fam.Metric) > 0
}

func (n *Node) families() map[string]*dto.MetricFamily {
	t := n.env.T
	t.Helper()
	resp, err := http.Get(n.MetricsURL)
	if err != nil {
		t.Fatalf("scrape %s: %v", n.Name, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics of %s: %v", n.Name, err)
	}
	return families
}

// Metric returns the value of the series name{labels} on n, 0 if absent.
func (n *Node) Metric(name string, labels map[string]string) float64 {
	t := n.env.T
	t.Helper()
	fam, ok := n.families()[name]
	if !ok {
		return 0
	}
next:
	for _, m := range fam.Metric {
		for _, l := range m.Label {
			if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	return 0
}

// Owner is orgs/<org> as the answer's X-Wa-Sidecar-Node header names it.
func (n *Node) Owner(org string) string {
	n.env.T.Helper()
	return n.Do(http.MethodGet, "/v1/orgs/"+org, nil).Header.Get(cluster.NodeHeader)
}

// StartOrg is POST /v1/orgs/{org}/start through n; it fails unless 2xx.
func (n *Node) StartOrg(org string) state.Snapshot {
	t := n.env.T
	t.Helper()
	r := n.Do(http.MethodPost, "/v1/orgs/"+org+"/start", nil)
	if r.Status/100 != 2 {
		t.Fatalf("start %s through %s: %d %s", org, n.Name, r.Status, r.Body)
	}
	var s state.Snapshot
	r.JSON(t, &s)
	return s
}

// Eventually polls check until it returns nil or the timeout passes.
func (e *Env) Eventually(timeout time.Duration, what string, check func() error) {
	e.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitStatus polls org through n until it is in want.
func (n *Node) WaitStatus(org string, want state.Status, timeout time.Duration) state.Snapshot {
	n.env.T.Helper()
	var s state.Snapshot
	n.env.Eventually(timeout, fmt.Sprintf("%s to be %s (through %s)", org, want, n.Name), func() error {
		s = n.Status(org)
		if s.Status != want {
			return fmt.Errorf("status is %s (last event %s, error %q)", s.Status, s.LastEvent, s.LastError)
		}
		return nil
	})
	return s
}

// Link starts org through n, scans its QR with phone and waits until it
// is connected; it returns the JID.
func (n *Node) Link(org, phone string) string {
	t := n.env.T
	t.Helper()
	n.StartOrg(org)
	qr := n.WaitStatus(org, state.QRRequired, 30*time.Second)
	var resp struct{ JID string }
	n.env.Control(http.MethodPost, "/control/scan", map[string]string{"qr_code": qr.QRCode, "phone": phone}, &resp)
	s := n.WaitStatus(org, state.Connected, 30*time.Second)
	if !strings.HasPrefix(s.JID, phone) {
		t.Fatalf("%s connected with JID %q, want phone %s", org, s.JID, phone)
	}
	return s.JID
}

// Control calls the emulator's control API.
func (e *Env) Control(method, path string, body, out any) {
	e.T.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.EmuURL+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatalf("emulator %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		e.T.Fatalf("emulator %s %s: %s %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.T.Fatalf("emulator %s %s: %v in %s", method, path, err, b)
		}
	}
}

// WaitMembers waits until every running node reaches etcd and counts
// want live members.
func (e *Env) WaitMembers(want int) {
	e.T.Helper()
	e.Eventually(20*time.Second, fmt.Sprintf("%d live members on every node", want), func() error {
		for _, n := range e.Nodes {
			if !n.Running() {
				continue
			}
			if up := n.Metric("wa_sidecar_cluster_etcd_up", nil); up != 1 {
				return fmt.Errorf("node %s does not reach etcd", n.Name)
			}
			if got := n.Metric("wa_sidecar_cluster_members", nil); int(got) != want {
				return fmt.Errorf("node %s sees %v members", n.Name, got)
			}
		}
		return nil
	})
}

// Workers maps each organization to the live worker processes of every
// supervisor this harness started, killed ones included (a worker that
// outlived its supervisor would still hold the session).
func (e *Env) Workers() map[string][]int {
	e.mu.Lock()
	sups := make(map[int]bool, len(e.supPIDs))
	for p := range e.supPIDs {
		sups[p] = true
	}
	e.mu.Unlock()
	out := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(wa-worker") {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) < 1 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		var org string
		var sup int
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "WA_SIDECAR_ORG="); ok {
				org = v
			}
			if v, ok := strings.CutPrefix(kv, contract.SupervisorPIDEnv+"="); ok {
				sup, _ = strconv.Atoi(v)
			}
		}
		if org != "" && sups[sup] {
			out[org] = append(out[org], pid)
		}
	}
	return out
}

// Sampler watches the worker processes of all nodes every few
// milliseconds for as long as a test runs, and remembers any moment one
// organization had two of them.
type Sampler struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples int
	twice   []string
}

// SampleWorkers starts a Sampler; Finish stops it and fails the test if
// an organization ever ran twice.
func (e *Env) SampleWorkers() *Sampler {
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			w := e.Workers()
			s.mu.Lock()
			s.samples++
			for org, pids := range w {
				if len(pids) > 1 && len(s.twice) < 10 {
					s.twice = append(s.twice, fmt.Sprintf("%s in pids %v", org, pids))
				}
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return s
}

// Finish stops the sampling and fails the test if an organization ran in
// two worker processes at one moment.
func (s *Sampler) Finish(t *testing.T) {
	t.Helper()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples < 10 {
		t.Errorf("only %d samples of the worker processes were taken", s.samples)
	}
	if len(s.twice) > 0 {
		t.Errorf("an organization ran in two worker processes at once: %v", s.twice)
	}
}

// WaitNoWorkers fails unless every worker of the harness's supervisors is gone.
func (e *Env) WaitNoWorkers() {
	e.T.Helper()
	e.Eventually(20*time.Second, "no worker process left", func() error {
		if w := e.Workers(); len(w) > 0 {
			return fmt.Errorf("workers still running: %v", w)
		}
		return nil
	})
}

// LogBuffer keeps a node's log lines.
type LogBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *LogBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	from := max(0, len(b.lines)-300)
	return strings.Join(b.lines[from:], "\n")
}

// Contains reports whether a line holds s.
func (b *LogBuffer) Contains(s string) bool { return b.contains(s) }

func (b *LogBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func (b *LogBuffer) notRecords() []string {
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
