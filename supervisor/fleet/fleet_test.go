package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/fingerprint"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

var bg = context.Background()

func TestSevenOrgsFiveLiveStaggered(t *testing.T) {
	h := newHarness(t, testConfig())
	orgs := []string{"o1", "o2", "o3", "o4", "o5", "o6", "o7"}
	for _, o := range orgs {
		if s := h.start(o); s.Status != state.Queued {
			t.Fatalf("%s: %s after start", o, s.Status)
		}
	}
	h.eventually("five attached", func() bool {
		h.clk.Advance(500 * time.Millisecond)
		n := 0
		for _, o := range orgs {
			if s, _ := h.f.Get(o); s.WorkerPID != 0 {
				n++
			}
		}
		return n == 5
	})
	h.advance(time.Minute)
	queued := 0
	for _, o := range orgs {
		if h.snap(o).Status == state.Queued {
			queued++
		}
	}
	if queued != 2 || h.maxAliveSeen() != 5 {
		t.Fatalf("%d queued, %d alive at most", queued, h.maxAliveSeen())
	}
	h.mu.Lock()
	starts := slices.Clone(h.starts)
	h.mu.Unlock()
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 3*time.Second {
			t.Fatalf("starts %d and %d %s apart, want gap 2s + jitter 1s", i-1, i, gap)
		}
	}
	h.stop("o1")
	h.eventually("o6 launched after o1 is gone", func() bool {
		h.clk.Advance(500 * time.Millisecond)
		return h.launches("o6") == 1
	})
	if h.maxAliveSeen() != 5 {
		t.Fatalf("%d processes alive at once", h.maxAliveSeen())
	}
}

func oneSlot() config.Config {
	cfg := testConfig()
	cfg.Workers.MaxLive = 1
	return cfg
}

// A slot goes to the next organization only once the previous worker's
// process is reaped, however long its close takes.
func TestSlotWaitsForTheReap(t *testing.T) {
	h := newHarness(t, oneSlot())
	gate := make(chan struct{})
	h.mu.Lock()
	h.stopGate = gate
	h.mu.Unlock()
	a := h.running("a")
	h.start("b")
	h.stop("a")
	h.advance(5 * time.Second)
	if h.launches("b") != 0 || h.snap("b").Status != state.Queued {
		t.Fatalf("b launched while a's worker was still closing (status %s)", h.snap("b").Status)
	}
	close(gate)
	h.eventually("a reaped", a.isKilled)
	h.eventually("b launched", func() bool { h.clk.Advance(time.Second); return h.launches("b") == 1 })
	if h.maxAliveSeen() != 1 {
		t.Fatalf("%d alive at once with max_live 1", h.maxAliveSeen())
	}
}

// The first bug of the issue: with max_live 1, stop a while its worker is
// launching, start b: two processes must never be alive.
func TestStopDuringLaunchThenAnotherStart(t *testing.T) {
	h := newHarness(t, oneSlot())
	gate := make(chan struct{})
	h.mu.Lock()
	h.gate = gate
	h.mu.Unlock()
	h.start("a")
	h.eventually("a's launch in flight", func() bool { h.clk.Advance(time.Second); return h.launches("a") == 1 })
	h.stop("a")
	h.start("b")
	h.eventually("a's launch cancelled and b launched", func() bool {
		h.clk.Advance(time.Second)
		return h.launches("b") == 1
	})
	close(gate)
	h.waitStatus("b", state.Starting)
	if h.maxAliveSeen() != 1 || h.launches("a") != 1 {
		t.Fatalf("%d alive at once, %d launches of a", h.maxAliveSeen(), h.launches("a"))
	}
	if s := h.snap("a"); s.Status != state.Stopped || s.WorkerPID != 0 {
		t.Fatalf("a after its cancelled launch: %+v", s)
	}
}

