// Command wa-bare is the floor of `make bench` (never shipped): one
// whatsmeow client linked to the emulator and nothing else in the process,
// no gRPC, no go-plugin, no supervisor. K of them side by side are what
// the process-per-organization design cannot go below, since it pays one
// Go runtime and one whatsmeow session per organization. It links the way
// wa-oneproc does (package bench/oneproc, one phone), prints "connected 1"
// on stdout and holds the session, idle, until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wa-sidecar/wa-sidecar/bench/oneproc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wa-bare:", err)
		os.Exit(1)
	}
}

func run() error {
	emulatorURL := flag.String("emulator", "", "the emulator's base URL, e.g. http://127.0.0.1:7000")
	dir := flag.String("dir", "", "directory for the session's SQLite store")
	phone := flag.String("phone", "", "the phone number that scans this session's QR")
	timeout := flag.Duration("timeout", 2*time.Minute, "how long linking may take")
	flag.Parse()
	if *emulatorURL == "" || *dir == "" || *phone == "" || flag.NArg() > 0 {
		flag.Usage()
		return errors.New("-emulator, -dir and -phone are required, and nothing else")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	linkCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	session, err := oneproc.Link(linkCtx, *emulatorURL, *dir, []string{*phone})
	if err != nil {
		return err
	}
	fmt.Println("connected 1")
	<-ctx.Done()
	return session.Close()
}
