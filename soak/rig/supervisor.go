package rig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds on the supervisor's own steps. stopGrace is systemd's
// TimeoutStopSec in the unit.
const (
	readyTimeout = 30 * time.Second
	stopGrace    = 30 * time.Second
)

// process is one lifetime of the supervisor.
type process struct {
	cmd        *exec.Cmd
	done       chan struct{}
	expected   atomic.Bool // the soak caused the exit: not a crash
	metricsURL string
	lifetime   int
	log        *os.File
}

// StartSupervisor runs `wa-supervisor serve` on the rig's config and waits
// for its ready line, which names the metrics address the kernel chose.
// Its log goes to Dir/supervisor-<lifetime>.log.
func (r *Rig) StartSupervisor(ctx context.Context) error {
	r.mu.Lock()
	r.lifetime++
	n := r.lifetime
	r.mu.Unlock()
	logFile, err := os.Create(filepath.Join(r.Dir, fmt.Sprintf("supervisor-%d.log", n)))
	if err != nil {
		return fmt.Errorf("supervisor log: %w", err)
	}
	ready := make(chan string, 1)
	cmd := exec.Command(filepath.Join(r.binDir, "wa-supervisor"), "serve", "-config", r.cfgPath)
	cmd.Stderr = &lineWriter{out: logFile, ready: ready}
	// Its own process group: a Ctrl-C on the terminal reaches the soak,
	// which then stops the supervisor itself, instead of both at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start wa-supervisor: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), lifetime: n, log: logFile}
	go r.reap(p)
	select {
	case line := <-ready:
		var v struct{ Metrics string }
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Metrics == "" {
			r.abandon(p)
			return fmt.Errorf("supervisor ready line without a metrics address: %q", line)
		}
		p.metricsURL = "http://" + v.Metrics + "/metrics"
	case <-p.done:
		return fmt.Errorf("supervisor (lifetime %d) exited before it was ready: %s; see %s", n, cmd.ProcessState, logFile.Name())
	case <-time.After(readyTimeout):
		r.abandon(p)
		return fmt.Errorf("supervisor (lifetime %d) not ready within %s; see %s", n, readyTimeout, logFile.Name())
	case <-ctx.Done():
		r.abandon(p)
		return fmt.Errorf("start supervisor: %w", context.Cause(ctx))
	}
	r.mu.Lock()
	r.sup = p
	r.mu.Unlock()
	return nil
}

// reap waits for the process and reports an exit the soak did not cause.
func (r *Rig) reap(p *process) {
	err := p.cmd.Wait()
	p.log.Close()
	close(p.done)
	if p.expected.Load() {
		return
	}
	select {
	case r.died <- fmt.Errorf("the supervisor (lifetime %d, pid %d) exited by itself: %v; see %s",
		p.lifetime, p.cmd.Process.Pid, err, p.log.Name()):
	default:
	}
}

// abandon kills a supervisor that never became ready.
func (r *Rig) abandon(p *process) {
	p.expected.Store(true)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Died reports a supervisor exit the soak did not cause.
func (r *Rig) Died() <-chan error { return r.died }

// Current is the running supervisor's PID, metrics URL and lifetime
// number (1 for the first start); ok is false between a stop and a start.
func (r *Rig) Current() (pid int, metricsURL string, lifetime int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sup == nil {
		return 0, "", 0, false
	}
	return r.sup.cmd.Process.Pid, r.sup.metricsURL, r.sup.lifetime, true
}

func (r *Rig) running() bool {
	_, _, _, ok := r.Current()
	return ok
}

// detach takes the running supervisor out of the rig before it is stopped,
// so that nothing samples or counts a process on its way out.
func (r *Rig) detach() (*process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.sup
	if p == nil {
		return nil, errors.New("no supervisor is running")
	}
	r.sup = nil
	p.expected.Store(true)
	return p, nil
}

// StopSupervisor sends SIGTERM, as systemd does, and requires exit status
// 0 within systemd's grace and no worker left behind.
func (r *Rig) StopSupervisor(ctx context.Context) error {
	p, err := r.detach()
	if err != nil {
		return err
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM the supervisor: %w", err)
	}
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("the supervisor (lifetime %d) did not stop within %s of SIGTERM; see %s", p.lifetime, stopGrace, p.log.Name())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("the supervisor (lifetime %d) exited %d after SIGTERM; see %s", p.lifetime, code, p.log.Name())
	}
	return r.waitWorkersGone(ctx, p.lifetime)
}

// KillSupervisor sends SIGKILL, as a crash or the OOM killer would, and
// requires its workers to die with it.
func (r *Rig) KillSupervisor(ctx context.Context) error {
	p, err := r.detach()
	if err != nil {
		return err
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("SIGKILL the supervisor: %w", err)
	}
	<-p.done
	return r.waitWorkersGone(ctx, p.lifetime)
}

// lineWriter keeps the supervisor's stderr in its log file and hands the
// ready line over once.
type lineWriter struct {
	out     *os.File
	ready   chan<- string
	partial []byte
	once    sync.Once
}

// readyMarker is how the supervisor's ready record starts its message.
var readyMarker = []byte(`"msg":"supervisor ready"`)

func (w *lineWriter) Write(b []byte) (int, error) {
	if _, err := w.out.Write(b); err != nil {
		return 0, fmt.Errorf("supervisor log: %w", err)
	}
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i]
		if bytes.Contains(line, readyMarker) {
			l := string(line)
			w.once.Do(func() { w.ready <- l })
		}
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}
