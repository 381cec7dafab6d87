package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests start real wa-worker processes. None of them calls Start, so
// no worker ever dials WhatsApp: Ping answers from the process itself.

const (
	// parentEnv turns the test binary into the "supervisor" of the
	// Pdeathsig test; binaryEnv tells it which worker to launch.
	parentEnv = "LAUNCHER_TEST_PARENT"
	binaryEnv = "LAUNCHER_TEST_WORKER"
)

// workerBin is the wa-worker built once for the whole package.
var workerBin string

func TestMain(m *testing.M) {
	if os.Getenv(parentEnv) == "1" {
		helperParent()
		return
	}
	os.Exit(buildAndRun(m))
}

// buildAndRun is separate from TestMain so the deferred cleanup runs before
// os.Exit.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "launcher-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	workerBin = filepath.Join(dir, "wa-worker")
	build := exec.Command("go", "build", "-o", workerBin, "github.com/wa-sidecar/wa-sidecar/worker/cmd/wa-worker")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build wa-worker:", err)
		return 1
	}
	return m.Run()
}

// helperParent plays a supervisor that launches one worker, reports its PID
// on stdout and then waits to be SIGKILLed by the test.
func helperParent() {
	dir, err := os.MkdirTemp("", "launcher-parent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper parent:", err)
		os.Exit(1)
	}
	l, err := New(Options{Binary: os.Getenv(binaryEnv), Log: os.Stderr, SocketDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper parent:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := l.Launch(ctx, "pdeathsig")
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper parent:", err)
		os.Exit(1)
	}
	fmt.Println(p.PID())
	select {}
}

// copyWorker gives a test its own copy of the worker binary, so it may
// replace it without disturbing other tests.
func copyWorker(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(workerBin)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "wa-worker")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func newLauncher(t *testing.T, bin string, log io.Writer) *Launcher {
	t.Helper()
	l, err := New(Options{Binary: bin, Log: log, SocketDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func launch(t *testing.T, l *Launcher, org string) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := l.Launch(ctx, org)
	if err != nil {
		t.Fatalf("launch %s: %v", org, err)
	}
	// A failing test must not leave a worker behind; Kill is idempotent.
	t.Cleanup(p.Kill)
	return p
}

// procState is the state letter in /proc/<pid>/stat, or "" if the process
// no longer exists.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name is in parentheses and may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// waitGone polls until pid no longer runs. A zombie counts as gone: once a
// worker's parent is dead it is reparented, and whoever reaps it is not ours.
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := procState(pid)
		if st == "" || st == "Z" || st == "X" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %d still running (state %s) after %s", pid, st, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// workerChildren lists our child processes running path, found through
// /proc since a cancelled Launch never hands out the PID.
func workerChildren(t *testing.T, path string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		// Fields after the name: state, ppid, ...
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == path {
			out = append(out, pid)
		}
	}
	return out
}

func TestNewRefusesWhatIsNotAnExecutable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-worker")
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"missing": missing, "directory": dir, "not executable": plain} {
		t.Run(name, func(t *testing.T) {
			l, err := New(Options{Binary: path, Log: io.Discard, SocketDir: t.TempDir()})
			if err == nil {
				t.Fatalf("New(%s) accepted: %+v", path, l)
			}
			// The operator has to know which path was wrong.
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name %s: %v", path, err)
			}
		})
	}
	if _, err := New(Options{Binary: missing, Log: io.Discard, SocketDir: t.TempDir()}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing binary: want ErrNotExist in the chain, got %v", err)
	}
}

