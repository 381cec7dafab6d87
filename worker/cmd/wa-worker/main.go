// Command wa-worker runs one organization's WhatsApp session as a
// go-plugin server. Only wa-supervisor starts it; this file only wires the
// packages together.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/wa-sidecar/wa-sidecar/shared/contract"
	"github.com/wa-sidecar/wa-sidecar/shared/logline"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
	"github.com/wa-sidecar/wa-sidecar/worker/parentwatch"
	"github.com/wa-sidecar/wa-sidecar/worker/scavenge"
	"github.com/wa-sidecar/wa-sidecar/worker/session"
)

// shutdownGrace bounds the clean disconnect when the supervisor is gone or
// sends SIGTERM: the store must be closed, but nobody waits for us.
const shutdownGrace = 3 * time.Second

func main() {
	if os.Getenv(contract.Handshake.MagicCookieKey) != contract.Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "wa-worker is started by wa-supervisor over go-plugin; run `wa-supervisor serve` instead")
		os.Exit(2)
	}

	// Whatever the supervisor's umask: the plugin socket go-plugin creates
	// under state_dir/run, and anything else this process creates, is the
	// owner's only.
	syscall.Umask(0o077)

	// stdout carries go-plugin's handshake line: libsignal's logger, which
	// prints to stdout by default, is rerouted before anything can use it.
	level := new(slog.LevelVar)
	// One sink for the session's records and go-plugin's server messages,
	// translated from hclog's shape into slog's, so the supervisor gets
	// whole lines of one shape.
	sink := logline.NewSink(os.Stderr)
	handler := session.NewLogHandler(sink, level)
	log := slog.New(handler)
	slog.SetDefault(log)
	detector := badmac.New()
	detector.InstallSignalLogger(log)

	sess := session.New(session.Options{Log: log, Handler: handler, Level: level, Detector: detector})
	shutdown := func(why string) {
		log.Warn("shutting down", "reason", why)
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := sess.Stop(ctx); err != nil {
			log.Error("stop on shutdown", "error", err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	go parentwatch.Watch(ctx, supervisorPID(), os.Getppid, tick.C, func() {
		shutdown("supervisor is gone")
		os.Exit(1)
	})
	// go-plugin ignores SIGINT in plugins; SIGTERM would otherwise kill us
	// without closing the store.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		<-sigs
		shutdown("SIGTERM")
		os.Exit(0)
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: contract.Handshake,
		// The heap a link or a send burst grew goes back to the OS once
		// the worker is quiet (worker/scavenge; docs/memory.md).
		Plugins:    contract.PluginMap(scavenge.Worker{Worker: sess, S: scavenge.NewOS()}),
		GRPCServer: contract.GRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "wa-worker",
			Output:     logline.NewRelay(sink).Writer(),
			JSONFormat: true,
			Level:      hclog.Info,
		}),
	})
	// Serve returns when the supervisor closes the plugin (Kill).
	shutdown("plugin closed")
}

// supervisorPID is the PID the supervisor announced at spawn: comparing
// against it catches a supervisor that died before this process first
// looked at its parent. Started without it (tests), the current parent.
func supervisorPID() int {
	if pid, err := strconv.Atoi(os.Getenv(contract.SupervisorPIDEnv)); err == nil && pid > 0 {
		return pid
	}
	return os.Getppid()
}
