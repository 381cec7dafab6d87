package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/registry"
)

// fakeWorker is a worker process without a process: the test pushes events
// and decides when it dies.
// delivery carries an event and is closed once the fleet has applied it.
type delivery struct {
	ev   *pb.Event
	done chan struct{}
}

type fakeWorker struct {
	org    string
	pid    int
	events chan delivery
	dead   chan struct{}
	once   sync.Once

	// stopGate, when set, holds Stop: a worker slow to close.
	stopGate chan struct{}
	// restoring is what Start reports: whether the auth directory held a
	// device, as a real worker would find on disk.
	restoring bool

	mu       sync.Mutex
	stopped  bool
	killed   bool
	loggedOK bool
	// unresponsive makes Ping fail while the event stream stays open: a
	// hung process, which only the health check can notice.
	unresponsive bool
}

func (w *fakeWorker) Start(context.Context, *pb.StartRequest) (*pb.StartResponse, error) {
	return &pb.StartResponse{Restoring: w.restoring}, nil
}

func (w *fakeWorker) Events(ctx context.Context, sink func(*pb.Event) error) error {
	for {
		select {
		case d := <-w.events:
			err := sink(d.ev)
			close(d.done)
			if err != nil {
				return err
			}
		case <-w.dead:
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.stopped {
				return nil
			}
			return errors.New("connection reset")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *fakeWorker) Ping(context.Context) (*pb.PingResponse, error) {
	w.mu.Lock()
	hung := w.unresponsive
	w.mu.Unlock()
	if hung {
		return nil, context.DeadlineExceeded
	}
	select {
	case <-w.dead:
		return nil, errors.New("unavailable")
	default:
		return &pb.PingResponse{Pid: int32(w.pid), RssBytes: 1000}, nil
	}
}

func (w *fakeWorker) Stop(context.Context) error {
	if w.stopGate != nil {
		<-w.stopGate
	}
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.die()
	return nil
}

func (w *fakeWorker) Logout(context.Context) error {
	w.mu.Lock()
	w.loggedOK = true
	w.mu.Unlock()
	return nil
}

func (w *fakeWorker) PairPhone(context.Context, string) (string, error) { return "ABCD-EFGH", nil }
func (w *fakeWorker) SendText(context.Context, *pb.SendTextRequest) (*pb.SendTextResponse, error) {
	return nil, errors.New("not in this test")
}
func (w *fakeWorker) PID() int { return w.pid }
func (w *fakeWorker) Kill() {
	w.mu.Lock()
	w.killed = true
	w.mu.Unlock()
	w.die()
}
func (w *fakeWorker) die() { w.once.Do(func() { close(w.dead) }) }

// crash makes the worker vanish as if killed with -9.
func (w *fakeWorker) crash() { w.die() }

// hang makes the worker stop answering pings without ending its stream.
func (w *fakeWorker) hang() {
	w.mu.Lock()
	w.unresponsive = true
	w.mu.Unlock()
}

// closed reports whether the fleet closed the worker the way closeWorker
// does: asked to stop, then the process ended.
func (w *fakeWorker) closed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped && w.killed
}

type fakeArchive struct {
	mu      sync.Mutex
	moved   []string
	reasons map[string][]string // org -> Move reasons, in order
}

func (a *fakeArchive) Move(org, reason string, now time.Time) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := fmt.Sprintf("%s_%s_%d", org, reason, now.UnixMilli())
	a.moved = append(a.moved, p)
	if a.reasons == nil {
		a.reasons = map[string][]string{}
	}
	a.reasons[org] = append(a.reasons[org], reason)
	return p, nil
}

func (a *fakeArchive) reasonsFor(org string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reasons[org])
}
func (a *fakeArchive) Prune(string, int) ([]string, error) { return nil, nil }
func (a *fakeArchive) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.moved)
}

type nopMetrics struct{}

