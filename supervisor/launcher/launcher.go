// Package launcher starts worker processes over go-plugin: one plugin client
// per organization, never Managed, each with a fresh SecureConfig against
// the checksum taken at boot, mutual TLS, an explicit environment and its
// socket under state_dir, bound to the supervisor's life with Pdeathsig.
package launcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/wa-sidecar/wa-sidecar/shared/logline"
)

// ErrBinaryChanged refuses a launch whose binary on disk is not the one
// checked when the supervisor started.
var ErrBinaryChanged = errors.New("the worker binary changed since the supervisor started")

// Options configure a Launcher.
type Options struct {
	// Binary is the wa-worker executable.
	Binary string
	// Log is where the workers' log lines and go-plugin's messages go, one
	// whole line per write (a logline.Sink).
	Log io.Writer
	// SocketDir holds the workers' plugin sockets (state_dir/run, emptied
	// at boot), so that a killed supervisor leaves none in /tmp.
	SocketDir string
	// MemoryLimit is each worker's GOMEMLIMIT; empty: none.
	MemoryLimit string
}

// Launcher starts wa-worker binaries.
type Launcher struct {
	binary      string
	sum         []byte
	log         io.Writer
	socketDir   string
	memoryLimit string
}

// New returns a Launcher for the worker binary. Its checksum is taken now
// and every launch is checked against it: a binary replaced under a running
// supervisor is refused until the supervisor restarts, rather than run
// unverified.
func New(o Options) (*Launcher, error) {
	abs, err := filepath.Abs(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("worker binary %s: %w", o.Binary, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("worker binary: %w (run `make build`, or set worker_binary)", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("worker binary %s is not an executable file", abs)
	}
	sum, err := checksum(abs)
	if err != nil {
		return nil, err
	}
	socketDir, err := filepath.Abs(o.SocketDir)
	if err != nil {
		return nil, fmt.Errorf("socket directory %s: %w", o.SocketDir, err)
	}
	return &Launcher{binary: abs, sum: sum, log: o.Log, socketDir: socketDir, memoryLimit: o.MemoryLimit}, nil
}

// workerProcs is every worker's GOMAXPROCS.
const workerProcs = "GOMAXPROCS=1"

// env is all a worker gets of the supervisor's environment: the API key,
// NOTIFY_SOCKET and the rest stay out of the process that parses what
// WhatsApp sends. go-plugin adds its handshake variables.
func (l *Launcher) env(org string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{
		"PATH=" + path,
		"TMPDIR=" + l.socketDir,
		plugin.EnvUnixSocketDir + "=" + l.socketDir,
		"WA_SIDECAR_ORG=" + org,
		fmt.Sprintf("%s=%d", contract.SupervisorPIDEnv, os.Getpid()),
		// A worker drives one websocket and one SQLite store: a second P
		// buys it nothing, and each P costs heap of its own (mcache, GC
		// work buffers): about 0.4 MiB a worker on 2 cores, more on a
		// larger host, with no reaction time slower (docs/memory.md).
		workerProcs,
	}
	if l.memoryLimit != "" {
		env = append(env, "GOMEMLIMIT="+l.memoryLimit)
	}
	return env
}

// logs returns what the worker's stderr and go-plugin's logger write into:
// relays that keep every line whole and in the supervisor's shape, with
// the worker's org.
func (l *Launcher) logs(org string) (stderr io.WriteCloser, logger hclog.Logger, closeLogs func()) {
	attr := slog.String("org", org)
	stderr = logline.NewRelay(l.log, attr).Writer()
	out := logline.NewRelay(l.log, attr).Writer()
	logger = quietNamed{
		Logger: hclog.New(&hclog.LoggerOptions{Name: "go-plugin", Level: hclog.Info, Output: out, JSONFormat: true}),
		worker: filepath.Base(l.binary),
	}
	return stderr, logger, func() { stderr.Close(); out.Close() }
}

// quietNamed is go-plugin's logger. Its own messages are relayed, but the
// logger it derives to re-log a worker's stderr is off, so go-plugin never
// parses a worker's lines: its parser (v1.8.0) panics, in the supervisor, on
// a line whose "@message" is not a string, and would print every line twice.
type quietNamed struct {
	hclog.Logger
	worker string
}

func (q quietNamed) Named(name string) hclog.Logger {
	if name == q.worker {
		return hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard})
	}
	return quietNamed{Logger: q.Logger.Named(name), worker: q.worker}
}

