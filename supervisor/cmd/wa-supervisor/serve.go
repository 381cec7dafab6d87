package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/grpclog"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/logline"
	"github.com/wa-sidecar/wa-sidecar/shared/private"
	"github.com/wa-sidecar/wa-sidecar/supervisor/archive"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/launcher"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lockfile"
	"github.com/wa-sidecar/wa-sidecar/supervisor/mediastore"
	"github.com/wa-sidecar/wa-sidecar/supervisor/metrics"
	"github.com/wa-sidecar/wa-sidecar/supervisor/move"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/retention"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/transfer"
)

// serve wires the daemon: config, state, then an oklog/run group of actors
// (signals, fleet, status API, metrics, systemd watchdog).
func serve(configPath string, stderr io.Writer) error {
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	// Workers run as the supervisor's user: without this, one could read the
	// API key from /proc/<supervisor>/environ or the supervisor's memory.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("hide the supervisor's memory from its workers: %w", err)
	}
	// Taken before anything starts: a SIGTERM that arrives while the
	// supervisor boots stops it cleanly instead of killing it outright.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// Before anything touches state_dir: a second supervisor there would
	// run a second worker on every auth directory.
	lock, err := lockfile.Acquire(cfg.StateDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	// One sink for the supervisor's records and every worker's lines, so
	// no two lines ever mix.
	sink := logline.NewSink(stderr)
	log := newLogger(cfg.LogLevel, sink)
	// gRPC's own logger writes to stderr directly; its rare errors go
	// through the sink as records too.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, logline.NewRelay(sink, slog.String("module", "grpc")).Writer()))

	apiKey, err := cfg.APIKey()
	if err != nil {
		return err
	}
	if apiKey == "" {
		if !config.IsLoopback(cfg.API.Listen) {
			return fmt.Errorf("api.listen %s is reachable from other hosts: set api.api_key_file or WA_SIDECAR_API_KEY", cfg.API.Listen)
		}
		log.Warn("no API key configured: the status API accepts every local caller (dev mode)", "listen", cfg.API.Listen)
	}
	authRoot := filepath.Join(cfg.StateDir, "auth_sessions")
	// 0700 also when an older version made it under a looser umask: it
	// holds every organization's keys.
	if err := private.Dir(authRoot); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	st, err := store.Open(filepath.Join(cfg.StateDir, "supervisor", "state.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	legacy := filepath.Join(cfg.StateDir, "supervisor", "registry.json")
	if n, aside, err := st.ImportRegistry(context.Background(), legacy, time.Now()); err != nil {
		return err
	} else if aside != "" {
		log.Info("imported the registry of an earlier version into state.db", "organizations", n, "moved_to", aside)
	}
	socketDir, err := socketDirOf(cfg.StateDir)
	if err != nil {
		return err
	}
	launch, err := launcher.New(launcher.Options{Binary: cfg.WorkerBinary, Log: sink, SocketDir: socketDir, MemoryLimit: cfg.Workers.MemoryLimit})
	if err != nil {
		return err
	}
	if cfg.WhatsApp.Emulator != nil {
		log.Warn("workers connect to a local WhatsApp EMULATOR, not to WhatsApp", "url", cfg.WhatsApp.Emulator.URL)
	}

	promReg := prometheus.NewRegistry()
	m := metrics.New(promReg, cfg.Workers.MaxLive)
	hooks, err := newDispatcher(cfg, st, m, log)
	if err != nil {
		return err
	}

	zone, orgZones, err := cfg.Zones()
	if err != nil {
		return err
	}
	lib, err := mediastore.Open(filepath.Join(cfg.StateDir, "media"), st, log)
	if err != nil {
		return err
	}
	var fl *fleet.Fleet
	// Set below once the API listens; purges only come after the boot.
	var cl *cluster.Cluster
	ob := outbox.New(outbox.Options{
		Config: cfg.Messages, Store: st, Metrics: m, Log: log, Zone: zone, OrgZones: orgZones,
		Countries: cfg.DefaultCountries(), Media: lib,
		Fleet: outbox.FleetFunc(func(org string) (outbox.Worker, bool) {
			w, ok := fl.ConnectedWorker(org)
			return w, ok
		}),
	})
	fl = fleet.New(fleet.Options{
		Config: cfg,
		Store:  st,
		Launch: func(ctx context.Context, org string) (fleet.Worker, error) {
			p, err := launch.Launch(ctx, org)
			if errors.Is(err, launcher.ErrBinaryChanged) {
				return nil, fleet.BinaryChanged(err)
			}
			if err != nil {
				return nil, err
			}
			return p, nil
		},
		Archive:  archive.NewDir(authRoot),
		Listener: ob,
		Decorate: ob.Decorate,
		Webhooks: hooks != nil,
		Metrics:  m,
		Log:      log,
		Purged: func(org string) {
			if cl != nil {
				releaseOrg(cl, org, log)
			}
		},
	})

	apiLn, err := statusapi.Listen(cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen: %w", err)
	}
	metricsLn, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("metrics.listen: %w", err)
	}
	cl, err = joinCluster(&cfg, apiLn, promReg, log)
	if err != nil {
		apiLn.Close()
		metricsLn.Close()
		return err
	}
	apiOpts := statusapi.Options{
		APIKey: apiKey, Listen: cfg.API.Listen, AllowedOrigins: cfg.API.AllowedOrigins, AllowedHosts: cfg.API.AllowedHosts, Log: log, Outbox: ob, Contacts: ob,
		Webhooks: hooks.api(), Media: lib, MediaMaxBytes: cfg.Media.MaxBytes.Bytes,
	}
	// Moves: this node as the source of its own (POST /v1/orgs/{id}/move)
	// and as the target of the others' (internal routes).
	mover := &move.Local{Fleet: fl, Store: st, Outbox: ob, Dirs: transfer.DirsOf(cfg.StateDir), Clock: clock.Real{}, Log: log, MaxOrgs: cfg.Workers.MaxOrgs}
	moves := &move.Service{Local: mover}
	apiOpts.Mover = moves
	if cl != nil {
		defer cl.Close()
		// The node-to-node routes besides the organizations' list, which
		// the status API serves itself: the move's, as its target.
		apiOpts.Cluster, apiOpts.Internal = cluster.NewRouter(cl, log), mover.Routes()
		mover.Self, mover.Owners, mover.Claimer, moves.Cluster = cl.Self(), cl, cl, cl
	}
	apiSrv := newServer(statusapi.New(fl, apiOpts))
	metricsSrv := newServer(metrics.Handler(promReg))

	var g run.Group
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			select {
			case sig := <-sigs:
				return &run.SignalError{Signal: sig}
			case <-ctx.Done():
				return ctx.Err()
			}
		}, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			// The API already answers /healthz; everything else waits
			// for this load (503 booting), so no request can act on an
			// organization before its saved holds are known.
			if cl != nil {
				// Before the records load: an import a restart cut off
				// is finished or dropped, never booted half.
				if err := mover.ResumeImports(ctx); err != nil {
					return err
				}
			}
			recs, err := st.LoadOrgs(ctx)
			if err != nil {
				return err
			}
			if err := ob.Start(ctx); err != nil {
				return err
			}
			fl.Boot(ownedRecords(ctx, cl, recs, log))
			log.Info("supervisor ready", "api", apiLn.Addr().String(), "metrics", metricsLn.Addr().String(),
				"state_dir", cfg.StateDir, "max_live", cfg.Workers.MaxLive)
			_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
			fl.RunHealth(ctx)
			return nil
		}, func(error) {
			cancel()
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			sctx, scancel := context.WithTimeout(context.Background(), cfg.Workers.StopTimeout.Duration+5*time.Second)
			defer scancel()
			// Senders first: a send cut off goes back in line and is sent
			// again with the same ID after the restart.
			ob.Stop()
			fl.Shutdown(sctx)
		})
	}
	if cl != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return cl.Run(ctx) }, func(error) { cancel() })
	}
	if hooks != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { hooks.Run(ctx); return nil }, func(error) { cancel() })
	}
	{
		// Housekeeping of state.db: at boot and then every tenth of
		// messages.retention, in small transactions beside the API and the
		// senders.
		pruner := retention.New(retention.Options{
			Retention: cfg.Messages.Retention.Duration, Store: st, Log: log, Metrics: m, Media: lib,
		})
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return pruner.Run(ctx) }, func(error) { cancel() })
	}
	g.Add(func() error { return serveHTTP(apiSrv, apiLn) }, func(error) { shutdownHTTP(apiSrv) })
	g.Add(func() error { return serveHTTP(metricsSrv, metricsLn) }, func(error) { shutdownHTTP(metricsSrv) })
	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			t := time.NewTicker(interval / 2)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					// List takes the fleet's lock: a deadlocked fleet stops
					// the pings and systemd restarts the service.
					fl.List()
					_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
				}
			}
		}, func(error) { cancel() })
	}

	err = g.Run()
	if errors.Is(err, run.ErrSignal) {
		log.Info("stopped", "reason", err.Error())
		return nil
	}
	return err
}

