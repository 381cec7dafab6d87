package statusapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
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
	ob := outbox.New(outbox.Options{Config: cfg, Store: st, Metrics: metrics.New(prometheus.NewRegistry(), 5), Log: log,
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