func (q quietNamed) With(args ...any) hclog.Logger {
	return quietNamed{Logger: q.Logger.With(args...), worker: q.worker}
}

// Process is one running worker.
type Process struct {
	contract.Worker
	client  *plugin.Client
	pid     int
	release chan struct{}
	kill    context.CancelFunc
	// closeLogs flushes a last line the worker left without a newline.
	closeLogs func()
	killOnce  sync.Once
	// socket is the worker's plugin socket, removed here once the worker is
	// gone: a sandboxed worker may not delete anything in state_dir/run.
	socket string
}

// PID is the worker's process ID.
func (p *Process) PID() int { return p.pid }

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
			// Kill still hangs, so the worker has not been reaped: its PID,
			// and its process group, are still ours. The group takes any
			// child the worker left holding its stderr, which go-plugin
			// waits for before it reaps.
			if p.pid > 0 {
				_ = syscall.Kill(-p.pid, syscall.SIGKILL)
			}
			// A descendant that left the group can still hold the pipe:
			// once the worker itself is dead, that is enough.
			select {
			case <-done:
			case <-dead(p.pid):
			}
		}
		p.kill()
		p.closeLogs()
		if p.socket != "" {
			_ = os.Remove(p.socket) // gone already if the worker closed it
		}
		close(p.release)
	})
}

// dead is closed once pid has exited (a zombie or gone).
func dead(pid int) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		defer close(c)
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				return
			}
			if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return c
}

// Launch starts a worker for org and connects to it. The caller must call
// Kill on every exit path. When ctx ends first, the process is killed and
// reaped before Launch returns: a cancelled launch leaves nothing behind
// that could still hold a slot or open the auth directory.
func (l *Launcher) Launch(ctx context.Context, org string) (*Process, error) {
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
	stderr, logger, closeLogs := l.logs(org)
	// Pdeathsig fires when the forking *thread* exits, not the process
	// (golang/go#27505). The spawning goroutine therefore locks its thread
	// and stays alive until Kill, so the kernel kills the worker exactly
	// when the supervisor dies.
	go func() {
		runtime.LockOSThread()
		cmd := exec.CommandContext(procCtx, l.binary)
		cmd.Env = l.env(org)
		// Its own process group, so a kill reaches what it started too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		client := plugin.NewClient(&plugin.ClientConfig{
			HandshakeConfig:  contract.Handshake,
			Plugins:          contract.PluginMap(nil),
			Cmd:              cmd,
			SkipHostEnv:      true,
			AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
			// Without it any local process of the same user could call a
			// worker's Logout or SendText over its socket.
			AutoMTLS: true,
			// A file travels whole in one SendMedia, beyond gRPC's 4 MiB default.
			GRPCDialOptions: contract.GRPCDialOptions(),
			// A new hash for every client: SecureConfig.Check streams into
			// Hash without resetting it, so a reused one fails on restart.
			SecureConfig: &plugin.SecureConfig{Checksum: l.sum, Hash: sha256.New()},
			Logger:       logger.With("org", org),
			Stderr:       stderr,
			StartTimeout: 30 * time.Second,
		})
		p, err := connect(client, org)
		if err != nil {
			// Kill waits for the process to be reaped.
			client.Kill()
			closeLogs()
			if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
				err = fmt.Errorf("launch %s: %s: %w; restart the supervisor to run the new one", org, l.binary, ErrBinaryChanged)
			}
			done <- result{err: err}
			return // the thread dies with the goroutine; the worker is already gone
		}
		p.release, p.kill, p.closeLogs = release, kill, closeLogs
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
	pid, socket := 0, ""
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
		if rc.Addr != nil && rc.Addr.Network() == "unix" {
			socket = rc.Addr.String()
		}
	}
	return &Process{Worker: w, client: client, pid: pid, socket: socket}, nil
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