func (nopMetrics) SetStatus(string, state.Status) {}
func (nopMetrics) Forget(string)                  {}
func (nopMetrics) SetLive(int)                    {}
func (nopMetrics) SetQueueDepth(int)              {}
func (nopMetrics) BadMACError(string)             {}
func (nopMetrics) BadMACTrip(string)              {}
func (nopMetrics) SessionCleared(string, string)  {}
func (nopMetrics) Logout(string, string)          {}
func (nopMetrics) WorkerRestart(string, string)   {}
func (nopMetrics) SetRSS(string, int64)           {}
func (nopMetrics) QRCode(string)                  {}
func (nopMetrics) ObserveStart(time.Duration)     {}
func (nopMetrics) DecryptFailure(string, string)  {}

// recMetrics records the restarts the fleet reports; the rest is ignored.
type recMetrics struct {
	nopMetrics
	mu       sync.Mutex
	restarts []string // "org:reason"
}

func (m *recMetrics) WorkerRestart(org, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.restarts = append(m.restarts, org+":"+reason)
}

func (m *recMetrics) restartsSoFar() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.restarts)
}

type harness struct {
	t       *testing.T
	f       *Fleet
	clk     *clock.Fake
	arch    *fakeArchive
	metrics *recMetrics
	regPath string
	cfg     config.Config

	mu       sync.Mutex
	launched map[string][]*fakeWorker
	starts   []time.Time
	// restoring lists the orgs whose workers report an existing device.
	restoring map[string]bool
	// gate, when set, holds every launch after its process exists, as a
	// slow start would.
	gate chan struct{}
	// stopGate is given to every worker launched while it is set.
	stopGate chan struct{}
	// overlap records a launch that began while an earlier worker of the
	// same org was still running; archivedAtLaunch, the archive count then.
	overlap          bool
	archivedAtLaunch []int
}

func testConfig() config.Config {
	c := config.Default()
	c.StateDir = "/nonexistent-state"
	c.Workers.StartGap.Duration = 2 * time.Second
	c.Workers.StartJitter = [2]config.Duration{{Duration: time.Second}, {Duration: time.Second}}
	return c
}

func newHarness(t *testing.T, cfg config.Config, regPath string) *harness {
	t.Helper()
	if regPath == "" {
		regPath = filepath.Join(t.TempDir(), "registry.json")
	}
	reg, err := registry.Open(regPath)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clk: clock.NewFake(time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)),
		arch: &fakeArchive{}, metrics: &recMetrics{}, regPath: regPath, cfg: cfg,
		launched: map[string][]*fakeWorker{}, restoring: map[string]bool{}}
	pid := 1000
	h.f = New(Options{
		Config: cfg, Registry: reg, Archive: h.arch, Metrics: h.metrics, Clock: h.clk,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Jitter: func(min, _ time.Duration) time.Duration { return min },
		Launch: func(_ context.Context, org string) (Worker, error) {
			h.mu.Lock()
			pid++
			w := &fakeWorker{org: org, pid: pid, events: make(chan delivery), dead: make(chan struct{}), restoring: h.restoring[org], stopGate: h.stopGate}
			for _, prev := range h.launched[org] {
				if !prev.closed() {
					h.overlap = true
				}
			}
			h.launched[org] = append(h.launched[org], w)
			h.starts = append(h.starts, h.clk.Now())
			h.archivedAtLaunch = append(h.archivedAtLaunch, h.arch.count())
			gate := h.gate
			h.mu.Unlock()
			if gate != nil {
				<-gate
			}
			return w, nil
		},
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.f.Shutdown(ctx)
	})
	return h
}

// eventually polls cond until it holds or a deadline passes: the fleet
// launches workers on goroutines, so a test waits for their effect.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// settle waits until the fleet's background jobs (launches, closes,
// archiving) are done, so the next Advance sees their timers.
func (h *harness) settle() {
	h.t.Helper()
	h.eventually("background jobs", func() bool { return h.f.busy.Load() == 0 })
}

// advance moves the fake clock in steps, letting background jobs finish
// between steps as they would in real time.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	const step = 100 * time.Millisecond
	for ; d > 0; d -= step {
		h.settle()
		h.clk.Advance(min(step, d))
	}
	h.settle()
}

func (h *harness) status(id string) state.Status {
	s, err := h.f.Get(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return s.Status
}

func (h *harness) launches(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.launched[id])
}

