package outbox

import (
	"context"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// counts keeps state.Outbox in memory, so a status poll never reads the store.
type counts struct {
	day time.Time
	org map[string]*state.Outbox
}

func dayStart(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func newCounts(now time.Time, loaded map[string]state.Outbox) counts {
	c := counts{day: dayStart(now), org: map[string]*state.Outbox{}}
	for org, v := range loaded {
		c.org[org] = &v
	}
	return c
}

// of returns org's counts as of now, starting a new day when one began;
// the caller holds o.mu.
func (c *counts) of(org string, now time.Time) *state.Outbox {
	if c.org == nil {
		c.org = map[string]*state.Outbox{}
	}
	if d := dayStart(now); d.After(c.day) {
		c.day = d
		for _, v := range c.org {
			v.SentToday, v.FailedToday = 0, 0
		}
	}
	v := c.org[org]
	if v == nil {
		v = &state.Outbox{}
		c.org[org] = v
	}
	return v
}

// Counts returns org's outbox counts.
func (o *Outbox) Counts(org string) state.Outbox {
	o.mu.Lock()
	defer o.mu.Unlock()
	return *o.counts.of(org, o.clock.Now())
}

// Decorate adds the outbox counts and the send restriction to a status
// object; it reads memory only, so a status poll never waits on the store.
func (o *Outbox) Decorate(s *state.Snapshot) {
	s.Outbox = o.Counts(s.OrganizationID)
	s.Sending = o.sending(s.OrganizationID)
	if until := o.Restricted(s.OrganizationID); !until.IsZero() {
		t := until.UTC()
		s.SendRestrictedUntil = &t
	}
}

func (o *Outbox) queued(org string, n int) {
	o.mu.Lock()
	c := o.counts.of(org, o.clock.Now())
	c.Queued += n
	depth := c.Queued
	o.mu.Unlock()
	o.metrics.SetOutboxDepth(org, depth)
}

// settled counts a message that left the queue, sent or failed.
func (o *Outbox) settled(org string, sent bool) {
	o.mu.Lock()
	c := o.counts.of(org, o.clock.Now())
	c.Queued = max(0, c.Queued-1)
	if sent {
		c.SentToday++
	} else {
		c.FailedToday++
	}
	depth := c.Queued
	o.mu.Unlock()
	o.metrics.SetOutboxDepth(org, depth)
}

func (o *Outbox) sentMessage(m Message) {
	o.settled(m.Org, true)
	o.countSent(m.Org)
	o.metrics.MessageSent(m.Org)
	o.jobProgress(context.Background(), m.Broadcast)
}

// failedMessages counts messages given up on, all with one reason.
func (o *Outbox) failedMessages(msgs []Message, reason string) {
	jobs := map[string]bool{}
	for _, m := range msgs {
		o.settled(m.Org, false)
		o.metrics.MessageFailed(m.Org, reason)
		if m.Broadcast != "" {
			jobs[m.Broadcast] = true
		}
	}
	for job := range jobs {
		o.jobProgress(context.Background(), job)
	}
}
