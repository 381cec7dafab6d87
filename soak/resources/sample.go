// Package resources samples the supervisor's memory, goroutines and open
// files through a run and judges whether they stopped growing.
package resources

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Sample is one reading of the supervisor.
type Sample struct {
	At         time.Time
	Lifetime   int     // which start of the supervisor: they reset at each
	RSS        int64   // bytes, VmRSS from /proc/<pid>/status
	Goroutines float64 // go_goroutines from its /metrics
	FDs        float64 // process_open_fds from its /metrics
	// Quiet says the sample was taken in a pause of the schedule, every
	// organization connected: the samples the growth rule compares.
	Quiet bool
}

// Target is the supervisor to sample now.
type Target struct {
	PID        int
	MetricsURL string
	Lifetime   int
	Quiet      bool
}

// Source names the supervisor to sample now; ok is false while none runs.
type Source func() (t Target, ok bool)

// Sampler keeps the samples of one run.
type Sampler struct {
	mu      sync.Mutex
	samples []Sample
	skipped int
}

// Run samples every interval until ctx ends. A reading that fails (the
// supervisor is being restarted) is skipped and counted, not an error.
func (s *Sampler) Run(ctx context.Context, interval time.Duration, src Source) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.once(ctx, src)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sampler) once(ctx context.Context, src Source) {
	t, ok := src()
	if !ok {
		return
	}
	smp, err := read(ctx, t.PID, t.MetricsURL)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.skipped++
		return
	}
	// The supervisor may have been replaced, or the pause ended, during
	// the reading.
	after, ok := src()
	if !ok || after.PID != t.PID || after.Lifetime != t.Lifetime {
		s.skipped++
		return
	}
	smp.Lifetime, smp.Quiet = t.Lifetime, t.Quiet && after.Quiet
	s.samples = append(s.samples, smp)
}

func read(ctx context.Context, pid int, metricsURL string) (Sample, error) {
	at := time.Now()
	rss, err := vmRSS(pid)
	if err != nil {
		return Sample{}, err
	}
	names := []string{"go_goroutines", "process_open_fds"}
	m, err := Gauges(ctx, metricsURL, names...)
	if err != nil {
		return Sample{}, err
	}
	for _, name := range names {
		if _, ok := m[name]; !ok {
			return Sample{}, fmt.Errorf("%s has no %s", metricsURL, name)
		}
	}
	return Sample{At: at, RSS: rss, Goroutines: m["go_goroutines"], FDs: m["process_open_fds"]}, nil
}

// Samples returns what was read so far and how many readings were skipped.
func (s *Sampler) Samples() ([]Sample, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...), s.skipped
}
