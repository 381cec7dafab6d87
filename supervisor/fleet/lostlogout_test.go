package fleet

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// TestLostLogoutHoldsTheRestore is issue 15, defect 1: a LOGOUT whose
// commit fails (a full disk), the supervisor killed, a restart from the
// store as it was. The record still says linked; the worker's store lost
// the device with the LOGOUT. The restored worker must not open a
// registration (the server would offer a QR seconds after the LOGOUT): it
// reports device_missing, and the supervisor applies the cooldown from the
// moment it learns of it. Sampled at every step, not only at the end.
func TestLostLogoutHoldsTheRestore(t *testing.T) {
	cfg := testConfig()
	cfg.Logout.Cooldown.Duration = 120 * time.Second // the cooldown
	cooldown := cfg.Logout.Cooldown.Duration

	// The first supervisor: linked, then an operator's LOGOUT whose commit
	// fails on a full disk.
	first := newHarness(t, cfg)
	first.connected("2", "573007915262:1@s.whatsapp.net")
	first.store.setFail(fmt.Errorf("save organization 2: %w", syscall.ENOSPC))
	logoutCtx, cancelLogout := context.WithCancel(bg)
	defer cancelLogout()
	go func() { _, _ = first.f.Logout(logoutCtx, "2") }()
	first.eventually("the LOGOUT's commit to fail", func() bool { return first.m.persistErrors() > 0 })
	// kill -9: nothing more reaches the store than what it holds now.
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	first.f.Shutdown(ctx)
	cancel()
	saved, ok := first.store.get("2")
	if !ok || !saved.Linked || !saved.Run || saved.Status != state.Connected || saved.Hold.Reason != "" {
		t.Fatalf("the store should hold the state before the LOGOUT: %+v", saved)
	}

	// The restart, from that record; the worker's store has no device.
	h := newHarness(t, cfg, saved)
	var he *lifecycle.HoldError
	sample := func(when string) state.Snapshot {
		t.Helper()
		if regs := h.registrationsOf("2"); len(regs) > 0 {
			t.Fatalf("%s: a worker opened a registration at %v: a relink right after the LOGOUT", when, regs[0])
		}
		if n := h.aliveOf("2"); n > 1 {
			t.Fatalf("%s: %d workers alive", when, n)
		}
		s, err := h.f.Get("2")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if s.Status == state.QRRequired || s.QRCode != "" {
			t.Fatalf("%s: a QR on offer: %+v", when, s)
		}
		return s
	}
	var learned state.Snapshot
	h.eventually("the restore to learn the device is missing", func() bool {
		h.clk.Advance(100 * time.Millisecond)
		learned = sample("restoring")
		return learned.Status == state.LoggedOut
	})
	learnedBy := h.clk.Now()
	rec, _ := h.store.get("2")
	launchedAt := h.startTimes()[0]
	if rec.Status != state.LoggedOut || rec.Reason != "device_missing" || rec.Run || rec.Linked ||
		rec.Hold.Reason != lifecycle.HoldLogout {
		t.Fatalf("committed %+v, want logged_out by device_missing with a logout hold", rec)
	}
	until := rec.Hold.Until
	if from := until.Add(-cooldown); from.Before(launchedAt) || from.After(learnedBy) {
		t.Fatalf("cooldown counted from %v, want from when the supervisor learned of it (between the launch at %v and %v)",
			from, launchedAt, learnedBy)
	}
	if learned.CooldownUntil == nil || !learned.CooldownUntil.Equal(until) {
		t.Fatalf("shown cooldown_until %v, committed %v", learned.CooldownUntil, until)
	}
	h.eventually("the waiting worker closed and its store archived", func() bool {
		sample("closing")
		w := h.worker("2")
		got := h.arch.of("2")
		return w.isKilled() && len(got) == 1 && got[0] == lifecycle.ArchiveLoggedOut
	})

	// Through the hold and a minute past it: no launch, no registration,
	// every start refused until the hold ends.
	for h.clk.Now().Before(until.Add(time.Minute)) {
		h.advance(5 * time.Second)
		now := h.clk.Now()
		s := sample(fmt.Sprintf("at +%v", now.Sub(learnedBy)))
		if h.launches("2") != 1 {
			t.Fatalf("at +%v: %d launches, want only the restore's", now.Sub(learnedBy), h.launches("2"))
		}
		if s.Status != state.LoggedOut {
			t.Fatalf("at +%v: %s, want logged_out until an operator starts it", now.Sub(learnedBy), s.Status)
		}
		if now.Before(until) {
			if _, err := h.f.Start(bg, "2", StartOptions{Force: true}); !errors.As(err, &he) || !he.Until.Equal(until) {
				t.Fatalf("at +%v: start during the hold: %v", now.Sub(learnedBy), err)
			}
		}
	}
	// Only now may it link again: a new registration, after the hold.
	h.start("2")
	h.eventually("a new link after the hold", func() bool {
		h.clk.Advance(100 * time.Millisecond)
		return len(h.registrationsOf("2")) == 1
	})
	if at := h.registrationsOf("2")[0]; at.Before(until) {
		t.Fatalf("registration at %v, before the hold's end %v", at, until)
	}
}
