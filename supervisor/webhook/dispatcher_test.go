package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

var secret = []byte("a webhook secret of some length")

// receiver is a real HTTP server on loopback that verifies every request
// and answers with the codes it is given, then 200.
type receiver struct {
	t     *testing.T
	mu    sync.Mutex
	codes []int
	got   []string // event ids, in arrival order, answered 2xx or not
	ok    []string // those answered 2xx
	srv   *httptest.Server
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{t: t, codes: codes}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := webhook.Verify(secret, body, req.Header.Get(webhook.SignatureHeader), time.Now(), webhook.Tolerance); err != nil {
			t.Errorf("a delivery does not verify: %v", err)
		}
		var b struct{ ID, Event string }
		if json.Unmarshal(body, &b) != nil || b.ID != req.Header.Get("X-Wa-Sidecar-Id") || b.Event != req.Header.Get("X-Wa-Sidecar-Event") {
			t.Errorf("body %s and headers %v disagree", body, req.Header)
		}
		r.mu.Lock()
		code := http.StatusOK
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		r.got = append(r.got, b.ID)
		if code/100 == 2 {
			r.ok = append(r.ok, b.ID)
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) delivered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ok)
}

type metrics struct {
	mu      sync.Mutex
	results map[string]int
}

func (m *metrics) WebhookDelivery(result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.results == nil {
		m.results = map[string]int{}
	}
	m.results[result]++
}
func (m *metrics) SetWebhookQueue(int, int) {}

// run starts a dispatcher for url over a real state.db; it returns the
// store to add events to.
func run(t *testing.T, url string, giveUp time.Duration) (*store.Store, *webhook.Dispatcher, *metrics) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	m := &metrics{}
	d := webhook.New(webhook.Options{URL: url, Secret: secret, GiveUpAfter: giveUp, Store: st, Metrics: m,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 2 * time.Second})
	st.EnableEvents(false, d.Notify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return st, d, m
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func events(org string, n int) []webhook.Event {
	out := make([]webhook.Event, n)
	for i := range out {
		out[i] = webhook.NewEvent(webhook.StatusChanged, org, "connected", "", time.Now(), map[string]int{"n": i})
	}
	return out
}

func ids(es []webhook.Event) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// A receiver that answers 500 gets the events later, in order, each
// delivered once it answers 2xx; another organization is not held up.
func TestFailuresRetryInOrder(t *testing.T) {
	r := newReceiver(t, 500, 500)
	st, _, m := run(t, r.srv.URL, time.Hour)
	a, b := events("a", 3), events("b", 1)
	if err := st.AddEvents(context.Background(), a...); err != nil {
		t.Fatal(err)
	}
	if err := st.AddEvents(context.Background(), b...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every event delivered", func() bool { return len(r.delivered()) == 4 })
	var gotA []string
	for _, id := range r.delivered() {
		if id != b[0].ID {
			gotA = append(gotA, id)
		}
	}
	if !slices.Equal(gotA, ids(a)) {
		t.Fatalf("org a's events arrived as %v, want %v", gotA, ids(a))
	}
	eventually(t, "the deliveries recorded", func() bool {
		waiting, dead, _ := st.EventCounts(context.Background())
		return waiting == 0 && dead == 0
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.results["failed"] != 2 || m.results["delivered"] != 4 {
		t.Fatalf("results %v", m.results)
	}
}

// After give_up_after an event is a dead letter: listed, and delivered
// when retried.
func TestDeadLetterAndRetry(t *testing.T) {
	r := newReceiver(t, 503)
	st, d, _ := run(t, r.srv.URL, time.Millisecond)
	e := events("a", 1)
	st.AddEvents(context.Background(), e...)
	var dead []webhook.Event
	eventually(t, "a dead letter", func() bool {
		dead, _ = d.Dead(context.Background(), 10)
		return len(dead) == 1
	})
	if dead[0].ID != e[0].ID || dead[0].Attempts != 1 || dead[0].LastError != "receiver answered HTTP 503" || dead[0].DeadAt.IsZero() {
		t.Fatalf("dead letter %+v", dead[0])
	}
	if _, err := d.Retry(context.Background(), "evt_nope"); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("retry of an unknown event: %v", err)
	}
	if _, err := d.Retry(context.Background(), e[0].ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the retried event delivered", func() bool { return slices.Equal(r.delivered(), ids(e)) })
	if dead, _ := d.Dead(context.Background(), 10); len(dead) != 0 {
		t.Fatalf("still dead: %+v", dead)
	}
}

// give_up_after counts from when the supervisor recorded the event, not
// from WhatsApp's time in its data: a receipt for a phone that was offline
// for two days, recorded now, is retried, not dead.
func TestGiveUpCountsFromTheCommit(t *testing.T) {
	r := newReceiver(t, 503)
	st, d, _ := run(t, r.srv.URL, time.Hour)
	old := webhook.NewEvent(webhook.MessageStatus, "a", "read", "", time.Now(),
		map[string]string{"wa_timestamp": time.Now().Add(-48 * time.Hour).UTC().Format(webhook.TimestampFormat)})
	st.AddEvents(context.Background(), old)
	eventually(t, "the old event delivered after its failure", func() bool { return slices.Equal(r.delivered(), []string{old.ID}) })
	if dead, _ := d.Dead(context.Background(), 10); len(dead) != 0 {
		t.Fatalf("dead letters %+v", dead)
	}
}
