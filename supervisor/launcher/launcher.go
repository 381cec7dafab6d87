// Package launcher starts worker processes over go-plugin: one plugin client
// per organization, never Managed, each with a fresh SecureConfig, and bound
// to the supervisor's life with Pdeathsig.
package launcher

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/wa-sidecar/wa-sidecar/shared/contract"
)

// Launcher starts wa-worker binaries.
type Launcher struct {
	binary string
	// stderr receives the workers' own log lines (JSON, already tagged with
	// org=), so they land in the supervisor's log stream unchanged.
	stderr io.Writer
	logger hclog.Logger
}

// New returns a Launcher for the worker binary at path. The binary must exist
// now; its checksum is taken again at every launch so that a rebuilt binary
// is picked up by the next restart rather than refused.
func New(path string, stderr io.Writer) (*Launcher, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("worker binary %s: %w", path, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("worker binary: %w (run `make build`, or set worker_binary)", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("worker binary %s is not an executable file", abs)
	}
	return &Launcher{
		binary: abs,
		stderr: stderr,
		// go-plugin's own messages: only problems are worth a line.
		logger: hclog.New(&hclog.LoggerOptions{Name: "go-plugin", Level: hclog.Warn, Output: stderr, JSONFormat: true}),
	}, nil
}

// Process is one running worker.
type Process struct {
	contract.Worker
	client   *plugin.Client
	pid      int
	release  chan struct{}
	kill     context.CancelFunc
	killOnce sync.Once
}

// PID is the worker's process ID.
func (p *Process) PID() int { return p.pid }

// Exited reports whether the worker process has ended.
func (p *Process) Exited() bool { return p.client.Exited() }

// killDeadline bounds go-plugin's Kill: it first asks the plugin to shut
// down over gRPC with no deadline, which a frozen worker (stopped, or stuck
// in a system call) never answers.
const killDeadline = 5 * time.Second

// Kill closes the worker (gracefully first: go-plugin waits 2 s, then kills)
// and releases the thread that spawned it. Safe to call more than once.
func (p *Process) Kill() {
	p.killOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			p.client.Kill()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(killDeadline):
			// Kill still hangs, so the worker has not exited and been reaped:
			// the PID is still our child.
			if proc, err := os.FindProcess(p.pid); err == nil && p.pid > 0 {
				_ = proc.Kill()
			}
			<-done
		}
		p.kill()
		close(p.release)
	})
}

// Launch starts a worker for org and connects to it. The caller must call
// Kill on every exit path. When ctx ends first, the process is killed and
// reaped before Launch returns: a cancelled launch leaves nothing behind
// that could still hold a slot or open the auth directory.
func (l *Launcher) Launch(ctx context.Context, org string) (*Process, error) {
	sum, err := checksum(l.binary)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", org, err)
	}
	type result struct {
		p   *Process
		err error
	}
	done := make(chan result, 1)
	release := make(chan struct{})
	// procCtx kills the process through exec's own context watch, the one
	// way to interrupt go-plugin's handshake wait without racing it; it is
	// tied to ctx only until the launch succeeds.
	procCtx, kill := context.WithCancel(context.Background())
	detach := context.AfterFunc(ctx, kill)
	// Pdeathsig fires when the forking *thread* exits, not the process
	// (golang/go#27505). The spawning goroutine therefore locks its thread
	// and stays alive until Kill, so the kernel kills the worker exactly
	// when the supervisor dies.
	go func() {
		runtime.LockOSThread()
		cmd := exec.CommandContext(procCtx, l.binary)
		cmd.Env = append(os.Environ(), "WA_SIDECAR_ORG="+org, fmt.Sprintf("%s=%d", contract.SupervisorPIDEnv, os.Getpid()))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		client := plugin.NewClient(&plugin.ClientConfig{
			HandshakeConfig:  contract.Handshake,
			Plugins:          contract.PluginMap(nil),
			Cmd:              cmd,
			AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
			// A new hash for every client: SecureConfig.Check streams into
			// Hash without resetting it, so a reused one fails on restart.
			SecureConfig: &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
			Logger:       l.logger.With("org", org),
			Stderr:       l.stderr,
			StartTimeout: 30 * time.Second,
		})
		p, err := connect(client, org)
		if err != nil {
			// Kill waits for the process to be reaped.
			client.Kill()
			done <- result{err: err}
			return // the thread dies with the goroutine; the worker is already gone
		}
		p.release, p.kill = release, kill
		done <- result{p: p}
		<-release
	}()
	r := <-done
	if !detach() {
		// ctx ended during the launch and the kill is under way.
		if r.p != nil {
			r.p.Kill()
		}
		return nil, fmt.Errorf("launch %s: %w", org, ctx.Err())
	}
	if r.err != nil {
		kill()
		return nil, r.err
	}
	return r.p, nil
}

func connect(client *plugin.Client, org string) (*Process, error) {
	rpc, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("launch %s: start worker: %w", org, err)
	}
	raw, err := rpc.Dispense(contract.PluginName)
	if err != nil {
		return nil, fmt.Errorf("launch %s: dispense worker: %w", org, err)
	}
	w, ok := raw.(contract.Worker)
	if !ok {
		return nil, fmt.Errorf("launch %s: plugin is %T, not a worker", org, raw)
	}
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	return &Process{Worker: w, client: client, pid: pid}, nil
}

func checksum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("worker binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("worker binary checksum: %w", err)
	}
	return h.Sum(nil), nil
}
