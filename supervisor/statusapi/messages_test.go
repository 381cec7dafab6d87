package statusapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/metrics"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

// decorated adds the outbox counts to the fake fleet's status objects, as
// the real fleet does.
type decorated struct {
	*fakeFleet
	o *outbox.Outbox
}

func (d decorated) Get(id string) (state.Snapshot, error) {
	s, err := d.fakeFleet.Get(id)
	d.o.Decorate(&s)
	return s, err
}

// outboxServer is the API over loopback HTTP with a real outbox on a real
// state.db; its organizations never connect, so what is accepted stays
// queued.
func outboxServer(tb testing.TB, maxRecipients int) (*httptest.Server, *outbox.Outbox) {
	tb.Helper()
	return outboxServerWith(tb, maxRecipients, func(s *store.Store) outbox.Store { return s })
}

// outboxServerWith lets a test put itself between the outbox and its store.
func outboxServerWith(tb testing.TB, maxRecipients int, wrap func(*store.Store) outbox.Store) (*httptest.Server, *outbox.Outbox) {
	tb.Helper()
	st, err := store.Open(filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	// The outbox takes messages only for organizations registered in
	// state.db, as the fleet's start commits them.
	if err := st.SaveOrg(tb.Context(), lifecycle.Record{ID: "2", Status: state.Queued, Run: true}, nil, time.Now()); err != nil {
		tb.Fatal(err)
	}
	cfg := config.Default().Messages
	cfg.MaxRecipients = maxRecipients
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ob := outbox.New(outbox.Options{Config: cfg, Store: wrap(st), Metrics: metrics.New(prometheus.NewRegistry(), 5), Log: log,
		Fleet: outbox.FleetFunc(func(string) (outbox.Worker, bool) { return nil, false })})
	if err := ob.Start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(New(decorated{newFakeFleet(), ob}, Options{Listen: "127.0.0.1:0", Log: log, Outbox: ob}))
	tb.Cleanup(func() { srv.Close(); ob.Stop(); st.Close() })
	return srv, ob
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// A retry with the same idempotency key gets the first answer, 202 and
// the same message or job; the key reused for something else is a 409.
func TestIdempotentRetries(t *testing.T) {
	srv, _ := outboxServer(t, 100)
	for _, c := range []struct{ path, body, other string }{
		{"/v1/orgs/2/messages", `{"to":"573001230001","text":"hi","idempotency_key":"k1"}`,
			`{"to":"573001230001","text":"bye","idempotency_key":"k1"}`},
		{"/v1/orgs/2/broadcasts", `{"recipients":["573001230001","573001230002"],"text":"hi","idempotency_key":"k2"}`,
			`{"recipients":["573001230001"],"text":"hi","idempotency_key":"k2"}`},
	} {
		code1, first := post(t, srv.URL+c.path, c.body)
		code2, again := post(t, srv.URL+c.path, c.body)
		if code1 != http.StatusAccepted || code2 != http.StatusAccepted || first["id"] == nil || again["id"] != first["id"] {
			t.Fatalf("%s: %d %v, then %d %v", c.path, code1, first, code2, again)
		}
		if code, body := post(t, srv.URL+c.path, c.other); code != http.StatusConflict || !strings.Contains(body["error"].(string), "idempotency_key") {
			t.Fatalf("%s: the key reused for another request: %d %v", c.path, code, body)
		}
	}
}

// A message POST for an organization the fleet still shows but state.db
// no longer holds (a POST racing its DELETE) is refused: the store checks
// in the insert's transaction, so nothing is queued for a deleted
// organization that a later registration of the same ID would send.
func TestMessageRacingDeleteIsRefused(t *testing.T) {
	srv, _ := outboxServer(t, 100)
	// The fake fleet knows 68e3f605f2d61bb5556b7b20; state.db does not.
	for _, c := range []struct{ path, body string }{
		{"/v1/orgs/68e3f605f2d61bb5556b7b20/messages", `{"to":"573001230001","text":"hi"}`},
		{"/v1/orgs/68e3f605f2d61bb5556b7b20/broadcasts", `{"recipients":["573001230001"],"text":"hi"}`},
	} {
		if code, body := post(t, srv.URL+c.path, c.body); code != http.StatusNotFound || body["code"] != "unknown_org" {
			t.Fatalf("%s: %d %v, want 404 unknown_org", c.path, code, body)
		}
	}
}

type diskError struct{}

func (diskError) Error() string { return "database or disk is full (13)" }
func (diskError) Code() int     { return 13 } // SQLITE_FULL, as modernc.org/sqlite reports it

// fullDisk refuses message inserts as a full disk does, while full is set.
type fullDisk struct {
	*store.Store
	full atomic.Bool
}

func (f *fullDisk) InsertMessage(ctx context.Context, m outbox.Message) (outbox.Message, bool, error) {
	if f.full.Load() {
		return outbox.Message{}, false, fmt.Errorf("queue message for %s: %w", m.Org, diskError{})
	}
	return f.Store.InsertMessage(ctx, m)
}

// A full disk while queueing answers 503 persist_failed with Retry-After,
// as README promises, and /readyz fails until a message write succeeds.
func TestDiskFullIsPersistFailed(t *testing.T) {
	var disk *fullDisk
	srv, _ := outboxServerWith(t, 100, func(s *store.Store) outbox.Store {
		disk = &fullDisk{Store: s}
		return disk
	})
	ready := func() int {
		t.Helper()
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	disk.full.Store(true)
	resp, err := http.Post(srv.URL+"/v1/orgs/2/messages", "application/json", strings.NewReader(`{"to":"573001230001","text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body["code"] != "persist_failed" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a full disk: %d %v Retry-After %q, want 503 persist_failed with Retry-After",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d while message writes fail", code)
	}
	disk.full.Store(false)
	if code, body := post(t, srv.URL+"/v1/orgs/2/messages", `{"to":"573001230001","text":"hi"}`); code != http.StatusAccepted {
		t.Fatalf("after space came back: %d %v", code, body)
	}
	if code := ready(); code != http.StatusOK {
		t.Fatalf("/readyz %d after a write went through", code)
	}
}
