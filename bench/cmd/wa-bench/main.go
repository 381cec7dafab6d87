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
	bin := flag.String("bin", "bin", "directory holding wa-supervisor, wa-worker and wa-oneproc")
	runs := flag.Int("runs", 3, "runs to take the median of")
	settle := flag.Duration("settle", 3*time.Second, "how long sessions stay connected and idle before memory is read")
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
	cfg := suite.Config{Bin: *bin, Settle: *settle, Progress: os.Stderr}
	tab := suite.NewTable()
	for n := 1; n <= *runs; n++ {
		if err := suite.Run(ctx, cfg, n, tab); err != nil {
			return err
		}
	}
	return tab.Write(os.Stdout,
		fmt.Sprintf("wa-sidecar bench, %s: %d cores, %s %s/%s", began.UTC().Format("2006-01-02 15:04 MST"),
			runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH),
		fmt.Sprintf("median of %d runs; memory read after %s connected and idle; took %s",
			*runs, *settle, time.Since(began).Round(time.Second)),
		"")
}
