// Package suite is one run of `make bench`'s table: against one emulator,
// it links organizations through a real wa-supervisor and its workers,
// times the supervisor's reactions and its API, then links the same numbers
// of sessions inside one wa-oneproc and in as many wa-bare processes (the
// floor: one bare whatsmeow session per process), and adds one sample of
// every figure to the table. Both models are measured in the same run, one after the other,
// so that their ratio holds on a machine whose speed drifts between runs.
package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wa-sidecar/wa-sidecar/bench/measure"
	"github.com/wa-sidecar/wa-sidecar/bench/report"
	"github.com/wa-sidecar/wa-sidecar/bench/rig"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// Config is what a run needs from the command line.
type Config struct {
	// Bin holds wa-supervisor, wa-worker, wa-oneproc and wa-bare.
	Bin string
	// Settle is how long every session stays connected and idle before
	// memory is read: the startup's garbage is collected by then.
	Settle time.Duration
	// MemoryOnly stops the supervisor's run after start → QR and the
	// memory readings: no Bad MAC trip, kill, API or outbox figures.
	MemoryOnly bool
	// MemoryLimit, if not empty, is the workers' workers.memory_limit.
	MemoryLimit string
	// Progress gets one line per step: a run takes a minute or more.
	Progress io.Writer
}

// Ks are the numbers of connected organizations memory is read at.
var Ks = []int{1, 5, 10}

// The sizes the issue asks for; the rows' names repeat them.
const (
	polls    = 2000
	enqueues = 10000
	queued   = 100000
)

// The bench config's timings. start_gap and jitter are 0 so that start →
// QR and the restarts measure the supervisor and the worker, not the
// stagger; the restart delays are short and subtracted from what is timed.
const (
	restartDelay    = 500 * time.Millisecond
	crashBackoffMin = 500 * time.Millisecond
	badMACLimit     = 5
)

// supervisorConfig leaves room for Ks' largest plus the organization that
// relinks after its Bad MAC trip and the outbox's.
func supervisorConfig(memoryLimit string) string {
	limit := ""
	if memoryLimit != "" {
		limit = fmt.Sprintf("memory_limit = %q\n", memoryLimit)
	}
	return fmt.Sprintf(`
[workers]
%[6]smax_live = %[1]d
max_live_per_egress = %[1]d
start_gap = "0s"
start_jitter = ["0s", "0s"]
crash_backoff = [%[2]q, "5s"]
stop_timeout = "5s"
[badmac]
limit = %[3]d
restart_delay = %[4]q
[messages]
max_recipients = %[5]d
`, Ks[len(Ks)-1]+2, crashBackoffMin, badMACLimit, restartDelay, queued, limit)
}

// colValue is the column of the figures that are not per K.
const colValue = "value"

func kCol(k int) string { return "K=" + strconv.Itoa(k) }

var (
	rowWorkerRSS  = report.Row{Name: "worker RSS, each (connected, idle)", Unit: "MiB"}
	rowWorkerPSS  = report.Row{Name: "worker PSS, each", Unit: "MiB"}
	rowWorkerAnon = report.Row{Name: "  of which anon (heap, stacks)", Unit: "MiB"}
	rowWorkerFile = report.Row{Name: "  of which file (the binary, shared)", Unit: "MiB"}
	rowSupRSS     = report.Row{Name: "supervisor RSS, K workers", Unit: "MiB"}
	rowSupPSS     = report.Row{Name: "supervisor PSS", Unit: "MiB"}
	rowSupAnon    = report.Row{Name: "  of which anon (its heap)", Unit: "MiB"}
	rowSupFile    = report.Row{Name: "  of which file (its binary)", Unit: "MiB"}
	rowModel      = report.Row{Name: "process per org: Σ worker PSS + supervisor PSS", Unit: "MiB"}
	rowOneRSS     = report.Row{Name: "one process, K sessions: RSS", Unit: "MiB"}
	rowOnePSS     = report.Row{Name: "one process, K sessions: PSS", Unit: "MiB"}
	rowOneAnon    = report.Row{Name: "  of which anon", Unit: "MiB"}
	rowOneFile    = report.Row{Name: "  of which file", Unit: "MiB"}
	rowRatio      = report.Row{Name: "ratio process per org / one process (PSS)", Unit: "x"}
	rowFloorPSS   = report.Row{Name: "floor, K bare whatsmeow processes: PSS each", Unit: "MiB"}
	rowFloorAnon  = report.Row{Name: "  of which anon, each", Unit: "MiB"}
	rowFloorFile  = report.Row{Name: "  of which file, each", Unit: "MiB"}
	rowFloorSum   = report.Row{Name: "floor: Σ PSS", Unit: "MiB"}
	rowFloorRatio = report.Row{Name: "ratio process per org / floor (PSS)", Unit: "x"}
	rowStartQR    = report.Row{Name: "start → QR, no stagger", Unit: "ms"}
	rowBadMAC     = report.Row{Name: "Bad MAC trip → new QR, beyond restart_delay", Unit: "ms"}
	rowKill       = report.Row{Name: "worker kill -9 → connected, beyond crash backoff", Unit: "ms"}
	rowIdleP50    = report.Row{Name: "status API p50, idle (2,000 polls)", Unit: "ms"}
	rowIdleP99    = report.Row{Name: "status API p99, idle", Unit: "ms"}
	rowFullP50    = report.Row{Name: "status API p50, 100,000 queued (2,000 polls)", Unit: "ms"}
	rowFullP99    = report.Row{Name: "status API p99, 100,000 queued", Unit: "ms"}
	rowEnqP50     = report.Row{Name: "enqueue p50 (10,000 POST /messages)", Unit: "ms"}
	rowEnqP99     = report.Row{Name: "enqueue p99", Unit: "ms"}
)

