// Package report prints a soak run's figures as two small Markdown tables,
// the form README's "Soak test" section keeps them in.
package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/soak/check"
	"github.com/wa-sidecar/wa-sidecar/soak/resources"
	"github.com/wa-sidecar/wa-sidecar/soak/schedule"
)

// Figures are what a run measured.
type Figures struct {
	Seed     uint64
	Orgs     int
	Duration time.Duration
	// Events counts each organization an event hit once; restarts once.
	Events                  map[schedule.Kind]int
	Messages                check.MessageFigures
	SendRetries, KeyRepeats int
	// Webhooks are the deliveries answered 200; WebhookEvents the distinct
	// events among them.
	Webhooks, WebhookEvents int
	Archives                int
	WorkerProcesses         int
	Lifetimes               []resources.Lifetime
	SkippedSamples          int
	Growth                  resources.Verdict
}

// Print writes the figures.
func Print(w io.Writer, f Figures) {
	failed := 0
	var reasons []string
	for _, r := range slices.Sorted(maps.Keys(f.Messages.Failed)) {
		failed += f.Messages.Failed[r]
		reasons = append(reasons, fmt.Sprintf("%s %d", r, f.Messages.Failed[r]))
	}
	failedText := fmt.Sprint(failed)
	if len(reasons) > 0 {
		failedText += " (" + strings.Join(reasons, ", ") + ")"
	}
	rows := [][2]string{
		{"duration", fmt.Sprintf("%s, %d organizations, seed %d", f.Duration.Round(time.Second), f.Orgs, f.Seed)},
		{"Bad MAC trips", fmt.Sprint(f.Events[schedule.BadMAC])},
		{"worker kills (kill -9)", fmt.Sprint(f.Events[schedule.WorkerKill])},
		{"LOGOUTs", fmt.Sprint(f.Events[schedule.Logout])},
		{"supervisor restarts", fmt.Sprintf("%d SIGTERM, %d SIGKILL", f.Events[schedule.RestartTerm], f.Events[schedule.RestartKill])},
		{"messages accepted", fmt.Sprint(f.Messages.Accepted)},
		{"sent / delivered / read", fmt.Sprintf("%d / %d / %d", f.Messages.Sent, f.Messages.Delivered, f.Messages.Read)},
		{"failed", failedText},
		{"resends of one ID (recipient shows once)", fmt.Sprint(f.Messages.Resends)},
		{"send calls repeated (API down / on purpose)", fmt.Sprintf("%d / %d", f.SendRetries, f.KeyRepeats)},
		{"webhooks received (distinct events)", fmt.Sprintf("%d (%d)", f.Webhooks, f.WebhookEvents)},
		{"auth archives", fmt.Sprint(f.Archives)},
		{"worker processes", fmt.Sprint(f.WorkerProcesses)},
	}
	fmt.Fprintln(w, "| figure | value |")
	fmt.Fprintln(w, "|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s |\n", r[0], r[1])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| supervisor lifetime | length | RSS start / middle / end | goroutines | open FDs |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, l := range f.Lifetimes {
		fmt.Fprintf(w, "| %d | %s | %.1f / %.1f / %.1f MiB | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f |\n",
			l.N, l.Duration().Round(time.Second),
			mib(l.Start.RSS), mib(l.Middle.RSS), mib(l.End.RSS),
			l.Start.Goroutines, l.Middle.Goroutines, l.End.Goroutines,
			l.Start.FDs, l.Middle.FDs, l.End.FDs)
	}
	fmt.Fprintln(w)
	for _, line := range f.Growth.Lines {
		fmt.Fprintln(w, "growth: "+line)
	}
	if f.SkippedSamples > 0 {
		fmt.Fprintf(w, "(%d samples skipped while the supervisor restarted)\n", f.SkippedSamples)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
