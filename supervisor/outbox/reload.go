package outbox

import (
	"context"
	"fmt"
	"time"
)

// Reload reads org's sending memory from the store again: its counts, the
// messages of its local day, when its number first linked, its new-chat
// restriction and pacing. Start loads these for every organization; a move
// adds an organization to this node's store (or removes it) afterwards, and
// its memory must follow, or the target would pace a warmed-up number as
// new and forget a 463 restriction. What the store no longer holds resets.
func (o *Outbox) Reload(ctx context.Context, org string) error {
	now := o.clock.Now()
	c, err := o.store.OrgCounts(ctx, org, dayStart(now))
	if err != nil {
		return fmt.Errorf("reload %s: %w", org, err)
	}
	senders, err := o.store.Senders(ctx)
	if err != nil {
		return fmt.Errorf("reload %s: %w", org, err)
	}
	sent, err := o.store.SentSince(ctx, now.Add(-48*time.Hour))
	if err != nil {
		return fmt.Errorf("reload %s: %w", org, err)
	}
	linked, err := o.store.LinkedNumbers(ctx)
	if err != nil {
		return fmt.Errorf("reload %s: %w", org, err)
	}
	o.mu.Lock()
	*o.counts.of(org, now) = c
	sch := o.scheduleOf(org)
	start, _ := sch.LocalDay(now)
	o.daily[org] = &dayCount{day: start, n: sch.sentIn(sent[org], now)}
	if at, ok := linked[org]; ok {
		o.firstLink[org] = at
	} else {
		delete(o.firstLink, org)
	}
	st := senders[org]
	o.senderLocked(org).restore(st, now)
	o.mu.Unlock()
	o.metrics.SetSendRestricted(org, now.Before(st.RestrictedUntil))
	o.metrics.SetOutboxDepth(org, c.Queued)
	o.kickJobs()
	return nil
}