// Starts, stops, clears, deletes, crashes and worker events from many
// goroutines at once: the cap and one-process-per-organization hold at
// every launch.
func TestRandomStormKeepsTheCap(t *testing.T) {
	cfg := testConfig()
	cfg.Workers.MaxLive = 3
	cfg.Workers.StartGap.Duration = 0
	cfg.Workers.StartJitter = [2]config.Duration{}
	cfg.BadMAC.RestartDelay.Duration = 0
	cfg.Logout.Cooldown.Duration = time.Second // the storm guard's floor
	h := newHarness(t, cfg)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 300 {
				id := fmt.Sprint("o", r.IntN(10))
				switch r.IntN(6) {
				case 0, 1:
					h.f.Start(bg, id, StartOptions{Force: r.IntN(4) == 0})
				case 2:
					h.f.Stop(bg, id)
				case 3:
					h.f.Clear(bg, id)
				case 4:
					h.f.Delete(bg, id)
				case 5:
					h.mu.Lock()
					ws := slices.Clone(h.launched[id])
					h.mu.Unlock()
					if len(ws) > 0 {
						ws[len(ws)-1].crash()
					}
				}
				h.clk.Advance(time.Duration(r.IntN(3)) * 250 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	h.advance(10 * time.Second)
	if got := h.maxAliveSeen(); got > 3 {
		t.Fatalf("%d processes alive at once with max_live 3", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.starts) < 20 {
		t.Fatalf("only %d launches: the storm tested little", len(h.starts))
	}
	if h.overlap != "" {
		t.Fatalf("%s had two processes at once", h.overlap)
	}
	for _, n := range h.arch.atMove {
		if n != 0 {
			t.Fatal("an auth directory was archived while its worker was alive")
		}
	}
}

func TestLogoutHoldsAcrossDelete(t *testing.T) {
	h := newHarness(t, testConfig())
	w := h.connected("2", "573007915262:1@s.whatsapp.net")
	w.events <- &pb.Event{Kind: &pb.Event_LoggedOut{LoggedOut: &pb.LoggedOut{Reason: "device_removed"}}}
	s := h.waitStatus("2", state.LoggedOut)
	if s.CooldownUntil == nil || s.LastEvent != "device_removed" {
		t.Fatalf("after logout: %+v", s)
	}
	h.eventually("worker reaped and store archived", func() bool {
		return w.isKilled() && slices.Equal(h.arch.of("2"), []string{lifecycle.ArchiveLoggedOut})
	})
	var he *lifecycle.HoldError
	if _, err := h.f.Start(bg, "2", StartOptions{Force: true}); !errors.As(err, &he) {
		t.Fatalf("start during the cooldown: %v", err)
	}
	if err := h.f.Delete(bg, "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.f.Get("2"); !errors.Is(err, lifecycle.ErrUnknownOrg) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := h.f.Start(bg, "2", StartOptions{}); !errors.As(err, &he) || !he.Until.Equal(*s.CooldownUntil) {
		t.Fatalf("start after delete during the cooldown: %v", err)
	}
	if _, err := h.f.Get("2"); !errors.Is(err, lifecycle.ErrUnknownOrg) {
		t.Fatalf("a refused start registered the org: %v", err)
	}
	if rec, ok := h.store.get("2"); !ok || !rec.Deleted || !rec.Hold.Until.Equal(*s.CooldownUntil) {
		t.Fatalf("tombstone %+v %v", rec, ok)
	}
	// While the tombstone holds the cooldown, a cluster keeps the
	// organization's place: a registration again must reach this node.
	if p := h.purgedOrgs(); len(p) != 0 {
		t.Fatalf("purge heard while the tombstone holds: %v", p)
	}
	h.advance(5 * time.Minute)
	h.eventually("tombstone purged", func() bool { _, ok := h.store.get("2"); return !ok })
	h.eventually("the purge heard once", func() bool { return slices.Equal(h.purgedOrgs(), []string{"2"}) })
	if s := h.start("2"); s.Status != state.Queued {
		t.Fatalf("start after the cooldown: %+v", s)
	}
	if p := h.purgedOrgs(); !slices.Equal(p, []string{"2"}) {
		t.Fatalf("purges heard: %v", p)
	}
}

// The second family: a commit that fails leaves the visible state as it
// was, fails readiness, is counted, and is retried until it goes through.
func TestFailedCommitKeepsTheOldStateAndRetries(t *testing.T) {
	h := newHarness(t, testConfig())
	w := h.connected("2", "573007915262:1@s.whatsapp.net")
	h.store.setFail(errors.New("disk full"))
	w.events <- &pb.Event{Kind: &pb.Event_LoggedOut{LoggedOut: &pb.LoggedOut{Reason: "device_removed"}}}
	h.eventually("a failed commit", func() bool { return h.m.persistErrors() > 0 })
	if s := h.snap("2"); s.Status != state.Connected {
		t.Fatalf("uncommitted status shown: %s", s.Status)
	}
	if err := h.f.Ready(); !errors.Is(err, ErrNotSaved) {
		t.Fatalf("ready while commits fail: %v", err)
	}
	if w.isKilled() {
		t.Fatal("acted on an uncommitted transition")
	}
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	if _, err := h.f.Stop(ctx, "2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop while commits fail: %v", err)
	}
	if rec, _ := h.store.get("2"); rec.Status != state.Connected {
		t.Fatalf("stored %s", rec.Status)
	}
	h.store.setFail(nil)
	s := h.waitStatus("2", state.LoggedOut)
	if s.CooldownUntil == nil {
		t.Fatalf("logged out without a cooldown: %+v", s)
	}
	h.eventually("ready again", func() bool { return h.f.Ready() == nil })
	if rec, _ := h.store.get("2"); rec.Status != state.LoggedOut || rec.Run {
		t.Fatalf("stored %+v", rec)
	}
}

// A GET never waits for a commit in flight.
func TestReadsDoNotWaitForCommits(t *testing.T) {
	h := newHarness(t, testConfig())
	h.running("2")
	gate := make(chan struct{})
	h.store.mu.Lock()
	h.store.gate = gate
	h.store.mu.Unlock()
	stopped := make(chan error, 1)
	go func() { _, err := h.f.Stop(bg, "2"); stopped <- err }()
	for range 100 {
		if s := h.snap("2"); s.Status == state.Stopped {
			t.Fatal("stopped shown before it was committed")
		}
		_ = h.f.List()
	}
	h.store.mu.Lock()
	h.store.gate = nil
	h.store.mu.Unlock()
	close(gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if s := h.snap("2"); s.Status != state.Stopped {
		t.Fatalf("after the commit: %s", s.Status)
	}
}

func TestArchiveFailureBlocksTheRelink(t *testing.T) {
	h := newHarness(t, testConfig())
	w := h.connected("2", "573007915262:1@s.whatsapp.net")
	h.arch.setFail(errors.New("rename: operation not permitted"))
	if _, err := h.f.Clear(bg, "2"); err != nil {
		t.Fatal(err)
	}
	h.eventually("worker closed", w.isKilled)
	h.advance(time.Minute)
	if n := h.launches("2"); n != 1 {
		t.Fatalf("%d launches on an unarchived store", n)
	}
	s := h.snap("2")
	if s.Status != state.Queued || s.LastError == "" {
		t.Fatalf("while the archive fails: %+v", s)
	}
	h.arch.setFail(nil)
	h.eventually("relinked once archived", func() bool { h.clk.Advance(time.Second); return h.launches("2") == 2 })
	if got := h.arch.of("2"); !slices.Equal(got, []string{lifecycle.ArchiveCorrupted}) {
		t.Fatalf("archives %v", got)
	}
}

func TestBootRestoresHoldsAndQueues(t *testing.T) {
	cfg := testConfig()
	cfg.Orgs = []config.Org{{ID: "fromcfg"}, {ID: "lo"}}
	h := newHarness(t, cfg,
		lifecycle.Record{ID: "linked", Status: state.Connected, Run: true, Linked: true, JID: "5730:1@s.whatsapp.net"},
		lifecycle.Record{ID: "lo", Status: state.LoggedOut, Fingerprint: "Chrome/Linux/6.1.0",
			Hold: lifecycle.Hold{Until: clocktest.Origin().Add(5 * time.Minute), Reason: lifecycle.HoldLogout}},
		lifecycle.Record{ID: "gone", Status: state.Stopped, Deleted: true,
			Hold: lifecycle.Hold{Until: clocktest.Origin().Add(time.Hour), Reason: lifecycle.HoldLogout}},
	)
	h.restoring["linked"] = true
	h.ready()
	if s := h.snap("lo"); s.Status != state.LoggedOut || s.CooldownUntil == nil {
		t.Fatalf("lo after boot: %+v", s)
	}
	if _, err := h.f.Get("gone"); !errors.Is(err, lifecycle.ErrUnknownOrg) {
		t.Fatalf("a tombstone is visible: %v", err)
	}
	var he *lifecycle.HoldError
	if _, err := h.f.Start(bg, "gone", StartOptions{}); !errors.As(err, &he) {
		t.Fatalf("start of a held tombstone: %v", err)
	}
	h.eventually("linked restored and fromcfg registered", func() bool {
		h.clk.Advance(time.Second)
		a, _ := h.f.Get("linked")
		b, err := h.f.Get("fromcfg")
		return a.Status == state.Restoring && err == nil && b.Status != state.Stopped
	})
	rec, _ := h.store.get("linked")
	if want := fingerprint.Legacy("linked").String(); rec.Fingerprint != want {
		t.Fatalf("a linked org from an earlier version got fingerprint %q, want its legacy %q", rec.Fingerprint, want)
	}
	if rec, _ := h.store.get("fromcfg"); !rec.FromConfig || rec.Fingerprint == "" {
		t.Fatalf("config org %+v", rec)
	}
}

func TestFingerprintsAreDistinctAndStored(t *testing.T) {
	h := newHarness(t, oneSlot())
	seen := map[string]string{}
	for i := range 60 {
		id := fmt.Sprint("f", i)
		h.start(id)
		rec, _ := h.store.get(id)
		if _, err := fingerprint.Parse(rec.Fingerprint); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if other, dup := seen[rec.Fingerprint]; dup {
			t.Fatalf("%s and %s share %s", id, other, rec.Fingerprint)
		}
		seen[rec.Fingerprint] = id
	}
	w := h.running("f0")
	w.mu.Lock()
	got := w.fingerprint
	w.mu.Unlock()
	if rec, _ := h.store.get("f0"); got != rec.Fingerprint {
		t.Fatalf("worker got %q, stored %q", got, rec.Fingerprint)
	}
}

func TestHealthCheckRestartsAHungWorker(t *testing.T) {
	h := newHarness(t, testConfig())
	w := h.connected("2", "5730:1@s.whatsapp.net")
	w.hang()
	h.f.CheckHealth(bg)
	h.eventually("hung worker killed and replaced", func() bool {
		h.clk.Advance(time.Second)
		return w.isKilled() && h.launches("2") == 2
	})
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if !slices.Equal(h.m.restarts, []string{"2:unhealthy"}) {
		t.Fatalf("restarts %v", h.m.restarts)
	}
}

func TestShutdownClosesEveryWorkerAndRefusesChanges(t *testing.T) {
	h := newHarness(t, testConfig())
	a := h.running("a")
	b := h.running("b")
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	h.f.Shutdown(ctx)
	if !a.isKilled() || !b.isKilled() {
		t.Fatal("a worker outlived Shutdown")
	}
	var ce *lifecycle.ConflictError
	if _, err := h.f.Start(bg, "c", StartOptions{}); !errors.As(err, &ce) {
		t.Fatalf("start during shutdown: %v", err)
	}
	if rec, _ := h.store.get("a"); !rec.Run {
		t.Fatalf("shutdown changed what should run: %+v", rec)
	}
}

func TestPairPhoneNeedsAQR(t *testing.T) {
	h := newHarness(t, testConfig())
	w := h.running("2")
	var ce *lifecycle.ConflictError
	if _, err := h.f.PairPhone(bg, "2", "573001234567"); !errors.As(err, &ce) {
		t.Fatalf("pair-phone before a QR: %v", err)
	}
	w.events <- &pb.Event{Kind: &pb.Event_Qr{Qr: &pb.QR{Code: "2@x", PngDataUrl: "data:"}}}
	h.waitStatus("2", state.QRRequired)
	code, err := h.f.PairPhone(bg, "2", "573001234567")
	if err != nil || code != "ABCD-EFGH" {
		t.Fatalf("pair-phone: %q %v", code, err)
	}
	h.eventually("code shown", func() bool { return h.snap("2").PairingCode == code })
}

func TestUnknownAndBadIDs(t *testing.T) {
	h := newHarness(t, testConfig())
	if _, err := h.f.Stop(bg, "nobody"); !errors.Is(err, lifecycle.ErrUnknownOrg) {
		t.Fatalf("stop of an unknown org: %v", err)
	}
	if _, err := h.f.Start(bg, "../x", StartOptions{}); err == nil {
		t.Fatal("bad id accepted")
	}
	if len(h.store.all()) != 0 {
		t.Fatalf("records written: %+v", h.store.all())
	}
}

func TestMaxOrgs(t *testing.T) {
	cfg := testConfig()
	cfg.Workers.MaxOrgs = 3
	h := newHarness(t, cfg)
	for _, id := range []string{"a", "b", "c"} {
		h.start(id)
	}
	if _, err := h.f.Start(bg, "d", StartOptions{}); !errors.Is(err, ErrTooManyOrgs) {
		t.Fatalf("a 4th registration: %v", err)
	}
	if _, err := h.f.Get("d"); !errors.Is(err, lifecycle.ErrUnknownOrg) {
		t.Fatalf("the refused org is registered: %v", err)
	}
	h.start("a") // a registered org starts as before
	if err := h.f.Delete(bg, "b"); err != nil {
		t.Fatal(err)
	}
	h.start("d")
	if _, err := h.f.Start(bg, "b", StartOptions{}); !errors.Is(err, ErrTooManyOrgs) {
		t.Fatalf("re-registering the deleted one past the cap: %v", err)
	}
}

// Start, delete and start again within the start jitter: the first
// lifetime's grant must not reach the second one, which would give back a
// slot whose worker runs and let another organization start beside it.
func TestGrantOfAnEarlierLifetimeIsRefused(t *testing.T) {
	h := newHarness(t, oneSlot())
	h.start("a")
	if err := h.f.Delete(bg, "a"); err != nil {
		t.Fatal(err)
	}
	h.eventually("a forgotten", func() bool { return h.f.lookup("a") == nil })
	h.start("a")
	h.advance(6 * time.Second)
	h.start("b")
	h.advance(10 * time.Second)
	if n := h.maxAliveSeen(); n != 1 {
		t.Fatalf("%d workers alive at once with max_live 1", n)
	}
	if h.launches("b") != 0 || h.snap("b").Status != state.Queued {
		t.Fatalf("b started while a runs: %+v", h.snap("b"))
	}
}

// A shutdown while the store refuses writes still closes every worker
// before its deadline: the runners stop retrying their commits.
func TestShutdownWhileCommitsFail(t *testing.T) {
	h := newHarness(t, testConfig())
	w := h.connected("2", "5730:1@s.whatsapp.net")
	h.store.setFail(errors.New("disk full"))
	w.events <- &pb.Event{Kind: &pb.Event_LoggedOut{LoggedOut: &pb.LoggedOut{}}}
	h.eventually("a failed commit", func() bool { return h.m.persistErrors() > 0 })
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	h.f.Shutdown(ctx)
	if ctx.Err() != nil || !w.isKilled() {
		t.Fatalf("shutdown ran into its deadline (%v) or left the worker (killed %v)", ctx.Err(), w.isKilled())
	}
	if rec, _ := h.store.get("2"); rec.Status != state.Connected {
		t.Fatalf("stored %s", rec.Status)
	}
}

// Records imported from an earlier version have no fingerprint: a linked
// one keeps its legacy fingerprint, and an unlinked one never picks it.
func TestImportedFingerprintsStayDistinct(t *testing.T) {
	legacy := fingerprint.Legacy("linked")
	at := slices.Index(fingerprint.Catalog(), legacy)
	if at < 0 {
		t.Skip("the legacy fingerprint of this id is not in the catalog")
	}
	next := 0
	intn := func(n int) int {
		next++
		if next == 1 {
			return at // the first pick aims at the legacy one
		}
		return (at + next) % n
	}
	h := newHarnessPicking(t, testConfig(), intn,
		lifecycle.Record{ID: "fresh", Status: state.Stopped},
		lifecycle.Record{ID: "linked", Status: state.Stopped, Linked: true, JID: "j"},
	)
	h.eventually("fingerprints stored", func() bool {
		a, _ := h.store.get("fresh")
		b, _ := h.store.get("linked")
		return a.Fingerprint != "" && b.Fingerprint != ""
	})
	a, _ := h.store.get("fresh")
	b, _ := h.store.get("linked")
	if b.Fingerprint != legacy.String() || a.Fingerprint == b.Fingerprint {
		t.Fatalf("fresh %q, linked %q (legacy %q)", a.Fingerprint, b.Fingerprint, legacy)
	}
}

// Registrations whose callers gave up (a short client timeout against a
// slow disk) still count until their runners decide; a second start of an
// organization being registered takes no second place.
func TestMaxOrgsUnderSlowCommits(t *testing.T) {
	cfg := testConfig()
	cfg.Workers.MaxOrgs = 2
	h := newHarness(t, cfg)
	h.start("a")
	gate := make(chan struct{})
	h.store.mu.Lock()
	h.store.gate = gate
	h.store.mu.Unlock()
	refused := 0
	for i := range 6 {
		ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
		_, err := h.f.Start(ctx, fmt.Sprint("n", i), StartOptions{})
		cancel()
		if errors.Is(err, ErrTooManyOrgs) {
			refused++
		}
	}
	if refused != 5 {
		t.Fatalf("%d of 6 registrations refused while one place was left", refused)
	}
	// Another start of the one being registered is not refused.
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	_, err := h.f.Start(ctx, "n0", StartOptions{})
	cancel()
	if errors.Is(err, ErrTooManyOrgs) {
		t.Fatal("a second start of an org being registered was refused")
	}
	h.store.mu.Lock()
	h.store.gate = nil
	h.store.mu.Unlock()
	close(gate)
	h.eventually("n0 registered", func() bool { _, err := h.f.Get("n0"); return err == nil })
	if n := len(h.f.List()); n != 2 {
		t.Fatalf("%d registered with max_orgs 2", n)
	}
}

// After a kill -9 the saved "connected" is the dead worker's. Until the
// restore's own status is committed the fleet is not ready, so the API can
// never show an organization connected without a worker (found by make
// soak: the old Boot was ready first and restored behind it).
func TestBootShowsNoStaleLiveStatus(t *testing.T) {
	rec := lifecycle.Record{ID: "a", Status: state.Connected, Run: true, Linked: true, JID: "j@s.whatsapp.net", Fingerprint: "fp"}
	h := newUnbootedHarness(t, testConfig(), nil, rec)
	gate := make(chan struct{})
	h.store.mu.Lock()
	h.store.gate = gate
	h.store.mu.Unlock()
	booted := make(chan struct{})
	go func() { h.f.Boot([]lifecycle.Record{rec}); close(booted) }()
	h.eventually("the restore to reach the store", func() bool {
		select {
		case <-booted:
			return true
		default:
		}
		h.store.mu.Lock()
		defer h.store.mu.Unlock()
		return h.store.waiting > 0
	})
	if err := h.f.Ready(); err == nil {
		s, _ := h.f.Get("a")
		t.Fatalf("ready before the restored status was committed, showing %s", s.Status)
	}
	h.store.mu.Lock()
	h.store.gate = nil
	h.store.mu.Unlock()
	close(gate)
	<-booted
	if err := h.f.Ready(); err != nil {
		t.Fatalf("not ready after Boot: %v", err)
	}
	s, err := h.f.Get("a")
	if err != nil || s.Status != state.Queued {
		t.Fatalf("after Boot: %s, %v; want queued for a slot", s.Status, err)
	}
	if saved, _ := h.store.get("a"); saved.Status != s.Status {
		t.Fatalf("shows %s, saved %s", s.Status, saved.Status)
	}
	if got := h.store.committed("a"); len(got) == 0 || !strings.HasPrefix(got[0], "status_changed:"+string(s.Status)) {
		t.Fatalf("events %v: no status_changed to %s", got, s.Status)
	}
}

// A SIGTERM while the state loads: Shutdown runs before Boot, and Boot
// then creates no runner that nobody would stop.
func TestBootAfterShutdown(t *testing.T) {
	h := newHarness(t, testConfig())
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	h.f.Shutdown(ctx)
	h.f.Boot([]lifecycle.Record{{ID: "late", Status: state.Stopped, Linked: true, JID: "j"}})
	if got := h.f.List(); len(got) != 0 {
		t.Fatalf("Boot after Shutdown made %d runners: %+v", len(got), got)
	}
}
