// Package rig starts and stops what `make bench` measures: the WhatsApp
// emulator (inside this process), a wa-supervisor with its workers, the
// wa-oneproc program and the wa-bare floor. Addresses come from the kernel (127.0.0.1:0), state
// lives in the directory the caller gives, and every Start has a Stop or
// Close that ends what it started.
package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
)

// Emulator is a WhatsApp emulator serving on a loopback port.
type Emulator struct {
	URL    string
	srv    *emulator.Server
	served chan error
}

// StartEmulator serves a new emulator on a port the kernel picks. It runs
// in this process: what it costs is not counted against either model.
func StartEmulator() (*Emulator, error) {
	srv, err := emulator.New(emulator.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, fmt.Errorf("create emulator: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("listen for the emulator: %w", err), srv.Close())
	}
	e := &Emulator{URL: "http://" + ln.Addr().String(), srv: srv, served: make(chan error, 1)}
	go func() { e.served <- srv.Serve(ln) }()
	return e, nil
}

// Close ends every connection and removes the emulator's own store.
func (e *Emulator) Close() error {
	if err := errors.Join(e.srv.Close(), <-e.served); err != nil {
		return fmt.Errorf("close emulator: %w", err)
	}
	return nil
}

// Supervisor is a running wa-supervisor and a client of its status API.
type Supervisor struct {
	API *apiclient.Client
	p   *proc
}

// supervisorStopGrace is how long the supervisor may take to exit after
// SIGTERM: it closes every worker first, within workers.stop_timeout.
const supervisorStopGrace = 30 * time.Second

// StartSupervisor writes dir/config.toml (state in dir/state, the API and
// metrics on kernel-chosen loopback ports, workers pointed at the emulator
// at emulatorURL) followed by extra, runs bin/wa-supervisor serve with it,
// and returns once the supervisor logs that it is ready.
func StartSupervisor(ctx context.Context, bin, dir, emulatorURL, extra string) (*Supervisor, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, fmt.Errorf("start supervisor: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start supervisor: %w", err)
	}
	// log_level info: the ready line is an info record, and debug would
	// spend the workers' CPU on logging while they are measured.
	cfg := fmt.Sprintf(`state_dir = %q
worker_binary = %q
log_level = "info"
[api]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[whatsapp.emulator]
url = %q
%s`, filepath.Join(dir, "state"), filepath.Join(bin, "wa-worker"), emulatorURL, extra)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("start supervisor: write config: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.Command(filepath.Join(bin, "wa-supervisor"), "serve", "-config", cfgPath)
	p, line, err := start(ctx, "wa-supervisor", cmd, func(line string) bool {
		return strings.Contains(line, `"msg":"supervisor ready"`)
	})
	if err != nil {
		return nil, err
	}
	var ready struct {
		API string `json:"api"`
	}
	if err := json.Unmarshal([]byte(line), &ready); err != nil || ready.API == "" {
		return nil, errors.Join(fmt.Errorf("supervisor ready line without its API address: %s", line), p.stop(supervisorStopGrace))
	}
	// No key: the API listens on loopback, which the supervisor allows
	// without one (dev mode).
	return &Supervisor{API: apiclient.New(ready.API, ""), p: p}, nil
}

// PID is the supervisor's process ID.
func (s *Supervisor) PID() int { return s.p.cmd.Process.Pid }

// Stop ends the supervisor with SIGTERM; it closes its workers first.
func (s *Supervisor) Stop() error { return s.p.stop(supervisorStopGrace) }

// OneProc is a running wa-oneproc or wa-bare holding its sessions
// connected.
type OneProc struct {
	p *proc
}

// StartOneProc runs bin/wa-oneproc with one session per phone, its store in
// dir, and returns once it reports every session connected.
func StartOneProc(ctx context.Context, bin, dir, emulatorURL string, phones []string) (*OneProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start wa-oneproc: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.Command(filepath.Join(bin, "wa-oneproc"),
		"-emulator", emulatorURL, "-dir", dir, "-phones", strings.Join(phones, ","))
	want := fmt.Sprintf("connected %d", len(phones))
	p, _, err := start(ctx, "wa-oneproc", cmd, func(line string) bool { return line == want })
	if err != nil {
		return nil, err
	}
	return &OneProc{p: p}, nil
}

// StartBare runs bin/wa-bare, one session linked by phone with its store
// in dir, and returns once it reports the session connected.
func StartBare(ctx context.Context, bin, dir, emulatorURL, phone string) (*OneProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start wa-bare: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.Command(filepath.Join(bin, "wa-bare"), "-emulator", emulatorURL, "-dir", dir, "-phone", phone)
	p, _, err := start(ctx, "wa-bare", cmd, func(line string) bool { return line == "connected 1" })
	if err != nil {
		return nil, err
	}
	return &OneProc{p: p}, nil
}

// PID is the program's process ID.
func (o *OneProc) PID() int { return o.p.cmd.Process.Pid }

// Stop ends the program with SIGTERM; it disconnects every session.
func (o *OneProc) Stop() error { return o.p.stop(10 * time.Second) }
