// Command wa-emulator runs the local WhatsApp multidevice server emulator
// (package worker/emulator) for tests and demos: the websocket at /ws/chat
// and the JSON control API under /control/ on one address. Workers reach it
// only when their config has [whatsapp.emulator] url set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
)

func main() {
	if err := run(); err != nil {
		slog.Error("wa-emulator failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:7000", "address to serve the websocket and the control API on")
	grace := flag.Duration("close-grace", time.Second, "how long a connection stays open after a stream:error or failure unless the client closes it")
	debug := flag.Bool("debug", false, "log every node sent and received")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("the emulator is reachable beyond this host; it has no authentication", "addr", ln.Addr().String())
	}
	srv, err := emulator.New(emulator.Options{Logger: log, CloseGrace: *grace})
	if err != nil {
		_ = ln.Close()
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		return errors.Join(err, srv.Close())
	}
	if err := srv.Close(); err != nil {
		return fmt.Errorf("close emulator: %w", err)
	}
	if err := <-served; err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
