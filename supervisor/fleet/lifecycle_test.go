package fleet

import (
	"errors"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/registry"
)

// launchHeld starts id and returns once its launch is in flight and held
// (the process exists, Start has not answered); release lets it finish.
func (h *harness) launchHeld(id string) (release func()) {
	h.t.Helper()
	gate := make(chan struct{})
	h.mu.Lock()
	h.gate = gate
	h.mu.Unlock()
	if _, err := h.f.Start(id); err != nil {
		h.t.Fatal(err)
	}
	h.clk.Advance(h.spawnWait())
	h.eventually(id+" launch in flight", func() bool { return h.launches(id) == 1 })
	return func() {
		h.mu.Lock()
		h.gate = nil
		h.mu.Unlock()
		close(gate)
	}
}

// Stop and Start while the first launch is still in flight must not put a
// second process on the same auth directory.
func TestStopThenStartDuringLaunchNeverRunsTwo(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	release := h.launchHeld("2")
	if _, err := h.f.Stop("2"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.f.Start("2"); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(h.spawnWait())
	// Admission timers run inside Advance: a spawn would show at once.
	if s := h.status("2"); s != state.Queued {
		t.Fatalf("status %s: a second start began while the first launch was in flight", s)
	}
	release()
	h.attached("2", 2)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.overlap {
		t.Fatal("the second worker was launched before the first was closed")
	}
}

// A relink that falls due while the old worker is still closing waits for
// the archive: a new worker never starts on a directory about to move.
func TestRelinkWaitsForTheArchive(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	stop := make(chan struct{})
	h.mu.Lock()
	h.stopGate = stop
	h.mu.Unlock()
	w := h.running("2")
	h.mu.Lock()
	h.stopGate = nil
	h.mu.Unlock()
	h.send(w, connected(jid))
	if _, err := h.f.Clear("2"); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(h.cfg.BadMAC.RestartDelay.Duration + h.spawnWait())
	if s := h.status("2"); s != state.Queued || h.launches("2") != 1 || h.arch.count() != 0 {
		t.Fatalf("status %s: relinked while the old worker still closes", s)
	}
	if h.launches("2") != 1 || h.arch.count() != 0 {
		t.Fatalf("launches %d archives %d while the old worker still closes", h.launches("2"), h.arch.count())
	}
	close(stop)
	h.attached("2", 2)
	h.mu.Lock()
	defer h.mu.Unlock()
	if got := h.archivedAtLaunch[1]; got != 1 {
		t.Fatalf("second launch saw %d archives, want the one of the clear", got)
	}
	if rec, _ := h.f.reg.Get("2"); rec.ArchivePending != "" {
		t.Fatalf("archive still pending: %+v", rec)
	}
}

func TestClearIsHeldByCooldownsAndNeedsAKnownOrg(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	if _, err := h.f.Clear("nobody"); !errors.Is(err, ErrUnknownOrg) {
		t.Fatalf("clear of an unknown org: %v", err)
	}
	if _, err := h.f.Get("nobody"); !errors.Is(err, ErrUnknownOrg) {
		t.Fatal("clear registered an unknown org")
	}
	w := h.running("2")
	h.send(w, connected(jid))
	h.send(w, ban(h.clk.Now().Add(time.Hour)))
	_, err := h.f.Clear("2")
	var ce *CooldownError
	if !errors.As(err, &ce) {
		t.Fatalf("clear during a ban: %v", err)
	}
}

// Clearing in a loop is a storm too: the relink waits grow.
func TestManualClearsFeedTheStormGuard(t *testing.T) {
	cfg := testConfig()
	cfg.BadMAC.StormTrips = 2
	h := newHarness(t, cfg, "")
	h.running("2")
	delay := cfg.BadMAC.RestartDelay.Duration
	for i, want := range []time.Duration{delay, 2 * delay, 4 * delay} {
		s, err := h.f.Clear("2")
		if err != nil {
			t.Fatalf("clear %d: %v", i+1, err)
		}
		if got := s.CooldownUntil.Sub(h.clk.Now()); got != want {
			t.Fatalf("clear %d: relink in %s, want %s", i+1, got, want)
		}
		h.jump(want)
	}
}

func TestBootFinishesAnInterruptedArchive(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	for _, rec := range []registry.Record{
		{ID: "cut", Wanted: true, ArchivePending: "corrupted"},
		{ID: "gone", Wanted: false, Status: state.Stopped, ArchivePending: "deleted"},
	} {
		if err := h.f.reg.Put(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.f.Boot(); err != nil {
		t.Fatal(err)
	}
	if got := h.arch.reasonsFor("cut"); len(got) != 1 || got[0] != "corrupted" {
		t.Fatalf("cut archived as %v", got)
	}
	if got := h.arch.reasonsFor("gone"); len(got) != 1 || got[0] != "deleted" {
		t.Fatalf("gone archived as %v", got)
	}
	if rec, ok := h.record("cut"); !ok || rec.ArchivePending != "" {
		t.Fatalf("cut: %+v %v", rec, ok)
	}
	if _, ok := h.record("gone"); ok {
		t.Fatal("a deleted org came back")
	}
	if _, err := h.f.Get("gone"); !errors.Is(err, ErrUnknownOrg) {
		t.Fatalf("gone: %v", err)
	}
}

// A worker that dies right after each connect must still reach failed; one
// that held its connection for a while starts counting afresh.
func TestCrashCountResetsOnlyAfterAStableConnection(t *testing.T) {
	cfg := testConfig()
	cfg.Workers.CrashLimit = 3
	h := newHarness(t, cfg, "")
	w := h.running("2")
	for i := 1; i <= cfg.Workers.CrashLimit; i++ {
		h.send(w, connected(jid))
		w.crash()
		if i == cfg.Workers.CrashLimit {
			break
		}
		h.eventually("crash noticed", func() bool { return h.status("2") == state.Queued })
		h.jump(cfg.Workers.CrashBackoff[1].Duration + h.spawnWait())
		w = h.attached("2", i+1)
	}
	h.eventually("failed", func() bool { return h.status("2") == state.Failed })

	if _, err := h.f.Start("2"); err != nil {
		t.Fatal(err)
	}
	h.jump(h.spawnWait())
	w = h.attached("2", cfg.Workers.CrashLimit+1)
	for i := 0; i < cfg.Workers.CrashLimit+1; i++ {
		h.send(w, connected(jid))
		h.jump(stableConnection)
		w.crash()
		h.eventually("crash noticed", func() bool { return h.status("2") == state.Queued })
		if s, _ := h.f.Get("2"); s.RetryCount != 1 {
			t.Fatalf("crash after a stable connection counted as %d", s.RetryCount)
		}
		h.jump(cfg.Workers.CrashBackoff[1].Duration + h.spawnWait())
		w = h.attached("2", cfg.Workers.CrashLimit+2+i)
	}
}

// A second start while the first launch is in flight waits for its
// outcome and launches nothing itself.
func TestSecondStartWaitsForTheLaunchInFlight(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	release := h.launchHeld("2")
	second := make(chan int, 1)
	go func() {
		s, err := h.f.Start("2")
		if err != nil {
			t.Error(err)
		}
		second <- s.WorkerPID
	}()
	h.eventually("the second start to wait", func() bool { return h.f.startWaiters.Load() == 1 })
	release()
	if pid := <-second; pid == 0 || pid != h.worker("2").pid {
		t.Fatalf("second start answered worker_pid %d, want the launched worker's", pid)
	}
	h.settle()
	if n := h.launches("2"); n != 1 {
		t.Fatalf("launched %d times", n)
	}
}
