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

// canSend reports whether org's sender can make progress now: connected
// and not held by the new-chat restriction.
func (o *Outbox) canSend(org string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.senders[org]
	return s != nil && s.connected && !o.clock.Now().Before(s.restricted)
}

// loadJobs replaces the scheduler's view with the store's open jobs: the
// store is the truth (a job finishes in its last message's transaction),
// memory only a copy for the senders.
func (o *Outbox) loadJobs(ctx context.Context) error {
	open, err := o.store.OpenJobs(ctx)
	if err != nil {
		return err
	}
	jobs := make(map[string]*JobView, len(open))
	for _, b := range open {
		jobs[b.ID] = &JobView{ID: b.ID, Org: b.Org, Seq: b.Seq, Status: b.Status, ProgressAt: b.ProgressAt}
	}
	o.mu.Lock()
	o.jobs = jobs
	o.mu.Unlock()
	return nil
}

// planJobs applies planJobs' decisions: each committed, then shown.
func (o *Outbox) planJobs(ctx context.Context) {
	if err := o.loadJobs(ctx); err != nil {
		o.log.Error("reading the open broadcasts failed; tried again shortly", "err", err)
		return
	}
	now := o.clock.Now()
	o.mu.Lock()
	views := make([]JobView, 0, len(o.jobs))
	for _, j := range o.jobs {
		views = append(views, *j)
	}
	o.mu.Unlock()
	held := map[string]bool{}
	for _, v := range views {
		if _, ok := held[v.Org]; !ok {
			held[v.Org] = o.scheduleHolds(v.Org, now)
		}
	}
	sortJobs(views)
	views, changes := yieldHeld(views, held)
	canSend := func(org string) bool { return !held[org] && o.canSend(org) }
	changes = append(changes, planJobs(views, o.cfg.MaxJobs, canSend, now, o.cfg.StalledAfter.Duration)...)
	for _, c := range changes {
		moved, err := o.store.SetJobStatus(ctx, c.ID, c.Status, now)
		if err != nil {
			o.log.Error("moving a broadcast failed; tried again shortly", "broadcast", c.ID, "err", err)
			continue
		}
		o.mu.Lock()
		j, ok := o.jobs[c.ID]
		switch {
		case !ok:
		case !moved:
			// Finished or cancelled since it was read: final.
			delete(o.jobs, c.ID)
		default:
			j.Status = c.Status
			if c.Status == JobSending {
				j.ProgressAt = now
			}
		}
		o.mu.Unlock()
		if !ok || !moved {
			continue
		}
		switch c.Status {
		case JobStalled:
			o.log.Warn("broadcast stalled: no message sent for stalled_after; it yields its turn until its organization can send",
				"org", j.Org, "broadcast", c.ID, "stalled_after", o.cfg.StalledAfter.Duration.String())
		case JobQueued:
			if held[j.Org] {
				o.log.Info("broadcast waits for the schedule (quiet hours or the daily limit) and gives its turn up",
					"org", j.Org, "broadcast", c.ID)
				break
			}
			o.log.Info("broadcast waits for a turn: more were sending than messages.max_jobs", "org", j.Org, "broadcast", c.ID)
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

// jobProgress notes that a message of job ended. The store finished the
// job in that message's transaction when it was the last; memory follows.
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
	status, err := o.store.JobStatus(ctx, job)
	if err != nil {
		// The scheduler reloads the open jobs at its next tick.
		o.log.Error("reading a broadcast failed", "org", j.Org, "broadcast", job, "err", err)
		return
	}
	if status.Active() {
		return
	}
	o.mu.Lock()
	delete(o.jobs, job)
	o.mu.Unlock()
	if status == JobDone {
		o.log.Info("broadcast done", "org", j.Org, "broadcast", job)
	}
	o.kickJobs()
}
