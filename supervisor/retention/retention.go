// Package retention keeps state.db from growing without bound: it deletes
// final messages (sent, delivered, read, failed) older than
// messages.retention with their dead letters, broadcast jobs whose last
// message went, webhook dead letters of the same age, and uploaded files
// of that age that no pending message names.
//
// What is old and how often to look are pure functions of the time; the
// Pruner runs them at boot and then on that cadence, in small transactions
// (one batch of rows each), so that no enqueue, send or API read waits
// behind a prune for longer than one batch.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
)

// MaxEvery bounds the time between two prunes, whatever the retention:
// a long retention still prunes in hourly bites rather than piling up days
// of rows for one long round.
const MaxEvery = time.Hour

// BatchSize is how many rows one transaction looks at by default: a few
// milliseconds of the store's single connection.
const BatchSize = 500

// Cutoff is the time before which a final message (by its last change) or
// a dead letter (by when it died) is old enough to delete.
func Cutoff(now time.Time, retention time.Duration) time.Time {
	return now.Add(-retention)
}

// Every is the time between two prunes: a tenth of the retention, so that
// nothing outlives it by more than 10 %, and at most MaxEvery.
func Every(retention time.Duration) time.Duration {
	return min(retention/10, MaxEvery)
}

// Batch is what one pruning transaction did, and where the next one starts.
type Batch struct {
	// Next is the sequence number the next batch starts after.
	Next int64
	// More is false when nothing older than the cutoff is left to look at.
	More bool
	// Rows deleted, by kind.
	Messages, Broadcasts, Events int
}

// Store deletes old rows one batch per transaction, walking its table in
// sequence order from after.
type Store interface {
	PruneMessages(ctx context.Context, cutoff time.Time, after int64, limit int) (Batch, error)
	PruneDeadLetters(ctx context.Context, cutoff time.Time, after int64, limit int) (Batch, error)
}

// Media deletes the stored files that no pending message needs any more
// and that were uploaded before cutoff; *mediastore.Library implements it.
type Media interface {
	Prune(ctx context.Context, cutoff time.Time) (int, error)
}

// Metrics counts pruned rows; *metrics.Metrics implements it.
type Metrics interface {
	Pruned(kind string, n int)
}

// Options wire a Pruner.
type Options struct {
	// Retention is messages.retention.
	Retention time.Duration
	Store     Store
	Clock     clock.Clock
	Log       *slog.Logger
	Metrics   Metrics
	// Media is pruned after the messages, whose going frees files; nil: none.
	Media Media
	// BatchSize defaults to BatchSize.
	BatchSize int
}

// Pruner deletes what has outlived the retention.
type Pruner struct {
	o Options
}

// New returns a Pruner; Clock defaults to the wall clock and Log to slog's
// default.
func New(o Options) *Pruner {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = BatchSize
	}
	return &Pruner{o: o}
}

// Result totals one prune.
type Result struct {
	Messages, Broadcasts, Events, Media int
}

// Run prunes now and then every Every(retention) until ctx ends. A failed
// prune is logged and tried again at the next turn: retention is
// housekeeping, never a reason to stop the supervisor.
func (p *Pruner) Run(ctx context.Context) error {
	if p.o.Retention <= 0 {
		// Every would be 0: a loop pruning without a pause. Config
		// validation keeps the retention at 1m or more.
		return fmt.Errorf("retention: %s is not a retention", p.o.Retention)
	}
	p.o.Log.Info("retention: pruning state.db", "retention", p.o.Retention.String(), "every", Every(p.o.Retention).String())
	for {
		if _, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
			p.o.Log.Error("retention: prune failed, trying again at the next turn", "err", err, "every", Every(p.o.Retention).String())
		}
		wake := make(chan struct{})
		t := p.o.Clock.AfterFunc(Every(p.o.Retention), func() { close(wake) })
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		}
	}
}

// Prune deletes, batch by batch, what is older than the cutoff as of the
// clock's now. Between two batches the store's connection is free, and
// database/sql hands a released connection straight to a request already
// waiting for it, before the next batch can ask: an enqueue or an API read
// waits behind a batch, never behind a whole prune.
func (p *Pruner) Prune(ctx context.Context) (Result, error) {
	now := p.o.Clock.Now()
	cutoff := Cutoff(now, p.o.Retention)
	var r Result
	err := p.walk(ctx, "messages", func(after int64) (Batch, error) {
		return p.o.Store.PruneMessages(ctx, cutoff, after, p.o.BatchSize)
	}, &r)
	if err == nil {
		err = p.walk(ctx, "dead letters", func(after int64) (Batch, error) {
			return p.o.Store.PruneDeadLetters(ctx, cutoff, after, p.o.BatchSize)
		}, &r)
	}
	if err == nil && p.o.Media != nil {
		r.Media, err = p.o.Media.Prune(ctx, cutoff)
		if p.o.Metrics != nil {
			p.o.Metrics.Pruned("media", r.Media)
		}
	}
	if r != (Result{}) {
		p.o.Log.Info("retention: pruned", "messages", r.Messages, "broadcasts", r.Broadcasts,
			"webhook_events", r.Events, "media", r.Media, "older_than", cutoff.UTC().Format(time.RFC3339))
	}
	return r, err
}

func (p *Pruner) walk(ctx context.Context, what string, batch func(after int64) (Batch, error), r *Result) error {
	var after int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := batch(after)
		if err != nil {
			return fmt.Errorf("prune %s after seq %d: %w", what, after, err)
		}
		r.Messages += b.Messages
		r.Broadcasts += b.Broadcasts
		r.Events += b.Events
		if b.Messages+b.Broadcasts+b.Events > 0 {
			p.o.Log.Debug("retention: batch pruned", "walk", what, "through_seq", b.Next, "messages", b.Messages,
				"broadcasts", b.Broadcasts, "webhook_events", b.Events)
		}
		if p.o.Metrics != nil {
			p.o.Metrics.Pruned("messages", b.Messages)
			p.o.Metrics.Pruned("broadcasts", b.Broadcasts)
			p.o.Metrics.Pruned("webhook_events", b.Events)
		}
		if !b.More {
			return nil
		}
		after = b.Next
	}
}
