package rig

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process whose stdout and stderr are read line by line
// into one pipe: the lines tell when it is ready, and the last ones go into
// any error about it.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	tail *tail
}

// start runs cmd and returns once one of its lines satisfies ready, with
// that line; it fails, killing the process, if the process exits first or
// ctx ends.
func start(ctx context.Context, name string, cmd *exec.Cmd, ready func(line string) bool) (*proc, string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// A wa-bench killed outright must not leave a supervisor or its
	// sessions behind: the kernel sends SIGTERM when the parent dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	// The child holds its own copy; ours would keep the pipe from ever
	// reaching EOF.
	w.Close()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), tail: &tail{}}
	go func() { _ = cmd.Wait(); close(p.done) }()
	readyLine := make(chan string, 1)
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			p.tail.add(line)
			if !found && ready(line) {
				found = true
				readyLine <- line
			}
		}
	}()
	select {
	case line := <-readyLine:
		return p, line, nil
	case <-p.done:
		// Its last lines, which say why, may still be in the pipe; a
		// grandchild holding the pipe open must not hold this up.
		select {
		case <-eof:
		case <-time.After(time.Second):
		}
		return nil, "", fmt.Errorf("%s exited (%s) before it was ready; its last lines:\n%s", name, cmd.ProcessState, p.tail)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-p.done
		return nil, "", fmt.Errorf("%s not ready: %w; its last lines:\n%s", name, ctx.Err(), p.tail)
	}
}

// stop sends SIGTERM, as systemd would, and waits up to grace for the exit;
// then it kills. A clean stop is exit code 0.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("%s did not exit within %s of SIGTERM; killed. Its last lines:\n%s", p.name, grace, p.tail)
		}
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited with code %d; its last lines:\n%s", p.name, code, p.tail)
	}
	return nil
}

// WaitExited waits until none of pids runs any more (a zombie not yet
// reaped counts as exited) and fails after timeout naming one that still
// runs.
func WaitExited(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d still runs %s after the stop", pid, timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// alive reads the state letter of /proc/<pid>/stat, which follows the
// command name in parentheses (itself possibly holding spaces).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// tail keeps the last lines a process wrote.
type tail struct {
	mu    sync.Mutex
	lines []string
}

const tailLines = 40

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 2*tailLines {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-tailLines:]...)
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines[max(0, len(t.lines)-tailLines):], "\n")
}
