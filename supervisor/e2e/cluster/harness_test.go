// Package clustere2e runs three real supervisors (real workers, sandbox
// "require") as one cluster over a real etcd, with one WhatsApp emulator.
// This file is the harness; each capability's tests live in their own
// file of the package.
package clustere2e

import (
	"bufio"
	"encoding/json"
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

	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster/etcdtest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/e2e/binaries"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
)

// binDir holds wa-supervisor and wa-worker: `make e2e` passes bin/ in
// WA_SIDECAR_BIN; otherwise TestMain builds them.
var binDir string

func TestMain(m *testing.M) { binaries.Main(m, &binDir) }

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

	// api calls the nodes' APIs, checking every answer against openapi.json.
	api *http.Client

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
	e.api = e.newAPIClient()
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
