// Command wa-oneproc is the one-process model for `make bench` (never
// shipped): it links one whatsmeow client per phone to the emulator in this
// one process (package bench/oneproc), prints "connected N" on stdout once
// all are, and holds them, idle, until SIGTERM or SIGINT, while wa-bench
// reads its memory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wa-sidecar/wa-sidecar/bench/oneproc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wa-oneproc:", err)
		os.Exit(1)
	}
}

func run() error {
	emulatorURL := flag.String("emulator", "", "the emulator's base URL, e.g. http://127.0.0.1:7000")
	dir := flag.String("dir", "", "directory for the shared SQLite store")
	phones := flag.String("phones", "", "comma-separated phone numbers, one session each")
	timeout := flag.Duration("timeout", 2*time.Minute, "how long linking every session may take")
	flag.Parse()
	if *emulatorURL == "" || *dir == "" || *phones == "" || flag.NArg() > 0 {
		flag.Usage()
		return errors.New("-emulator, -dir and -phones are required, and nothing else")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	linkCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	list := strings.Split(*phones, ",")
	sessions, err := oneproc.Link(linkCtx, *emulatorURL, *dir, list)
	if err != nil {
		return err
	}
	fmt.Printf("connected %d\n", len(list))
	<-ctx.Done()
	return sessions.Close()
}
