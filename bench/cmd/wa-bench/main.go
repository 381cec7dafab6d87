// Command wa-bench prints `make bench`'s table: the worker and supervisor
// memory against the one-process model, the supervisor's reaction times
// and the status API's latency, each the median of -runs runs of package
// bench/suite, with the date, the core count and the Go version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/wa-sidecar/wa-sidecar/bench/suite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wa-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin", "directory holding wa-supervisor, wa-worker, wa-oneproc and wa-bare")
	runs := flag.Int("runs", 3, "runs to take the median of")
	settle := flag.Duration("settle", 3*time.Second, "how long sessions stay connected and idle before memory is read")
	memoryLimit := flag.String("memory-limit", "", `the workers' workers.memory_limit, e.g. "12MiB" (default: the config's default)`)
	memoryOnly := flag.Bool("memory-only", false, "measure memory and start → QR only, not the reactions, the API or the outbox")
	flag.Parse()
	if *runs < 1 || flag.NArg() > 0 {
		flag.Usage()
		return errors.New("-runs must be at least 1, and no arguments")
	}

	// SIGINT and SIGTERM end the current step; each run then stops what it
	// started before the program exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	cfg := suite.Config{Bin: *bin, Settle: *settle, MemoryLimit: *memoryLimit, MemoryOnly: *memoryOnly, Progress: os.Stderr}
	tab := suite.NewTable()
	var failed error
	for n := 1; n <= *runs && failed == nil; n++ {
		failed = suite.Run(ctx, cfg, n, tab)
	}
	limit := ""
	if *memoryLimit != "" {
		limit = fmt.Sprintf("; workers.memory_limit = %q", *memoryLimit)
	}
	// A failed run still prints what was measured, marked as such: a run
	// on a loaded machine can fail late, and its memory figures stand.
	incomplete := ""
	if failed != nil {
		incomplete = "INCOMPLETE: a run failed (below); the figures are what was measured before it"
	}
	return errors.Join(failed, tab.Write(os.Stdout,
		fmt.Sprintf("wa-sidecar bench, %s: %d cores, %s %s/%s", began.UTC().Format("2006-01-02 15:04 MST"),
			runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH),
		fmt.Sprintf("median of %d runs; memory read after %s connected and idle%s; took %s",
			*runs, *settle, limit, time.Since(began).Round(time.Second)),
		incomplete))
}
