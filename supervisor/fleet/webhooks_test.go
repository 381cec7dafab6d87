package fleet

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

func TestStepEvents(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	org := func(st state.Status, deleted bool) lifecycle.Org {
		return lifecycle.Org{Record: lifecycle.Record{ID: "2", Status: st, Reason: "why", Deleted: deleted}}
	}
	cleared := lifecycle.Count{Metric: lifecycle.MetricSessionCleared, Label: "bad_mac_errors"}
	for _, c := range []struct {
		name       string
		prev, next lifecycle.Org
		effects    []lifecycle.Effect
		want       []string
		data       string
	}{
		{"no change", org(state.Connected, false), org(state.Connected, false), nil, nil, ""},
		{"a status change", org(state.QRRequired, false), org(state.Connected, false), nil,
			[]string{"status_changed:connected:why"}, `{"previous":"qr_required"}`},
		{"deleted", org(state.Stopped, false), org(state.Stopped, true), nil,
			[]string{"status_changed:stopped:why"}, `{"deleted":true,"previous":"stopped"}`},
		{"a Bad MAC cure", org(state.Connected, false), org(state.Starting, false), []lifecycle.Effect{cleared},
			[]string{"status_changed:starting:why", "session_cleared:starting:bad_mac_errors"}, `{"previous":"connected"}`},
		{"other counts are not events", org(state.Connected, false), org(state.Connected, false),
			[]lifecycle.Effect{lifecycle.Count{Metric: lifecycle.MetricBadMACError}}, nil, ""},
	} {
		got := stepEvents("2", c.prev, c.next, c.effects, now)
		var kinds []string
		for _, e := range got {
			kinds = append(kinds, e.Kind+":"+e.Status+":"+e.Reason)
			if e.Org != "2" || !e.At.Equal(now) || !strings.HasPrefix(e.ID, "evt_") {
				t.Errorf("%s: event %+v", c.name, e)
			}
		}
		if !slices.Equal(kinds, c.want) {
			t.Errorf("%s: %v, want %v", c.name, kinds, c.want)
		}
		if c.data != "" && string(got[0].Data) != c.data {
			t.Errorf("%s: data %s, want %s", c.name, got[0].Data, c.data)
		}
	}
}

// The events of a transition are committed with its record, in order.
func TestEventsCommittedWithTheRecord(t *testing.T) {
	h := newHarness(t, testConfig())
	h.start("w")
	h.connected("w", "573001:1@s.whatsapp.net")
	if _, err := h.f.Clear(bg, "w"); err != nil {
		t.Fatal(err)
	}
	h.eventually("the session_cleared event", func() bool {
		got := h.store.committed("w")
		return len(got) > 0 && strings.HasPrefix(got[len(got)-1], "session_cleared:") && strings.HasSuffix(got[len(got)-1], ":manual")
	})
	got := h.store.committed("w")
	if !slices.Equal(got[:3], []string{"status_changed:queued:start", "status_changed:starting:spawn", "status_changed:connected:connected"}) {
		t.Fatalf("events %v", got)
	}
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	for _, e := range h.store.events {
		var d map[string]any
		if e.Kind == "status_changed" && (json.Unmarshal(e.Data, &d) != nil || d["previous"] == nil) {
			t.Fatalf("status_changed without previous: %s", e.Data)
		}
	}
}
