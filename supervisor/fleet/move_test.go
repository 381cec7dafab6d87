package fleet

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

func stopForMove(t *testing.T, h *harness, id string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ran, err := h.f.StopForMove(ctx, id)
	if err != nil {
		t.Fatalf("stop %s for a move: %v", id, err)
	}
	return ran
}

func TestStopForMoveFencesUntilUnfenced(t *testing.T) {
	h := newHarness(t, testConfig())
	h.ready()
	h.connected("a", "571:1@s.whatsapp.net")
	if !stopForMove(t, h, "a") {
		t.Fatal("a connected organization did not count as running")
	}
	if n := h.aliveOf("a"); n != 0 {
		t.Fatalf("%d workers alive after the stop for the move", n)
	}
	var conflict *lifecycle.ConflictError
	if _, err := h.f.Start(context.Background(), "a", StartOptions{}); !errors.As(err, &conflict) {
		t.Fatalf("start during the move: %v, want a conflict", err)
	}
	if _, err := h.f.StopForMove(context.Background(), "a"); !errors.As(err, &conflict) {
		t.Fatalf("a second move: %v, want a conflict", err)
	}
	if _, err := h.f.Stop(context.Background(), "a"); err != nil {
		t.Fatalf("a stop during the move: %v", err)
	}
	h.f.Unfence("a")
	n := h.launches("a")
	h.start("a")
	h.eventually("a relaunched", func() bool { h.clk.Advance(100 * time.Millisecond); return h.launches("a") > n })
}

func TestStopForMoveOfAStoppedOrganization(t *testing.T) {
	h := newHarness(t, testConfig(), lifecycle.Record{ID: "b", Status: state.LoggedOut, Linked: false,
		Hold: lifecycle.Hold{Until: h0().Add(time.Hour), Reason: lifecycle.HoldLogout}})
	h.ready()
	if stopForMove(t, h, "b") {
		t.Fatal("a logged-out organization counted as running")
	}
	if s := h.snap("b"); s.Status != state.LoggedOut {
		t.Fatalf("status after the stop: %s, want logged_out kept", s.Status)
	}
	if _, err := h.f.StopForMove(context.Background(), "nobody"); !errors.Is(err, lifecycle.ErrUnknownOrg) {
		t.Fatalf("move of an unknown organization: %v", err)
	}
}

func TestEvictForgetsTheOrganization(t *testing.T) {
	h := newHarness(t, testConfig())
	h.ready()
	h.connected("a", "571:1@s.whatsapp.net")
	stopForMove(t, h, "a")
	if err := h.f.Evict(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.f.Get("a"); !errors.Is(err, lifecycle.ErrUnknownOrg) {
		t.Fatalf("get after the eviction: %v", err)
	}
	if len(h.f.List()) != 0 {
		t.Fatalf("listed after the eviction: %+v", h.f.List())
	}
	if err := h.f.Evict(context.Background(), "a"); err == nil {
		t.Fatal("an eviction without a move went through")
	}
}

func TestAdoptRunsWhatRanOnTheSource(t *testing.T) {
	h := newHarness(t, testConfig())
	h.ready()
	h.restoring["moved"] = true
	rec := lifecycle.Record{ID: "moved", Status: state.Stopped, Run: true, Linked: true, JID: "571:2@s.whatsapp.net", Fingerprint: "Chrome/Linux/6.1.0"}
	if _, err := h.f.Adopt(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	h.eventually("the adopted organization launched", func() bool {
		h.clk.Advance(100 * time.Millisecond)
		return h.aliveOf("moved") == 1
	})
	if _, err := h.f.Adopt(context.Background(), rec); err == nil {
		t.Fatal("a second adoption of a registered organization went through")
	}

	held := lifecycle.Record{ID: "held", Status: state.LoggedOut, Hold: lifecycle.Hold{Until: h0().Add(time.Hour), Reason: lifecycle.HoldLogout}}
	if _, err := h.f.Adopt(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	var hold *lifecycle.HoldError
	if _, err := h.f.Start(context.Background(), "held", StartOptions{}); !errors.As(err, &hold) {
		t.Fatalf("start of an adopted organization in a cooldown: %v, want the hold", err)
	}
}

func h0() time.Time { return clocktest.Origin() }

// An action's answer and a move's carry the outbox counts as Get does:
// they came from the runner undecorated, so a moved organization with
// messages waiting answered "0 queued".
func TestAnswersCarryTheDecoration(t *testing.T) {
	h := newUnbootedHarness(t, testConfig(), nil)
	h.f.decorate = func(s *state.Snapshot) { s.Outbox.Queued = 6 }
	h.f.Boot(nil)
	h.ready()
	snap, err := h.f.Adopt(context.Background(), lifecycle.Record{ID: "moved", Status: state.Stopped, Run: true, Linked: true, JID: "571:2@s.whatsapp.net", Fingerprint: "Chrome/Linux/6.1.0"})
	if err != nil || snap.Outbox.Queued != 6 {
		t.Fatalf("adopt: %v, outbox %+v", err, snap.Outbox)
	}
	snap, err = h.f.Start(context.Background(), "new", StartOptions{})
	if err != nil || snap.Outbox.Queued != 6 {
		t.Fatalf("start: %v, outbox %+v", err, snap.Outbox)
	}
}