// newServer bounds every phase of a request: a client that sends its
// headers or body a byte a second, or never reads the answer, does not hold
// a connection forever. WriteTimeout leaves room for the slowest answer (a
// logout waits up to 30 s for WhatsApp).
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       20 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

func serveHTTP(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

func shutdownHTTP(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// socketDirOf makes state_dir/run, where the workers' plugin sockets live,
// and removes the sockets a killed supervisor left there. It removes
// nothing else: state_dir may be a path an operator chose badly.
func socketDirOf(stateDir string) (string, error) {
	dir := filepath.Join(stateDir, "run")
	// A unix socket path holds 107 bytes; go-plugin names the socket
	// "plugin" and 10 digits, and fails with a misleading error past that.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	if n := len(abs) + len("/plugin0123456789"); n > 107 {
		return "", fmt.Errorf("state_dir %s is too long for the workers' sockets (%d bytes of the 107 a socket path may have); choose a shorter one", stateDir, n)
	}
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return "", fmt.Errorf("state_dir: %s is not a directory; move it aside", dir)
	}
	if err := private.Dir(dir); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 && strings.HasPrefix(e.Name(), "plugin") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return "", fmt.Errorf("state_dir: remove a stale worker socket: %w", err)
			}
		}
	}
	return dir, nil
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