// NewTable returns the empty table Run adds to.
func NewTable() *report.Table {
	cols := []string{colValue}
	for _, k := range Ks {
		cols = append(cols, kCol(k))
	}
	return report.New(cols, rowWorkerRSS, rowWorkerPSS, rowWorkerAnon, rowWorkerFile, rowSupRSS, rowSupPSS, rowSupAnon, rowSupFile, rowModel,
		rowOneRSS, rowOnePSS, rowOneAnon, rowOneFile, rowRatio,
		rowFloorPSS, rowFloorAnon, rowFloorFile, rowFloorSum, rowFloorRatio, rowStartQR, rowBadMAC, rowKill,
		rowIdleP50, rowIdleP99, rowFullP50, rowFullP99, rowEnqP50, rowEnqP99, rowCheckAsked, rowCheckCached,
		rowMediaSent, rowMediaBroadcast)
}

// run is one run's state.
type run struct {
	cfg Config
	n   int
	tab *report.Table
	emu string // the emulator's URL
	ctl *emuctl.Client
	api *apiclient.Client
	// workers are the worker PIDs seen, checked gone after the supervisor
	// stops.
	workers []int
}

// Run is run number n: it adds one sample of every figure to tab and stops
// everything it started, in a temporary directory it removes.
func Run(ctx context.Context, cfg Config, n int, tab *report.Table) (err error) {
	dir, err := os.MkdirTemp("", "wa-bench-")
	if err != nil {
		return fmt.Errorf("run %d: %w", n, err)
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	emu, err := rig.StartEmulator()
	if err != nil {
		return fmt.Errorf("run %d: %w", n, err)
	}
	defer func() { err = errors.Join(err, emu.Close()) }()

	r := &run{cfg: cfg, n: n, tab: tab, emu: emu.URL, ctl: emuctl.New(emu.URL)}
	model, err := r.processPerOrg(ctx, filepath.Join(dir, "supervisor"))
	if err != nil {
		return fmt.Errorf("run %d, process per organization: %w", n, err)
	}
	for _, k := range Ks {
		floor, err := r.floor(ctx, filepath.Join(dir, "bare-"+strconv.Itoa(k)), k)
		if err != nil {
			return fmt.Errorf("run %d, floor of %d bare processes: %w", n, k, err)
		}
		each := float64(k)
		tab.Add(rowFloorPSS, kCol(k), mib(floor.PSS)/each)
		tab.Add(rowFloorAnon, kCol(k), mib(floor.PSSAnon)/each)
		tab.Add(rowFloorFile, kCol(k), mib(floor.PSSFile)/each)
		tab.Add(rowFloorSum, kCol(k), mib(floor.PSS))
		tab.Add(rowFloorRatio, kCol(k), model[k]/mib(floor.PSS))
	}
	for _, k := range Ks {
		one, err := r.oneProcess(ctx, filepath.Join(dir, "oneproc-"+strconv.Itoa(k)), k)
		if err != nil {
			return fmt.Errorf("run %d, one process with %d sessions: %w", n, k, err)
		}
		tab.Add(rowOneRSS, kCol(k), mib(one.RSS))
		tab.Add(rowOnePSS, kCol(k), mib(one.PSS))
		tab.Add(rowOneAnon, kCol(k), mib(one.PSSAnon))
		tab.Add(rowOneFile, kCol(k), mib(one.PSSFile))
		tab.Add(rowRatio, kCol(k), model[k]/mib(one.PSS))
	}
	return nil
}

func (r *run) say(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "run %d: %s\n", r.n, fmt.Sprintf(format, args...))
}

// oneProcess links k sessions in one wa-oneproc and reads its memory once
// they have been idle for Settle.
func (r *run) oneProcess(ctx context.Context, dir string, k int) (m measure.Memory, err error) {
	r.say("one process: linking %d sessions", k)
	phones := make([]string, k)
	for j := range phones {
		// Apart from the supervisor's organizations' phones (orgPhone).
		phones[j] = fmt.Sprintf("57302%02d%05d", k, j+1)
	}
	p, err := rig.StartOneProc(ctx, r.cfg.Bin, dir, r.emu, phones)
	if err != nil {
		return m, err
	}
	defer func() { err = errors.Join(err, p.Stop()) }()
	if err := sleep(ctx, r.cfg.Settle); err != nil {
		return m, err
	}
	return measure.ReadMemory(p.PID())
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