func (h *harness) worker(id string) *fakeWorker {
	h.mu.Lock()
	defer h.mu.Unlock()
	ws := h.launched[id]
	if len(ws) == 0 {
		h.t.Fatalf("no worker launched for %s", id)
	}
	return ws[len(ws)-1]
}

// running starts id and waits until its worker is attached.
func (h *harness) running(id string) *fakeWorker {
	h.t.Helper()
	n := h.launches(id)
	if _, err := h.f.Start(id); err != nil {
		h.t.Fatal(err)
	}
	h.advance(h.cfg.Workers.StartJitter[1].Duration + h.cfg.Workers.StartGap.Duration)
	h.eventually(id+" launched", func() bool { return h.launches(id) > n })
	h.eventually(id+" attached", func() bool { s, _ := h.f.Get(id); return s.WorkerPID != 0 })
	return h.worker(id)
}

func (h *harness) send(w *fakeWorker, ev *pb.Event) {
	h.t.Helper()
	d := delivery{ev: ev, done: make(chan struct{})}
	select {
	case w.events <- d:
		<-d.done
	case <-time.After(5 * time.Second):
		h.t.Fatalf("worker %s: event not consumed", w.org)
	}
}

func connected(jid string) *pb.Event {
	return &pb.Event{Kind: &pb.Event_Connected{Connected: &pb.Connected{Jid: jid}}}
}
func badMAC() *pb.Event { return &pb.Event{Kind: &pb.Event_BadMac{BadMac: &pb.BadMAC{MessageId: "m"}}} }

func TestSevenOrgsFiveLiveStaggered(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	ids := []string{"a", "b", "c", "d", "e", "f", "g"}
	for _, id := range ids {
		if _, err := h.f.Start(id); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		h.clk.Advance(time.Second)
		h.settle()
	}
	live, queued := 0, 0
	for _, id := range ids {
		switch h.status(id) {
		case state.Queued:
			queued++
		case state.Starting:
			live++
		}
		if h.launches(id) > 1 {
			t.Errorf("%s launched %d times", id, h.launches(id))
		}
	}
	if live != 5 || queued != 2 {
		t.Fatalf("live=%d queued=%d, want 5 and 2", live, queued)
	}
	h.mu.Lock()
	for i := 1; i < len(h.starts); i++ {
		if gap := h.starts[i].Sub(h.starts[i-1]); gap < h.cfg.Workers.StartGap.Duration {
			t.Errorf("start %d came %s after the previous, gap is %s", i, gap, h.cfg.Workers.StartGap.Duration)
		}
	}
	h.mu.Unlock()

	if _, err := h.f.Stop("a"); err != nil {
		t.Fatal(err)
	}
	h.advance(5 * time.Second)
	h.eventually("f admitted after a stop", func() bool { return h.launches("f") == 1 })
	if h.status("a") != state.Stopped || h.status("g") != state.Queued {
		t.Fatalf("a=%s g=%s", h.status("a"), h.status("g"))
	}
}

func TestStartIsIdempotent(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	w := h.running("2")
	h.send(w, connected("573007915262:1@s.whatsapp.net"))
	for i := 0; i < 3; i++ {
		s, err := h.f.Start("2")
		if err != nil || s.Status != state.Connected {
			t.Fatalf("start on connected: %v %v", s.Status, err)
		}
	}
	h.clk.Advance(time.Minute)
	if n := h.launches("2"); n != 1 {
		t.Fatalf("launched %d times", n)
	}
}

func TestBadMACTripArchivesAndRelinks(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	w := h.running("2")
	h.send(w, connected("573007915262:1@s.whatsapp.net"))
	for i := 0; i < 4; i++ {
		h.send(w, badMAC())
	}
	h.clk.Advance(h.cfg.BadMAC.ResetAfter.Duration + time.Second)
	for i := 0; i < 4; i++ {
		h.send(w, badMAC())
	}
	if s, _ := h.f.Get("2"); s.BadMAC.Trips != 0 || s.BadMAC.Count != 4 || h.arch.count() != 0 {
		t.Fatalf("tripped early: %+v", s.BadMAC)
	}
	h.send(w, badMAC())
	h.eventually("archive", func() bool { return h.arch.count() == 1 })
	s, _ := h.f.Get("2")
	if s.Status != state.Cooldown || s.BadMAC.Trips != 1 || s.JID != "" {
		t.Fatalf("after trip: %+v", s)
	}
	h.eventually("old worker closed", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.killed })
	h.advance(h.cfg.BadMAC.RestartDelay.Duration + h.cfg.Workers.StartJitter[1].Duration + h.cfg.Workers.StartGap.Duration)
	h.eventually("relaunch", func() bool { return h.launches("2") == 2 })
}

