package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// CheckHealth pings every live worker once: one that does not answer within
// half the health interval is reported unhealthy, and the lifecycle kills
// and restarts it like a crash.
func (f *Fleet) CheckHealth(ctx context.Context) {
	f.mu.RLock()
	runners := make([]*runner, 0, len(f.orgs))
	for _, r := range f.orgs {
		runners = append(runners, r)
	}
	f.mu.RUnlock()
	timeout := f.cfg.Workers.HealthInterval.Duration / 2
	var wg sync.WaitGroup
	for _, r := range runners {
		w := r.worker.Load()
		if w == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			resp, err := w.proc.Ping(pctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.post(envelope{in: lifecycle.Unhealthy{Gen: w.gen, Err: err.Error()}})
				return
			}
			if r.worker.Load() == w {
				f.metrics.SetRSS(r.id, resp.RssBytes)
			}
		}()
	}
	wg.Wait()
}

// RunHealth calls CheckHealth every health_interval until ctx ends.
func (f *Fleet) RunHealth(ctx context.Context) {
	t := time.NewTicker(f.cfg.Workers.HealthInterval.Duration)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.CheckHealth(ctx)
		}
	}
}
