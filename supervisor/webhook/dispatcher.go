package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
)

// Store is where events wait; *store.Store implements it.
type Store interface {
	// EventHeads returns each organization's oldest event that is not a
	// dead letter (only it may be delivered, which keeps the order), in
	// the order of the organizations' IDs (pick takes turns in it), in
	// one query.
	EventHeads(ctx context.Context) ([]Event, error)
	EventDelivered(ctx context.Context, seq int64) error
	EventFailed(ctx context.Context, seq int64, attempts int, next time.Time, lastErr string) error
	EventDead(ctx context.Context, seq int64, attempts int, at time.Time, lastErr string) error
	DeadEvents(ctx context.Context, limit int) ([]Event, error)
	RetryDeadEvent(ctx context.Context, id string, now time.Time) (Event, error)
	EventCounts(ctx context.Context) (waiting, dead int, err error)
}

// Metrics is what delivery reports; *metrics.Metrics implements it.
type Metrics interface {
	WebhookDelivery(result string)
	SetWebhookQueue(waiting, dead int)
}

// Options configure a Dispatcher.
type Options struct {
	URL         string
	Secret      []byte
	GiveUpAfter time.Duration
	Store       Store
	Metrics     Metrics
	Log         *slog.Logger
	Clock       clock.Clock
	// Timeout bounds one delivery, connection to answer.
	Timeout time.Duration
	// Parallel is how many organizations are delivered to at once; each
	// organization's events go one at a time.
	Parallel int
}

// Dispatcher delivers committed events.
type Dispatcher struct {
	o      Options
	client *http.Client
	wake   chan struct{}

	mu       sync.Mutex
	inflight map[string]bool
	// hold keeps an organization's head back after its outcome could not
	// be recorded, so that a failing store is not met with a hot loop.
	hold map[string]time.Time
	// last is the organization whose delivery started last: the next
	// round begins after it, so that every organization with an event due
	// gets its turn before any gets a second one.
	last string
	// countedAt spaces the counts for the gauges: reading them is cheap
	// (the store keeps them), but a round is one query, and a statement
	// more at every round would double that for a gauge.
	countedAt time.Time
}

// New returns a dispatcher; Run delivers.
func New(o Options) *Dispatcher {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	return &Dispatcher{
		o: o,
		client: &http.Client{
			Timeout: o.Timeout,
			// A redirect is an answer other than 2xx: following it would
			// send the signed body somewhere the operator did not name.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake:     make(chan struct{}, 1),
		inflight: map[string]bool{},
		hold:     map[string]time.Time{},
	}
}

// Notify tells the dispatcher that events were committed.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// idlePoll bounds how late a missed Notify is made up for.
const idlePoll = 5 * time.Second

// Run delivers until ctx ends, then waits for the deliveries under way.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		wait := d.round(ctx, &wg)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// round starts the deliveries that are due and returns how long to wait
// for the next one.
func (d *Dispatcher) round(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	d.gauges(ctx)
	// The heads are read under the lock that a delivery takes to leave
	// inflight, after its outcome is recorded: an event is then either
	// gone from the heads or still marked in flight, never sent twice.
	d.mu.Lock()
	defer d.mu.Unlock()
	heads, err := d.o.Store.EventHeads(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.o.Log.Error("reading webhook events failed; tried again shortly", "err", err)
		}
		return time.Second
	}
	now := d.o.Clock.Now()
	for org, h := range d.hold {
		if !h.After(now) {
			delete(d.hold, org)
		}
	}
	start, wait := pick(heads, d.last, d.inflight, d.hold, d.o.Parallel-len(d.inflight), now)
	for _, e := range start {
		d.inflight[e.Org] = true
		d.last = e.Org
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.deliver(ctx, e)
			d.mu.Lock()
			delete(d.inflight, e.Org)
			d.mu.Unlock()
			d.Notify()
		}()
	}
	return wait
}

// pick decides which heads start now, and how long until the first one
// left waiting is due. heads are the organizations' next events in the
// order of their IDs; they are taken round-robin from the first
// organization after last, so that organizations early in that order do
// not take every free slot (with organizations a to d holding 100 events
// each, z's one event went out 393rd of 401). Organizations busy with a
// delivery, or held back until a time in hold, are skipped; at most free
// start.
func pick(heads []Event, last string, busy map[string]bool, hold map[string]time.Time, free int, now time.Time) (start []Event, wait time.Duration) {
	wait = idlePoll
	first := sort.Search(len(heads), func(i int) bool { return heads[i].Org > last })
	for k := range heads {
		e := heads[(first+k)%len(heads)]
		if busy[e.Org] {
			continue
		}
		due := e.NextAt.Sub(now)
		if h, ok := hold[e.Org]; ok && h.After(now) {
			due = max(due, h.Sub(now))
		}
		if due > 0 {
			wait = min(wait, due)
			continue
		}
		if len(start) >= free {
			break // a finishing delivery wakes the loop
		}
		start = append(start, e)
	}
	return start, wait
}