func TestLaunchPingKill(t *testing.T) {
	l := newLauncher(t, workerBin, io.Discard)
	p := launch(t, l, "ping")
	if p.PID() <= 0 {
		t.Fatalf("PID %d", p.PID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Ping answers from the worker process itself, so its PID is the one
	// go-plugin started, not some intermediate.
	if int(resp.Pid) != p.PID() {
		t.Fatalf("ping pid %d, process pid %d", resp.Pid, p.PID())
	}
	if resp.RssBytes <= 0 {
		t.Fatalf("rss %d", resp.RssBytes)
	}
	if resp.Connected {
		t.Fatal("a worker that was never started reports connected")
	}
	if p.client.Exited() {
		t.Fatal("exited before Kill")
	}

	p.Kill()
	waitGone(t, p.PID(), 10*time.Second)
	if !p.client.Exited() {
		t.Fatal("Exited false after Kill")
	}
	p.Kill() // must neither panic on the closed channel nor block
}

// The checksum is taken once, when the supervisor starts: a binary replaced
// under a running supervisor is refused with a sentence instead of run.
func TestReplacedBinaryIsRefused(t *testing.T) {
	bin := copyWorker(t)
	l := newLauncher(t, bin, io.Discard)
	first := launch(t, l, "replaced")
	first.Kill()
	waitGone(t, first.PID(), 10*time.Second)

	// A script with another checksum that would exec the real worker,
	// renamed into place as an install would.
	script := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\"\n", workerBin)
	tmp := bin + ".new"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := l.Launch(ctx, "replaced")
	if err == nil {
		p.Kill()
		t.Fatal("a replaced worker binary was launched")
	}
	if !strings.Contains(err.Error(), "changed since the supervisor started; restart the supervisor") {
		t.Fatalf("error %q does not say what to do", err)
	}
	if left := workerChildren(t, bin); len(left) != 0 {
		t.Fatalf("workers left behind: %v", left)
	}
}

func TestLaunchWithCancelledContext(t *testing.T) {
	bin := copyWorker(t)
	l := newLauncher(t, bin, io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := l.Launch(ctx, "cancelled")
	if p != nil {
		p.Kill()
		t.Fatal("Launch with a cancelled context returned a process")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if left := workerChildren(t, bin); len(left) != 0 {
		t.Fatalf("workers left behind: %v", left)
	}
}

// A launch cancelled at any moment (before the fork, during go-plugin's
// handshake, after it) returns only once no process of it is left: the
// fleet frees the slot on that answer, so a worker still alive then would
// break the cap on live workers.
func TestCancelledLaunchLeavesNoProcess(t *testing.T) {
	bin := copyWorker(t)
	l := newLauncher(t, bin, io.Discard)
	cancelled := 0
	for _, after := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
		20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond} {
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(after, cancel)
		p, err := l.Launch(ctx, "cancelled")
		timer.Stop()
		cancel()
		if err == nil {
			p.Kill()
		} else {
			cancelled++
			t.Logf("cancelled after %s", after)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled after %s: %v", after, err)
			}
		}
		if left := workerChildren(t, bin); len(left) != 0 {
			t.Fatalf("cancelled after %s (err %v): workers left behind: %v", after, err, left)
		}
	}
	if cancelled == 0 {
		t.Fatal("no launch was cancelled in time; the test checked nothing")
	}
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// TestWorkerDiesWithItsSupervisor SIGKILLs a separate "supervisor" process
// (this test binary in helper mode): a worker that outlives it would be an
// orphan holding a WhatsApp session.
func TestWorkerDiesWithItsSupervisor(t *testing.T) {
	// As a child subreaper this test inherits the orphaned worker, so it can
	// reap it and read how it ended. That tells Pdeathsig (SIGKILL) from the
	// worker's own parent watch (exit status 1), which would also pass a
	// plain "gone within 5 s" check.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", e)
	}
	t.Cleanup(func() { syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0) })

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(self)
	parent.Env = append(os.Environ(), parentEnv+"=1", binaryEnv+"="+workerBin)
	parent.Stderr = os.Stderr
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = parent.Process.Kill(); _ = parent.Wait() })

	// The PID line arrives once the worker answered go-plugin's handshake.
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	var pid int
	select {
	case s := <-line:
		if pid, err = strconv.Atoi(s); err != nil || pid <= 0 {
			t.Fatalf("helper parent printed %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper parent never reported its worker")
	}
	// If the test fails before the worker is reaped, it must not leak.
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if st := procState(pid); st == "" || st == "Z" {
		t.Fatalf("worker %d not running before the kill (state %q)", pid, st)
	}

	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()

	// ECHILD means the worker has not been reparented to us yet.
	deadline := time.Now().Add(5 * time.Second)
	var ws syscall.WaitStatus
	for {
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid {
			reaped = true
			break
		}
		if err != nil && !errors.Is(err, syscall.ECHILD) && !errors.Is(err, syscall.EINTR) {
			t.Fatalf("wait4 %d: %v", pid, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %d still running 5 s after its supervisor was killed (state %q)", pid, procState(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("worker ended with %v (exit %d), not by Pdeathsig's SIGKILL", ws, ws.ExitStatus())
	}
}
