package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/fingerprint"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// One proxy spelled three ways is one egress: with max_live_per_egress 2
// never more than two of its organizations are live, checked at every
// launch (the harness counts live processes as they change) and at every
// poll, and the third starts once a slot is given back.
func TestEgressCapHoldsAcrossSpellings(t *testing.T) {
	cfg := testConfig()
	cfg.Workers.MaxLive = 5
	cfg.Workers.MaxLivePerEgress = 2
	h := newHarness(t, cfg)
	spellings := map[string]string{
		"ip":     "socks5://u:p@127.0.0.1:1080",
		"name":   "socks5://u:p@localhost:1080",
		"zeroed": "socks5://u:p@127.0.0.1:01080",
	}
	for id, url := range spellings {
		if _, err := h.f.Start(bg, id, StartOptions{Proxy: &url}); err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
	}
	live := func() (n int, queued string) {
		for id := range spellings {
			s := h.snap(id)
			if s.WorkerPID != 0 {
				n++
			} else {
				queued = id
			}
		}
		return n, queued
	}
	check := func() {
		t.Helper()
		if n, _ := live(); n > 2 || h.maxAliveSeen() > 2 {
			t.Fatalf("%d live now, %d at most, with max_live_per_egress 2 on one proxy", n, h.maxAliveSeen())
		}
	}
	h.eventually("two live", func() bool {
		check()
		h.clk.Advance(500 * time.Millisecond)
		n, _ := live()
		return n == 2
	})
	// Well past the start gaps: the third still waits for its egress.
	for range 20 {
		h.clk.Advance(time.Second)
		check()
	}
	_, third := live()
	if s := h.snap(third); s.Status != state.Queued || s.Egress != "127.0.0.1:1080" {
		t.Fatalf("the third (%s) is %s on egress %q", third, s.Status, s.Egress)
	}
	for id := range spellings {
		if s := h.snap(id); s.Egress != "127.0.0.1:1080" {
			t.Fatalf("%s counts on egress %q", id, s.Egress)
		}
	}
	var first string
	for id := range spellings {
		if id != third {
			first = id
			break
		}
	}
	h.stop(first)
	h.eventually(third+" live once a slot is back", func() bool {
		check()
		h.clk.Advance(500 * time.Millisecond)
		return h.snap(third).WorkerPID != 0
	})
	check()
}

// A proxy whose host does not resolve fails that start with the reason
// shown; no worker is launched and nothing is counted on any egress.
func TestUnresolvedProxyHostFailsTheStart(t *testing.T) {
	h := newHarness(t, testConfig())
	url := "socks5://alice:s3cret@nowhere.invalid:1080"
	if _, err := h.f.Start(bg, "nx", StartOptions{Proxy: &url}); err != nil {
		t.Fatal(err)
	}
	s := h.waitStatus("nx", state.Failed)
	if s.LastEvent != lifecycle.ReasonProxyUnresolved || !strings.Contains(s.LastError, "nowhere.invalid does not resolve") ||
		strings.Contains(s.LastError, "s3cret") {
		t.Fatalf("status %+v", s)
	}
	h.advance(10 * time.Second)
	if n := h.launches("nx"); n != 0 {
		t.Fatalf("%d launches on an unresolved proxy", n)
	}
}

// Starts refused for max_orgs or a hold reserve no fingerprint: with the
// whole catalog's worth of refusals the next real organization still gets
// one of its own. The picks are deterministic (always the first free
// entry, and the first entry once none is free), so a leak shows as a
// shared fingerprint.
func TestRefusedStartsReserveNoFingerprint(t *testing.T) {
	catalog := len(fingerprint.Catalog())
	cfg := testConfig()
	cfg.Workers.MaxOrgs = 2
	var held []lifecycle.Record
	for i := range catalog + 10 {
		held = append(held, lifecycle.Record{ID: fmt.Sprint("held", i), Status: state.Stopped, Deleted: true,
			Hold: lifecycle.Hold{Until: clocktest.Origin().Add(time.Hour), Reason: lifecycle.HoldLogout}})
	}
	h := newHarnessPicking(t, cfg, func(int) int { return 0 }, held...)
	h.ready()
	h.start("a")
	var he *lifecycle.HoldError
	for _, r := range held {
		if _, err := h.f.Start(bg, r.ID, StartOptions{}); !errors.As(err, &he) {
			t.Fatalf("start of held %s: %v", r.ID, err)
		}
	}
	h.start("b")
	for i := range catalog + 10 {
		if _, err := h.f.Start(bg, fmt.Sprint("over", i), StartOptions{}); !errors.Is(err, ErrTooManyOrgs) {
			t.Fatalf("start past max_orgs: %v", err)
		}
	}
	h.f.fps.mu.Lock()
	reserved := len(h.f.fps.of)
	h.f.fps.mu.Unlock()
	if reserved != 2 {
		t.Fatalf("%d fingerprints reserved for 2 registered organizations", reserved)
	}
	if rec, _ := h.store.get("b"); rec.Fingerprint == "" {
		t.Fatalf("b registered without a fingerprint: %+v", rec)
	}
	if err := h.f.Delete(bg, "b"); err != nil {
		t.Fatal(err)
	}
	h.start("c")
	fps := map[string]string{}
	for _, id := range []string{"a", "c"} {
		rec, _ := h.store.get(id)
		if other, dup := fps[rec.Fingerprint]; dup || rec.Fingerprint == "" {
			t.Fatalf("%s and %s share fingerprint %q", id, other, rec.Fingerprint)
		}
		fps[rec.Fingerprint] = id
	}
}

// The status object shows no user information in any form: a token as
// the user name is as secret as a password.
func TestStatusHidesAnyUserinfo(t *testing.T) {
	h := newHarness(t, testConfig())
	for i, c := range []struct{ url, secret, shown string }{
		{"socks5://u:p-secret@10.0.0.1:1080", "p-secret", "socks5://***@10.0.0.1:1080"},
		{"http://sk_live_TOKEN@10.0.0.2:8080", "sk_live_TOKEN", "http://***@10.0.0.2:8080"},
		{"http://sk_live_TOKEN:@10.0.0.3:8080", "sk_live_TOKEN", "http://***@10.0.0.3:8080"},
		{"socks5://:pw-only@10.0.0.4:1080", "pw-only", "socks5://***@10.0.0.4:1080"},
	} {
		id := fmt.Sprint("ui", i)
		s, err := h.f.Start(bg, id, StartOptions{Proxy: &c.url})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(s)
		if s.Proxy != c.shown || strings.Contains(string(raw), c.secret) {
			t.Errorf("%s: status shows proxy %q (want %q): %s", c.url, s.Proxy, c.shown, raw)
		}
	}
}
