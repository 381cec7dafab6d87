// Package rig is what the soak runs against: the WhatsApp emulator inside
// this process, the real wa-supervisor binary (spawning the real
// wa-worker) on a state directory in a temporary directory, and clients
// for the status API and the emulator's control API. Everything listens on
// 127.0.0.1 on ports the kernel picks, or on a unix socket in that
// directory.
package rig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// Options say where the binaries are and where webhooks go.
type Options struct {
	// BinDir holds wa-supervisor and wa-worker (`make build` puts them in bin/).
	BinDir string
	// HookURL receives the supervisor's webhooks, signed with HookSecret.
	HookURL, HookSecret string
}

// Rig is one emulator and one supervisor at a time on one state directory.
type Rig struct {
	// Dir is the temporary directory holding everything: the state
	// directory, the config, the API socket and the supervisor's logs.
	Dir      string
	StateDir string
	API      *apiclient.Client
	Phone    *emuctl.Client

	emu     *emulator.Server
	emuURL  string
	cfgPath string
	binDir  string

	mu       sync.Mutex
	sup      *process
	lifetime int
	pids     map[int]worker // every worker process seen, by PID
	died     chan error
}

// New starts the emulator and writes the supervisor's config; the
// supervisor itself starts with StartSupervisor.
func New(o Options) (*Rig, error) {
	for _, b := range []string{"wa-supervisor", "wa-worker"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("the soak runs the built binaries (make build): %w", err)
		}
	}
	binDir, err := filepath.Abs(o.BinDir)
	if err != nil {
		return nil, fmt.Errorf("bin dir: %w", err)
	}
	dir, err := os.MkdirTemp("", "wa-soak-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	r := &Rig{Dir: dir, StateDir: filepath.Join(dir, "state"), binDir: binDir, pids: map[int]worker{}, died: make(chan error, 1)}
	if err := r.startEmulator(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	secret := filepath.Join(dir, "webhook_secret")
	if err := os.WriteFile(secret, []byte(o.HookSecret+"\n"), 0o600); err != nil {
		r.emu.Close()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write the webhook secret: %w", err)
	}
	sock := filepath.Join(dir, "api.sock")
	r.cfgPath = filepath.Join(dir, "config.toml")
	cfg := config(r.StateDir, filepath.Join(binDir, "wa-worker"), sock, r.emuURL, o.HookURL, secret)
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		r.emu.Close()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write the config: %w", err)
	}
	r.API = apiclient.New("unix:"+sock, "")
	return r, nil
}

// startEmulator serves the emulator on a loopback port, in this process as
// the end-to-end harness does, so that its unknown-iq list can be read.
func (r *Rig) startEmulator() error {
	emu, err := emulator.New(emulator.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		emu.Close()
		return fmt.Errorf("emulator listen: %w", err)
	}
	go func() { _ = emu.Serve(ln) }()
	r.emu = emu
	r.emuURL = "http://" + ln.Addr().String()
	r.Phone = emuctl.New(r.emuURL)
	return nil
}

// UnknownIQs are the iqs the emulator did not understand: a whatsmeow
// query the emulator answers wrongly, which would make any finding moot.
func (r *Rig) UnknownIQs() []string { return r.emu.UnknownIQs() }

// Close stops the supervisor (SIGTERM, as systemd would), kills any worker
// it left behind, stops the emulator and removes the temporary directory
// unless keep. It returns what did not stop as it should.
func (r *Rig) Close(ctx context.Context, keep bool) error {
	var errs []error
	if r.running() {
		if err := r.StopSupervisor(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if left := r.liveWorkers(-1); len(left) > 0 {
		errs = append(errs, fmt.Errorf("worker processes %v outlived their supervisor; killed now", left))
		r.killWorkers(left)
	}
	r.emu.Close()
	if !keep {
		if err := os.RemoveAll(r.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", r.Dir, err))
		}
	}
	return errors.Join(errs...)
}
