package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// buildProbeWorker builds wa-worker with -tags sandboxprobe: at Start,
// once its sandbox is in force, it tries every target of the probe file
// next to state_dir and logs each result (worker/session/probe_sandboxprobe.go).
// Without cgo, as `make build` builds the real worker.
func buildProbeWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wa-worker")
	cmd := exec.Command("go", "build", "-tags", "sandboxprobe", "-o", bin, "github.com/wa-sidecar/wa-sidecar/worker/cmd/wa-worker")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the probe worker: %v\n%s", err, out)
	}
	return bin
}

// probeResults are org's "sandbox probe" log lines: target -> the result
// of every try, in order.
func (e *env) probeResults(org string) map[string][]string {
	e.logs.mu.Lock()
	defer e.logs.mu.Unlock()
	out := map[string][]string{}
	for _, l := range e.logs.lines {
		var v struct{ Org, Msg, Target, Result string }
		if json.Unmarshal([]byte(l), &v) == nil && v.Org == org && v.Msg == "sandbox probe" {
			out[v.Target] = append(out[v.Target], v.Result)
		}
	}
	return out
}

// A worker under sandbox = "require" opens its own store and is refused,
// from inside its own process, everything else the host holds: another
// organization's store, the supervisor's database (message texts, proxy
// passwords), the API key, the configuration, /etc, the API's unix socket,
// another worker's plugin socket, a TCP port it has no business with. The same after a kill -9 restart.
func TestSandboxConfinesTheWorker(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{worker: buildProbeWorker(t)})
	keyFile := filepath.Join(e.dir, "api.key")
	if err := os.WriteFile(keyFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	metrics, err := url.Parse(e.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	denied := []string{
		"file:" + filepath.Join(e.stateDir, "auth_sessions", "alpha", "whatsmeow.db"),
		"file:" + filepath.Join(e.stateDir, "supervisor", "state.db"),
		"file:" + keyFile,
		"file:" + e.cfgPath,
		"file:/etc/passwd",
		"unix:" + filepath.Join(e.dir, "api.sock"),
		"tcp:" + metrics.Host,
	}
	own := "file:" + filepath.Join(e.stateDir, "auth_sessions", "beta", "whatsmeow.db")

	// alpha runs first, so beta's list can name alpha's plugin socket.
	e.link("alpha", "573001110001")
	socks, err := filepath.Glob(filepath.Join(e.stateDir, "run", "plugin*"))
	if err != nil || len(socks) != 1 {
		t.Fatalf("alpha's plugin socket: %v %v", socks, err)
	}
	denied = append(denied, "unix:"+socks[0])
	probe := strings.Join(denied, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(e.dir, "sandbox-probe.txt"), []byte(probe), 0o600); err != nil {
		t.Fatal(err)
	}
	e.link("beta", "573001110002")
	check := func(starts int) {
		t.Helper()
		got := e.probeResults("beta")
		for _, target := range denied {
			if len(got[target]) != starts {
				t.Fatalf("%s tried %d times, want %d:\n%s", target, len(got[target]), starts, e.logs.String())
			}
			for _, r := range got[target] {
				if r != "EACCES" {
					t.Errorf("beta's worker opened %s: %s, want EACCES", target, r)
				}
			}
		}
		if r := got[own]; len(r) != starts || r[starts-1] != "ok" {
			t.Errorf("beta's own store: %v, want ok", r)
		}
		s := e.status("beta")
		if !strings.HasPrefix(s.Sandbox, "landlock abi ") || !strings.Contains(s.Sandbox, "fs, net") || !strings.Contains(s.Sandbox, "seccomp") {
			t.Errorf("status sandbox = %q, want landlock fs and net and seccomp", s.Sandbox)
		}
		proc, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.WorkerPID))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2"} {
			if !strings.Contains(string(proc), want) {
				t.Errorf("worker %d's /proc status lacks %q", s.WorkerPID, want)
			}
		}
	}
	check(1)
	if r := e.probeResults("alpha")[denied[0]]; len(r) != 1 || r[0] != "ok" {
		t.Errorf("alpha's own store from alpha: %v, want ok", r)
	}

	old := e.status("beta").WorkerPID
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "beta's new worker connected", func() error {
		if s := e.status("beta"); s.Status != state.Connected || s.WorkerPID == old {
			return fmt.Errorf("status %s pid %d", s.Status, s.WorkerPID)
		}
		return nil
	})
	check(2)

	// Linked and reconnected under the sandbox: its store works.
	e.stop()
	checkPrivate(t, e.stateDir)
	// The workers could not remove their sockets; the supervisor did.
	if left, err := os.ReadDir(filepath.Join(e.stateDir, "run")); err != nil || len(left) != 0 {
		t.Errorf("state_dir/run after the stop: %v (%v)", left, err)
	}
}

// checkPrivate fails for anything under dir that the group or others may
// read, write or enter, whatever the umask the processes ran with.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by group or others", path, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sandbox = "require" on a kernel without what it needs (simulated: the
// probe build insists on Landlock ABI 99) starts no session: the worker
// refuses before it opens its store, and the status says why.
func TestSandboxRequireRefusesAnUnfitKernel(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{worker: buildProbeWorker(t), set: map[string]string{"crash_limit = 5": "crash_limit = 1"}})
	if err := os.WriteFile(filepath.Join(e.dir, "sandbox-probe.txt"), []byte("require-abi:99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.start("unfit")
	s := e.waitStatus("unfit", state.Failed, 30*time.Second)
	for _, want := range []string{`sandbox = "require"`, "needs ABI 99", `"best_effort"`} {
		if !strings.Contains(s.LastError, want) {
			t.Errorf("last_error %q lacks %q", s.LastError, want)
		}
	}
	if s.QR != "" || s.Sandbox != "" {
		t.Errorf("refused worker: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(e.stateDir, "auth_sessions", "unfit", "whatsmeow.db")); !os.IsNotExist(err) {
		t.Errorf("the refused worker opened its store: %v", err)
	}
}