func TestLogoutHasNoRestartAndACooldown(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	w := h.running("2")
	h.send(w, connected("573007915262:1@s.whatsapp.net"))
	h.send(w, &pb.Event{Kind: &pb.Event_LoggedOut{LoggedOut: &pb.LoggedOut{Reason: "device_removed"}}})
	h.eventually("archived", func() bool { return h.arch.count() == 1 })
	h.clk.Advance(time.Minute)
	if h.status("2") != state.LoggedOut || h.launches("2") != 1 {
		t.Fatalf("status %s, launches %d", h.status("2"), h.launches("2"))
	}
	_, err := h.f.Start("2")
	var ce *CooldownError
	if !errors.As(err, &ce) || !ce.Until.After(h.clk.Now()) {
		t.Fatalf("start in cooldown: %v", err)
	}

	// The cooldown survives a supervisor restart.
	h2 := newHarness(t, testConfig(), h.regPath)
	h2.clk.Advance(h.clk.Now().Sub(h2.clk.Now()))
	if err := h2.f.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.f.Start("2"); !errors.As(err, &ce) {
		t.Fatalf("cooldown lost across restart: %v", err)
	}
	h.clk.Advance(h.cfg.Logout.Cooldown.Duration)
	if s, err := h.f.Start("2"); err != nil || s.Status != state.Queued {
		t.Fatalf("after cooldown: %v %v", s.Status, err)
	}
}

func TestCrashBackoffThenFailed(t *testing.T) {
	cfg := testConfig()
	cfg.Workers.CrashLimit = 3
	h := newHarness(t, cfg, "")
	w := h.running("2")
	backoff := cfg.Workers.CrashBackoff[0].Duration
	for i := 1; i < cfg.Workers.CrashLimit; i++ {
		w.crash()
		h.eventually("crash noticed", func() bool { return h.status("2") == state.Queued })
		h.settle()
		h.clk.Advance(backoff - time.Millisecond)
		h.settle()
		if h.launches("2") != i {
			t.Fatalf("restarted before the backoff of %s", backoff)
		}
		h.advance(time.Millisecond + cfg.Workers.StartJitter[1].Duration + cfg.Workers.StartGap.Duration)
		h.eventually("restart", func() bool { return h.launches("2") == i+1 })
		h.eventually("attached", func() bool { s, _ := h.f.Get("2"); return s.WorkerPID != 0 })
		w = h.worker("2")
		backoff *= 2
	}
	w.crash()
	h.eventually("failed", func() bool { return h.status("2") == state.Failed })
	h.clk.Advance(time.Hour)
	if h.launches("2") != cfg.Workers.CrashLimit {
		t.Fatalf("restarted after failed")
	}
	if s, err := h.f.Start("2"); err != nil || s.Status != state.Queued || s.RetryCount != 0 {
		t.Fatalf("operator start after failed: %+v %v", s, err)
	}
}

func TestUnknownAndBadIDs(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	if _, err := h.f.Get("nope"); !errors.Is(err, ErrUnknownOrg) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := h.f.Start("../x"); err == nil {
		t.Fatal("bad id accepted")
	}
	if _, err := h.f.Logout(context.Background(), "x"); !errors.Is(err, ErrUnknownOrg) {
		t.Fatalf("logout unknown: %v", err)
	}
}

// --- lifecycle paths beyond the start queue ---

const jid = "573007915262:1@s.whatsapp.net"

