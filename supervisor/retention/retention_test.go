package retention_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/retention"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestCutoffAndCadence(t *testing.T) {
	o := clocktest.Origin()
	for _, c := range []struct {
		retention time.Duration
		cutoff    time.Time
		every     time.Duration
	}{
		{720 * time.Hour, o.Add(-720 * time.Hour), time.Hour}, // the default: hourly, not every 72 h
		{10 * time.Hour, o.Add(-10 * time.Hour), time.Hour},   // a tenth is exactly the bound
		{5 * time.Hour, o.Add(-5 * time.Hour), 30 * time.Minute},
		{time.Minute, o.Add(-time.Minute), 6 * time.Second}, // the minimum
	} {
		if got := retention.Cutoff(o, c.retention); !got.Equal(c.cutoff) {
			t.Errorf("Cutoff(%s) = %s, want %s", c.retention, got, c.cutoff)
		}
		if got := retention.Every(c.retention); got != c.every {
			t.Errorf("Every(%s) = %s, want %s", c.retention, got, c.every)
		}
	}
}

// stepClock hands each AfterFunc to the test instead of running it, so the
// test sees the delay the Pruner asked for and decides when it fires.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	timers chan stepTimer
}

type stepTimer struct {
	d time.Duration
	f func()
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.timers <- stepTimer{d, f}
	return stopper{}
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type stopper struct{}

func (stopper) Stop() bool { return true }

// cutoffs records the cutoff of every messages walk that starts.
type cutoffs struct {
	retention.Store
	seen chan time.Time
}

func (c cutoffs) PruneMessages(ctx context.Context, cutoff time.Time, after int64, limit int) (retention.Batch, error) {
	if after == 0 {
		c.seen <- cutoff
	}
	return c.Store.PruneMessages(ctx, cutoff, after, limit)
}

// Run prunes at boot, then waits a tenth of the retention (at most an
// hour) between prunes, each with the cutoff of its own time.
func TestRunPrunesAtBootAndOnItsCadence(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := clocktest.Origin()
	clk := &stepClock{now: o, timers: make(chan stepTimer)}
	seen := make(chan time.Time, 1)
	const ret = 720 * time.Hour
	p := retention.New(retention.Options{Retention: ret, Store: cutoffs{st, seen}, Clock: clk, Log: quiet})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()

	if got := <-seen; !got.Equal(o.Add(-ret)) {
		t.Fatalf("boot prune cutoff %s, want %s", got, o.Add(-ret))
	}
	for round := 1; round <= 2; round++ {
		timer := <-clk.timers
		if timer.d != time.Hour {
			t.Fatalf("round %d waits %s, want 1h", round, timer.d)
		}
		clk.advance(timer.d)
		timer.f()
		if got, want := <-seen, o.Add(time.Duration(round)*time.Hour-ret); !got.Equal(want) {
			t.Fatalf("round %d cutoff %s, want %s", round, got, want)
		}
	}
	<-clk.timers
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run ended with %v on shutdown", err)
	}
}

// betweenBatches runs hook after each messages batch that leaves more to do.
type betweenBatches struct {
	retention.Store
	hook func(b retention.Batch)
}

func (w betweenBatches) PruneMessages(ctx context.Context, cutoff time.Time, after int64, limit int) (retention.Batch, error) {
	b, err := w.Store.PruneMessages(ctx, cutoff, after, limit)
	if err == nil && b.More {
		w.hook(b)
	}
	return b, err
}

// A prune of a large table holds the store one batch at a time: between
// two batches an enqueue commits (it would wait for the whole prune, or
// forever here, if a transaction spanned the batches), and the prune then
// finishes without touching the new message.
func TestEnqueueCommitsWhilePruningIsMidway(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	o := clocktest.Origin()
	if err := st.SaveOrg(ctx, lifecycle.Record{ID: "2", Status: state.Queued, Run: true}, nil, o); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{ID: fmt.Sprint("m", i), Org: "2", To: fmt.Sprintf("5730%07d", i), Text: "offer",
			WAID: fmt.Sprint("3EB0", i), Broadcast: "job", QueuedAt: o}
	}
	if _, _, err := st.InsertBroadcast(ctx, outbox.Broadcast{ID: "job", Org: "2", Text: "offer", Total: n, CreatedAt: o}, msgs); err != nil {
		t.Fatal(err)
	}
	// All fail (expired) at o, in one transaction: n final messages.
	if failed, err := st.ExpireQueued(ctx, o.Add(time.Millisecond), o); err != nil || len(failed) != n {
		t.Fatalf("expire: %d %v", len(failed), err)
	}

	const ret = time.Hour
	now := o.Add(ret + time.Minute)
	enqueued := 0
	hook := func(b retention.Batch) {
		if enqueued > 0 || b.Messages == 0 {
			return
		}
		left, err := st.Messages(ctx, "2", outbox.Filter{Limit: 1})
		if err != nil || len(left) == 0 {
			t.Fatalf("no message left mid-way: %v", err)
		}
		// The guard only turns a deadlock into a failure; it is no
		// measure of speed.
		ictx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		m := outbox.Message{ID: "fresh", Org: "2", To: "573009999999", Text: "code 1234", WAID: "3EB0fresh", QueuedAt: now}
		if _, created, err := st.InsertMessage(ictx, m); err != nil || !created {
			t.Fatalf("enqueue while pruning: %v %v", created, err)
		}
		enqueued++
	}
	p := retention.New(retention.Options{Retention: ret, Store: betweenBatches{st, hook}, Clock: clock.NewFake(now), Log: quiet, BatchSize: 100})
	r, err := p.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if enqueued != 1 {
		t.Fatalf("the enqueue ran %d times: the prune was not batched", enqueued)
	}
	if r.Messages != n || r.Broadcasts != 1 {
		t.Fatalf("pruned %+v, want %d messages and the job", r, n)
	}
	left, err := st.Messages(ctx, "2", outbox.Filter{Limit: 10})
	if err != nil || len(left) != 1 || left[0].ID != "fresh" || left[0].Status != outbox.Queued {
		t.Fatalf("left %+v %v: want the fresh message, still queued", left, err)
	}
}

// A zero retention (a wiring bug: config keeps it at 1m or more) is an
// error, not a loop that prunes without a pause.
func TestRunRefusesNoRetention(t *testing.T) {
	p := retention.New(retention.Options{Store: nil, Clock: clock.NewFake(clocktest.Origin()), Log: quiet})
	if err := p.Run(t.Context()); err == nil {
		t.Fatal("Run accepted a zero retention")
	}
}

// mediaPrunes records the cutoffs the media are pruned with.
type mediaPrunes struct{ cutoffs []time.Time }

func (m *mediaPrunes) Prune(_ context.Context, cutoff time.Time) (int, error) {
	m.cutoffs = append(m.cutoffs, cutoff)
	return 2, nil
}

// A prune ends with the media, at the messages' cutoff, and counts them.
func TestPruneIncludesMedia(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := clocktest.Origin()
	media := &mediaPrunes{}
	p := retention.New(retention.Options{Retention: time.Hour, Store: st, Clock: clock.NewFake(now), Log: quiet, Media: media})
	r, err := p.Prune(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r.Media != 2 || len(media.cutoffs) != 1 || !media.cutoffs[0].Equal(now.Add(-time.Hour)) {
		t.Fatalf("result %+v, media pruned at %v; want 2 at %s", r, media.cutoffs, now.Add(-time.Hour))
	}
}