// countEvery spaces the gauges' counts.
const countEvery = 5 * time.Second

func (d *Dispatcher) gauges(ctx context.Context) {
	now := d.o.Clock.Now()
	if now.Sub(d.countedAt) < countEvery {
		return
	}
	d.countedAt = now
	waiting, dead, err := d.o.Store.EventCounts(ctx)
	if err == nil {
		d.o.Metrics.SetWebhookQueue(waiting, dead)
	}
}

// deliver makes one attempt and records its outcome. An outcome that
// cannot be recorded leaves the event as it was: it is delivered again,
// which the event ID lets the receiver recognise.
func (d *Dispatcher) deliver(ctx context.Context, e Event) {
	err := d.post(ctx, e)
	if ctx.Err() != nil {
		return // shutting down: the event waits for the next run
	}
	// Recorded even if the run is ending meanwhile.
	rctx := context.WithoutCancel(ctx)
	now := d.o.Clock.Now()
	attempts := e.Attempts + 1
	log := d.o.Log.With("org", e.Org, "event", e.Kind, "event_id", e.ID)
	if err == nil {
		if err := d.o.Store.EventDelivered(rctx, e.Seq); err != nil {
			d.holdBack(e.Org, now)
			log.Error("recording a delivered webhook failed; it will be delivered again", "err", err)
		}
		d.o.Metrics.WebhookDelivery("delivered")
		if e.Attempts > 0 {
			log.Info("webhook delivered after failures", "attempts", attempts)
		}
		return
	}
	created := e.Created
	if created.IsZero() {
		created = e.At
	}
	next, dead := afterFailure(created, now, attempts, d.o.GiveUpAfter, rand.Float64())
	if dead {
		if err := d.o.Store.EventDead(rctx, e.Seq, attempts, now, err.Error()); err != nil {
			d.holdBack(e.Org, now)
			log.Error("recording a dead webhook failed", "err", err)
		}
		d.o.Metrics.WebhookDelivery("dead")
		log.Error("webhook given up: a dead letter now, listed at GET /v1/webhooks/dead",
			"attempts", attempts, "give_up_after", d.o.GiveUpAfter.String(), "err", err)
		return
	}
	if err := d.o.Store.EventFailed(rctx, e.Seq, attempts, next, err.Error()); err != nil {
		d.holdBack(e.Org, now)
		log.Error("recording a failed webhook failed", "err", err)
	}
	d.o.Metrics.WebhookDelivery("failed")
	log.Warn("webhook delivery failed; retried later", "attempts", attempts, "retry_at", next.UTC().Format(time.RFC3339), "err", err)
}

// holdBack delays org's next attempt after an outcome that could not be
// recorded.
func (d *Dispatcher) holdBack(org string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hold[org] = now.Add(firstRetry)
}

// post sends the event once; nil means the receiver answered 2xx.
func (d *Dispatcher) post(ctx context.Context, e Event) error {
	b := e.Body()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.o.URL, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wa-sidecar")
	req.Header.Set("X-Wa-Sidecar-Event", e.Kind)
	req.Header.Set("X-Wa-Sidecar-Id", e.ID)
	req.Header.Set(SignatureHeader, Sign(d.o.Secret, b, d.o.Clock.Now()))
	resp, err := d.client.Do(req)
	if err != nil {
		// Without the URL: it may carry credentials, and the operator
		// knows where webhooks go.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// ErrNotFound answers a dead letter that does not exist.
var ErrNotFound = errors.New("no such dead letter")

// Dead lists the dead letters, newest first.
func (d *Dispatcher) Dead(ctx context.Context, limit int) ([]Event, error) {
	return d.o.Store.DeadEvents(ctx, limit)
}

// Retry makes a dead letter its organization's next event again.
func (d *Dispatcher) Retry(ctx context.Context, id string) (Event, error) {
	e, err := d.o.Store.RetryDeadEvent(ctx, id, d.o.Clock.Now())
	if err != nil {
		return e, err
	}
	d.o.Log.Info("dead webhook retried", "org", e.Org, "event", e.Kind, "event_id", e.ID)
	d.Notify()
	return e, nil
}