// spawnWait is the longest a queued org waits for its turn when no other
// start is in flight: the jitter plus the gap after the previous start.
func (h *harness) spawnWait() time.Duration {
	return h.cfg.Workers.StartJitter[1].Duration + h.cfg.Workers.StartGap.Duration
}

// jump moves the fake clock by d in one step, after and before letting
// background jobs finish: for waits too long to walk in advance's steps.
func (h *harness) jump(d time.Duration) {
	h.t.Helper()
	h.settle()
	h.clk.Advance(d)
	h.settle()
}

// attached waits until id's n-th worker is launched and attached.
func (h *harness) attached(id string, n int) *fakeWorker {
	h.t.Helper()
	h.eventually(fmt.Sprintf("%s launch %d", id, n), func() bool { return h.launches(id) >= n })
	h.eventually(id+" attached", func() bool { s, _ := h.f.Get(id); return s.WorkerPID != 0 })
	if got := h.launches(id); got != n {
		h.t.Fatalf("%s launched %d times, want %d", id, got, n)
	}
	return h.worker(id)
}

// restart shuts this fleet down, as a supervisor stop would, and boots a
// new one on the same registry with its clock at this one's time.
func (h *harness) restart(cfg config.Config, restoring ...string) *harness {
	h.t.Helper()
	h.settle()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.f.Shutdown(ctx)
	h2 := newHarness(h.t, cfg, h.regPath)
	h2.clk.Advance(h.clk.Now().Sub(h2.clk.Now()))
	for _, id := range restoring {
		h2.restoring[id] = true
	}
	if err := h2.f.Boot(); err != nil {
		h.t.Fatal(err)
	}
	return h2
}

// record reads id's record from the registry file, as the next supervisor
// start would.
func (h *harness) record(id string) (registry.Record, bool) {
	h.t.Helper()
	h.settle()
	reg, err := registry.Open(h.regPath)
	if err != nil {
		h.t.Fatal(err)
	}
	return reg.Get(id)
}

func ban(until time.Time) *pb.Event {
	var ms int64
	if !until.IsZero() {
		ms = until.UnixMilli()
	}
	return &pb.Event{Kind: &pb.Event_TemporaryBan{TemporaryBan: &pb.TemporaryBan{Code: "101", ExpiresAtUnixMs: ms}}}
}

func wantCooldown(t *testing.T, err error, until time.Time) {
	t.Helper()
	var ce *CooldownError
	if !errors.As(err, &ce) {
		t.Fatalf("want a CooldownError, got %v", err)
	}
	if !ce.Until.Equal(until) {
		t.Fatalf("cooldown until %s, want %s", ce.Until, until)
	}
}

func TestTemporaryBanHoldsUntilExpiryAndSurvivesRestart(t *testing.T) {
	cfg := testConfig()
	h := newHarness(t, cfg, "")
	w := h.running("2")
	h.send(w, connected(jid))

	until := h.clk.Now().Add(time.Hour)
	h.send(w, ban(until))
	if st := h.status("2"); st != state.Banned {
		t.Fatalf("status %s after a ban", st)
	}
	h.eventually("banned worker closed", w.closed)
	if s, _ := h.f.Get("2"); s.CooldownUntil == nil || !s.CooldownUntil.Equal(until) {
		t.Fatalf("the ban's expiry is not shown as cooldown_until: %v", s.CooldownUntil)
	}
	_, err := h.f.Start("2")
	wantCooldown(t, err, until)

	h.jump(time.Hour - time.Millisecond)
	_, err = h.f.Start("2")
	wantCooldown(t, err, until)
	if h.status("2") != state.Banned || h.launches("2") != 1 {
		t.Fatalf("before expiry: status %s, launches %d", h.status("2"), h.launches("2"))
	}
	h.advance(time.Millisecond + h.spawnWait())
	w = h.attached("2", 2)
	if rec, _ := h.record("2"); rec.Status != "" || rec.BanUntil != nil {
		t.Fatalf("ban still recorded after expiry: %+v", rec)
	}

	// A second ban, then the supervisor restarts while it holds.
	h.send(w, connected(jid))
	until = h.clk.Now().Add(time.Hour)
	h.send(w, ban(until))
	h.eventually("banned worker closed", w.closed)
	h2 := h.restart(cfg)
	if st := h2.status("2"); st != state.Banned {
		t.Fatalf("status %s after restart, want banned", st)
	}
	_, err = h2.f.Start("2")
	wantCooldown(t, err, until)
	h2.jump(time.Hour - time.Millisecond)
	if h2.launches("2") != 0 {
		t.Fatal("relaunched before the ban expired")
	}
	h2.advance(time.Millisecond + h2.spawnWait())
	h2.attached("2", 1)
}

