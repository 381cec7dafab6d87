package outbox

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// schedulerTick bounds how late a stall is noticed; a shorter stalled_after
// is looked at twice as often as it lasts.
const schedulerTick = 5 * time.Second

func (o *Outbox) kickJobs() {
	select {
	case o.jobsWake <- struct{}{}:
	default:
	}
}

// schedule runs the broadcast scheduler: one goroutine, so that turns are
// handed out one decision at a time.
func (o *Outbox) schedule() {
	defer o.wg.Done()
	tick := time.NewTicker(min(schedulerTick, max(100*time.Millisecond, o.cfg.StalledAfter.Duration/2)))
	defer tick.Stop()
	for {
		select {
		case <-o.done:
			return
		case <-o.jobsWake:
		case <-tick.C:
		}
		o.planJobs(context.Background())
	}
}

func (o *Outbox) connected(org string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.senders[org]
	return s != nil && s.connected
}

// planJobs applies planJobs' decisions: each committed, then shown.
func (o *Outbox) planJobs(ctx context.Context) {
	now := o.clock.Now()
	o.mu.Lock()
	views := make([]JobView, 0, len(o.jobs))
	for _, j := range o.jobs {
		views = append(views, *j)
	}
	o.mu.Unlock()
	sortJobs(views)
	for _, c := range planJobs(views, o.cfg.MaxJobs, o.connected, now, o.cfg.StalledAfter.Duration) {
		if err := o.store.SetJobStatus(ctx, c.ID, c.Status, now); err != nil {
			o.log.Error("moving a broadcast failed; tried again shortly", "broadcast", c.ID, "err", err)
			continue
		}
		o.mu.Lock()
		j, ok := o.jobs[c.ID]
		if ok {
			j.Status = c.Status
			if c.Status == JobSending {
				j.ProgressAt = now
			}
		}
		o.mu.Unlock()
		if !ok {
			continue
		}
		switch c.Status {
		case JobStalled:
			o.log.Warn("broadcast stalled: no message sent for stalled_after; it yields its turn until its organization can send",
				"org", j.Org, "broadcast", c.ID, "stalled_after", o.cfg.StalledAfter.Duration.String())
		case JobSending:
			o.log.Info("broadcast sending", "org", j.Org, "broadcast", c.ID)
			o.wake(j.Org)
		}
	}
	o.jobGauges()
}

func sortJobs(v []JobView) {
	slices.SortFunc(v, func(a, b JobView) int { return cmp.Compare(a.Seq, b.Seq) })
}

func (o *Outbox) jobGauges() {
	o.mu.Lock()
	active, stalled := 0, 0
	for _, j := range o.jobs {
		switch j.Status {
		case JobSending:
			active++
		case JobStalled:
			stalled++
		}
	}
	o.mu.Unlock()
	o.metrics.SetBroadcasts(active, stalled)
}

// jobProgress notes that a message of job ended, and finishes the job when
// it was its last.
func (o *Outbox) jobProgress(ctx context.Context, job string) {
	if job == "" {
		return
	}
	now := o.clock.Now()
	o.mu.Lock()
	j, ok := o.jobs[job]
	if ok {
		j.ProgressAt = now
	}
	o.mu.Unlock()
	if !ok {
		return
	}
	pending, err := o.store.JobPending(ctx, job)
	if err != nil || pending > 0 {
		return
	}
	if err := o.store.SetJobStatus(ctx, job, JobDone, now); err != nil {
		o.log.Error("finishing a broadcast failed; tried again at its next message", "broadcast", job, "err", err)
		return
	}
	o.mu.Lock()
	delete(o.jobs, job)
	o.mu.Unlock()
	o.log.Info("broadcast done", "org", j.Org, "broadcast", job)
	o.kickJobs()
}
