package outbox

import (
	"context"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// The outbox's side of the schedule: the counts and link days it keeps in
// memory for Schedule's decisions.

// scheduleOf is org's schedule in its timezone.
func (o *Outbox) scheduleOf(org string) Schedule {
	s := o.sched
	if z := o.zones[org]; z != nil {
		s.Zone = z
	}
	return s
}

// windowLocked is what org may send at now; the caller holds o.mu.
func (o *Outbox) windowLocked(org string, now time.Time) Window {
	sch := o.scheduleOf(org)
	c := o.daily[org]
	if c == nil {
		c = &dayCount{}
		o.daily[org] = c
	}
	return sch.At(now, o.firstLink[org], c.at(sch, now))
}

func (o *Outbox) window(org string, now time.Time) Window {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.windowLocked(org, now)
}

// countSent counts a message on the local day it was first sent in.
func (o *Outbox) countSent(org string) {
	now := o.clock.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.windowLocked(org, now)
	o.daily[org].n++
}

// scheduleHolds reports whether org's broadcasts wait for the schedule at
// now: quiet hours, or the daily limit reached.
func (o *Outbox) scheduleHolds(org string, now time.Time) bool {
	w := o.window(org, now)
	return w.Full || w.Quiet
}

// yieldHeld sends the sending jobs of organizations the schedule holds
// back to queued: a job that waits out the quiet hours gives its turn
// (one of max_jobs, host-wide) to another organization's, and is not
// reported stalled; it takes a turn again, with fresh progress, when its
// organization may send. It returns the other jobs and the changes.
func yieldHeld(jobs []JobView, held map[string]bool) ([]JobView, []JobChange) {
	var rest []JobView
	var changes []JobChange
	for _, j := range jobs {
		if j.Status == JobSending && held[j.Org] {
			changes = append(changes, JobChange{ID: j.ID, Status: JobQueued})
			j.Status = JobQueued
		}
		rest = append(rest, j)
	}
	return rest, changes
}

// linkNumber learns when the number of jid first linked to org; false
// when the store could not tell.
func (s *sender) linkNumber(ctx context.Context, jid string, now time.Time) bool {
	o := s.o
	phone := jidPhone(jid)
	if phone == "" || phone == s.phone {
		return true
	}
	first, err := o.store.LinkNumber(ctx, s.org, phone, now)
	if err != nil {
		o.log.Error("recording the linked number failed; retrying before sending", "org", s.org, "err", err)
		return false
	}
	o.mu.Lock()
	o.firstLink[s.org] = first
	s.phone = phone
	o.mu.Unlock()
	if w := o.window(s.org, now); w.Limit > 0 {
		o.log.Info("sending schedule", "org", s.org, "phone", phone, "first_linked", first.UTC().Format(time.RFC3339),
			"limit_today", w.Limit)
	}
	return true
}

// sending is org's schedule in the status object.
func (o *Outbox) sending(org string) state.Sending {
	w := o.window(org, o.clock.Now())
	out := state.Sending{LimitToday: w.Limit, SentToday: w.Sent}
	if !w.Next.IsZero() {
		t := w.Next.UTC()
		out.NextWindow = &t
	}
	return out
}