// A ban that ran out while the supervisor was down must not leave the
// organization banned for good.
func TestBanExpiredWhileDownRelinksOnBoot(t *testing.T) {
	cfg := testConfig()
	h := newHarness(t, cfg, "")
	w := h.running("2")
	h.send(w, connected(jid))
	h.send(w, ban(h.clk.Now().Add(time.Minute)))
	h.settle()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.f.Shutdown(ctx)

	h2 := newHarness(t, cfg, h.regPath)
	h2.clk.Advance(h.clk.Now().Sub(h2.clk.Now()) + 2*time.Minute)
	if err := h2.f.Boot(); err != nil {
		t.Fatal(err)
	}
	h2.advance(h2.spawnWait())
	h2.attached("2", 1)
}

// WhatsApp may announce a ban without an expiry; relinking at once is the
// hammering the design forbids, so it waits for an operator.
func TestBanWithoutExpiryWaitsForAnOperator(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	w := h.running("2")
	h.send(w, connected(jid))
	h.send(w, ban(time.Time{}))
	h.eventually("banned worker closed", w.closed)
	h.advance(h.spawnWait())
	h.jump(24 * time.Hour)
	if h.status("2") != state.Banned || h.launches("2") != 1 {
		t.Fatalf("status %s, launches %d: relinked without an expiry", h.status("2"), h.launches("2"))
	}
	if s, err := h.f.Start("2"); err != nil || s.Status != state.Queued {
		t.Fatalf("operator start: %v %v", s.Status, err)
	}
	h.advance(h.spawnWait())
	h.attached("2", 2)
}

func TestClearArchivesAndRelinksAfterRestartDelay(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	w := h.running("2")
	h.send(w, connected(jid))
	for i := 0; i < 3; i++ {
		h.send(w, badMAC())
	}
	if s, _ := h.f.Get("2"); s.BadMAC.Count != 3 {
		t.Fatalf("bad MAC count %d before clear", s.BadMAC.Count)
	}

	now := h.clk.Now()
	s, err := h.f.Clear("2")
	if err != nil {
		t.Fatal(err)
	}
	delay := h.cfg.BadMAC.RestartDelay.Duration
	if s.Status != state.Cooldown || s.BadMAC.Count != 0 || s.JID != "" ||
		s.CooldownUntil == nil || !s.CooldownUntil.Equal(now.Add(delay)) {
		t.Fatalf("after clear: %+v", s)
	}
	h.eventually("worker closed", w.closed)
	h.eventually("archived", func() bool { return h.arch.count() == 1 })
	if r := h.arch.reasonsFor("2"); !slices.Equal(r, []string{"corrupted"}) {
		t.Fatalf("archive reasons %v", r)
	}
	if rec, _ := h.record("2"); rec.BadMAC.Count != 0 || rec.Linked || rec.JID != "" {
		t.Fatalf("persisted after clear: %+v", rec)
	}

	h.jump(delay - time.Millisecond)
	if h.status("2") != state.Cooldown || h.launches("2") != 1 {
		t.Fatalf("before restart_delay: status %s, launches %d", h.status("2"), h.launches("2"))
	}
	h.advance(time.Millisecond + h.spawnWait())
	h.attached("2", 2)
	// The auth directory is gone, so the clean worker links anew.
	if st := h.status("2"); st != state.Starting {
		t.Fatalf("relinked worker is %s, want starting", st)
	}
}

