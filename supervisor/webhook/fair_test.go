package webhook_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// Organizations take turns: with a to d holding 100 events each and z one,
// z's event goes out within the first round of turns, not after the
// others' 400; each organization's events keep their order throughout.
func TestOrganizationsTakeTurns(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		t.Run(fmt.Sprintf("parallel=%d", parallel), func(t *testing.T) {
			r := newReceiver(t)
			st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			d := webhook.New(webhook.Options{URL: r.srv.URL, Secret: secret, GiveUpAfter: time.Hour, Store: st, Metrics: &metrics{},
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 2 * time.Second, Parallel: parallel})
			st.EnableEvents(false, d.Notify)
			orgs := []string{"a", "b", "c", "d", "z"}
			byOrg := map[string][]webhook.Event{}
			orgOf := map[string]string{}
			total := 0
			for _, org := range orgs {
				n := 100
				if org == "z" {
					n = 1
				}
				byOrg[org] = events(org, n)
				for _, e := range byOrg[org] {
					orgOf[e.ID] = org
				}
				total += n
				// The backlog is there before delivery starts, as after a
				// restart or a receiver's outage.
				if err := st.AddEvents(context.Background(), byOrg[org]...); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			t.Cleanup(func() { cancel(); <-done; st.Close() })

			eventually(t, "every event delivered", func() bool { return len(r.delivered()) >= total })
			got := r.delivered()
			if len(got) != total {
				t.Fatalf("%d deliveries of %d events", len(got), total)
			}
			var seq []string
			for _, id := range got {
				seq = append(seq, orgOf[id])
			}
			z := slices.Index(seq, "z")
			if z < 0 || z >= len(orgs)+parallel {
				t.Fatalf("org z's one event went out %dth of %d: %v…", z+1, total, seq[:min(len(seq), 12)])
			}
			for _, org := range orgs {
				var mine []string
				for _, id := range got {
					if orgOf[id] == org {
						mine = append(mine, id)
					}
				}
				if !slices.Equal(mine, ids(byOrg[org])) {
					t.Fatalf("org %s's events arrived out of order", org)
				}
			}
			if parallel == 1 {
				// One delivery at a time: strictly a, b, c, d, z, a, b, …
				var want []string
				for i := range 100 {
					for _, org := range orgs {
						if i < len(byOrg[org]) {
							want = append(want, org)
						}
					}
				}
				if !slices.Equal(seq, want) {
					t.Fatalf("deliveries went to %v…, want strict turns %v…", seq[:12], want[:12])
				}
			}
		})
	}
}

// The choice of what starts is round-robin from the organization after the
// last one started, skipping the busy, the held and those not yet due.
func TestPickRoundRobin(t *testing.T) {
	now := clocktest.Origin()
	heads := []webhook.Event{{Org: "a"}, {Org: "b"}, {Org: "c", NextAt: now.Add(3 * time.Second)}, {Org: "d"}, {Org: "z"}}
	start, wait := webhook.Pick(heads, "b", map[string]bool{"d": true}, map[string]time.Time{"a": now.Add(time.Second)}, 2, now)
	var got []string
	for _, e := range start {
		got = append(got, e.Org)
	}
	if !slices.Equal(got, []string{"z", "b"}) || wait != time.Second {
		t.Fatalf("started %v, wait %s; want [z b] and 1s", got, wait)
	}
}
