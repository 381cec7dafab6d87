// Command wa-soak runs the soak test (`make soak`): the real supervisor
// and workers against the emulator through a seeded schedule of Bad MAC
// storms, worker kills, supervisor restarts and LOGOUTs under a steady
// stream of sends, then checks that nothing leaked or was lost. It prints
// the figures as Markdown tables and exits 1 with one line per failed
// assertion.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wa-sidecar/wa-sidecar/soak/report"
	"github.com/wa-sidecar/wa-sidecar/soak/runner"
)

func main() {
	o := runner.Options{Progress: os.Stderr}
	flag.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long the run takes, final checks included")
	flag.Uint64Var(&o.Seed, "seed", uint64(time.Now().UnixNano()), "seed of the schedule (printed, to repeat a run)")
	flag.StringVar(&o.BinDir, "bin", "bin", "directory holding wa-supervisor and wa-worker (make build)")
	flag.IntVar(&o.Orgs, "orgs", 5, "organizations (2 to 5: one supervisor's live workers)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (state, config, supervisor logs) after a passing run")
	flag.Parse()
	if flag.NArg() > 0 || o.Duration < runner.MinDuration || o.Orgs < 2 || o.Orgs > 5 {
		fmt.Fprintf(os.Stderr, "usage: wa-soak [-duration D (at least %s)] [-seed N] [-bin DIR] [-orgs 2-5] [-keep]\n", runner.MinDuration)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "wa-soak: seed %d, %s, %d organizations\n", o.Seed, o.Duration, o.Orgs)
	res := runner.Run(ctx, o)
	report.Print(os.Stdout, res.Figures)
	if res.Dir != "" {
		fmt.Printf("\nstate, config and supervisor logs kept in %s\n", res.Dir)
	}
	if len(res.Findings) > 0 {
		for _, f := range res.Findings {
			fmt.Printf("FAIL: %s\n", f)
		}
		os.Exit(1)
	}
	fmt.Println("\nPASS")
}