func TestDeleteForgetsTheOrganization(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	w := h.running("2")
	h.send(w, connected(jid))
	if err := h.f.Delete("2"); err != nil {
		t.Fatal(err)
	}
	h.eventually("worker closed", w.closed)
	if _, err := h.f.Get("2"); !errors.Is(err, ErrUnknownOrg) {
		t.Fatalf("Get after delete: %v", err)
	}
	if rec, ok := h.record("2"); ok {
		t.Fatalf("registry still holds %+v", rec)
	}
	h.eventually("archived", func() bool { return h.arch.count() == 1 })
	if r := h.arch.reasonsFor("2"); !slices.Equal(r, []string{"deleted"}) {
		t.Fatalf("archive reasons %v", r)
	}
	if err := h.f.Delete("2"); !errors.Is(err, ErrUnknownOrg) {
		t.Fatalf("second delete: %v", err)
	}
	// Nothing of the deleted org comes back on its own.
	h.jump(time.Hour)
	if h.launches("2") != 1 || len(h.f.List()) != 0 {
		t.Fatalf("launches %d, list %+v", h.launches("2"), h.f.List())
	}
}

func TestShutdownClosesEveryWorkerAndRefusesStarts(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	ids := []string{"a", "b", "c"}
	var ws []*fakeWorker
	for _, id := range ids {
		ws = append(ws, h.running(id))
	}
	h.send(ws[0], connected(jid))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.f.Shutdown(ctx)
	// Shutdown waits for its closes, so no polling is needed here.
	for _, w := range ws {
		if !w.closed() {
			t.Errorf("worker %s not closed by Shutdown", w.org)
		}
	}
	var ce *ConflictError
	for _, id := range []string{"a", "new"} {
		if _, err := h.f.Start(id); !errors.As(err, &ce) {
			t.Errorf("Start(%s) after shutdown: %v", id, err)
		}
	}
	h.jump(time.Hour)
	for _, id := range ids {
		if h.launches(id) != 1 {
			t.Errorf("%s relaunched after shutdown", id)
		}
	}
}

func TestCheckHealthRestartsAnUnresponsiveWorker(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	hung := h.running("2")
	fine := h.running("3")
	h.send(fine, connected(jid))
	hung.hang()

	h.f.CheckHealth(context.Background())
	if st := h.status("2"); st != state.Queued {
		t.Fatalf("unresponsive worker's org is %s, want queued", st)
	}
	h.eventually("hung worker closed", hung.closed)
	h.settle()
	if r := h.metrics.restartsSoFar(); !slices.Equal(r, []string{"2:unhealthy"}) {
		t.Fatalf("restarts %v", r)
	}
	h.advance(h.cfg.Workers.CrashBackoff[0].Duration + h.spawnWait())
	h.attached("2", 2)
	if h.status("3") != state.Connected || h.launches("3") != 1 || fine.closed() {
		t.Fatal("the healthy worker was touched")
	}
}

func TestBadMACStormDoublesTheRelinkWait(t *testing.T) {
	cfg := testConfig()
	cfg.BadMAC.StormTrips = 2
	h := newHarness(t, cfg, "")
	delay := cfg.BadMAC.RestartDelay.Duration
	trip := func(w *fakeWorker) time.Time {
		t.Helper()
		h.send(w, connected(jid))
		for i := 0; i < cfg.BadMAC.Limit; i++ {
			h.send(w, badMAC())
		}
		h.eventually("worker closed", w.closed)
		return h.clk.Now()
	}

	at := trip(h.running("2"))
	if s, _ := h.f.Get("2"); s.CooldownUntil == nil || !s.CooldownUntil.Equal(at.Add(delay)) {
		t.Fatalf("first trip: cooldown until %v, want %s", s.CooldownUntil, at.Add(delay))
	}
	h.advance(delay + h.spawnWait())
	w := h.attached("2", 2)

	at = trip(w)
	s, _ := h.f.Get("2")
	if s.BadMAC.Trips != 2 || s.CooldownUntil == nil || !s.CooldownUntil.Equal(at.Add(2*delay)) {
		t.Fatalf("second trip: %d trips, cooldown until %v, want %s", s.BadMAC.Trips, s.CooldownUntil, at.Add(2*delay))
	}
	h.jump(2*delay - time.Millisecond)
	if h.status("2") != state.Cooldown {
		t.Fatalf("storm relink came early: %s", h.status("2"))
	}
	h.jump(time.Millisecond)
	if h.status("2") != state.Queued {
		t.Fatalf("no relink at the end of the storm wait: %s", h.status("2"))
	}
	h.advance(h.spawnWait())
	h.attached("2", 3)
}

func TestQRGaveUpFreesTheSlotAndStaysStopped(t *testing.T) {
	cfg := testConfig()
	cfg.Workers.MaxLive = 1
	h := newHarness(t, cfg, "")
	w := h.running("a")
	if s, err := h.f.Start("b"); err != nil || s.Status != state.Queued {
		t.Fatalf("start b: %v %v", s.Status, err)
	}
	h.advance(h.spawnWait())
	if h.launches("b") != 0 {
		t.Fatal("b started although the only slot is taken")
	}

	h.send(w, &pb.Event{Kind: &pb.Event_QrGaveUp{QrGaveUp: &pb.QRGaveUp{}}})
	if st := h.status("a"); st != state.Stopped {
		t.Fatalf("a is %s after QR give-up", st)
	}
	h.eventually("a's worker closed", w.closed)
	h.advance(h.spawnWait())
	h.attached("b", 1)
	if rec, _ := h.record("a"); rec.Wanted || rec.Status != state.Stopped {
		t.Fatalf("a persisted as %+v", rec)
	}

	h2 := h.restart(cfg)
	h2.advance(2 * h2.spawnWait())
	h2.attached("b", 1)
	h2.jump(time.Hour)
	if h2.status("a") != state.Stopped || h2.launches("a") != 0 {
		t.Fatalf("after restart a is %s with %d launches", h2.status("a"), h2.launches("a"))
	}
}

func TestBootRegistersConfigOrgsAndRestoresLinked(t *testing.T) {
	cfg := testConfig()
	cfg.Orgs = []config.Org{{ID: "alpha"}, {ID: "beta"}}
	h := newHarness(t, cfg, "")
	if err := h.f.Boot(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"alpha", "beta"} {
		if st := h.status(id); st != state.Queued {
			t.Fatalf("%s is %s after boot, want queued", id, st)
		}
		if rec, ok := h.record(id); !ok || !rec.Wanted || !rec.FromConfig {
			t.Fatalf("%s registered as %+v (found %v)", id, rec, ok)
		}
	}
	h.advance(2 * h.spawnWait())
	alpha := h.attached("alpha", 1)
	h.attached("beta", 1)
	if st := h.status("alpha"); st != state.Starting {
		t.Fatalf("never-linked alpha is %s, want starting", st)
	}
	h.send(alpha, connected(jid))

	h2 := h.restart(cfg, "alpha")
	if len(h2.f.List()) != 2 {
		t.Fatalf("config orgs registered twice or lost: %+v", h2.f.List())
	}
	h2.advance(2 * h2.spawnWait())
	h2.attached("alpha", 1)
	h2.attached("beta", 1)
	if st := h2.status("alpha"); st != state.Restoring {
		t.Fatalf("linked alpha is %s after restart, want restoring", st)
	}
	if st := h2.status("beta"); st != state.Starting {
		t.Fatalf("unlinked beta is %s after restart, want starting", st)
	}
	if rec, _ := h2.record("alpha"); !rec.Linked || rec.JID != jid {
		t.Fatalf("alpha's link lost: %+v", rec)
	}
}

func TestStopAndStreamReplacedCloseTheWorker(t *testing.T) {
	h := newHarness(t, testConfig(), "")
	stopped := h.running("a")
	replaced := h.running("b")
	if _, err := h.f.Stop("a"); err != nil {
		t.Fatal(err)
	}
	h.eventually("stopped org's worker closed", stopped.closed)
	h.send(replaced, connected(jid))
	h.send(replaced, &pb.Event{Kind: &pb.Event_StreamReplaced{StreamReplaced: &pb.StreamReplaced{}}})
	if st := h.status("b"); st != state.Replaced {
		t.Fatalf("b is %s", st)
	}
	h.eventually("replaced org's worker closed", replaced.closed)
}
