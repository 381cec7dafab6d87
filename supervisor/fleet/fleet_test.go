package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
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

	mu       sync.Mutex
	stopped  bool
	killed   bool
	loggedOK bool
}

func (w *fakeWorker) Start(context.Context, *pb.StartRequest) (*pb.StartResponse, error) {
	return &pb.StartResponse{}, nil
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
	select {
	case <-w.dead:
		return nil, errors.New("unavailable")
	default:
		return &pb.PingResponse{Pid: int32(w.pid), RssBytes: 1000}, nil
	}
}

func (w *fakeWorker) Stop(context.Context) error {
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

type fakeArchive struct {
	mu    sync.Mutex
	moved []string
}

func (a *fakeArchive) Move(org, reason string, now time.Time) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := fmt.Sprintf("%s_%s_%d", org, reason, now.UnixMilli())
	a.moved = append(a.moved, p)
	return p, nil
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

type harness struct {
	t       *testing.T
	f       *Fleet
	clk     *clock.Fake
	arch    *fakeArchive
	regPath string
	cfg     config.Config

	mu       sync.Mutex
	launched map[string][]*fakeWorker
	starts   []time.Time
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
		arch: &fakeArchive{}, regPath: regPath, cfg: cfg, launched: map[string][]*fakeWorker{}}
	pid := 1000
	h.f = New(Options{
		Config: cfg, Registry: reg, Archive: h.arch, Metrics: nopMetrics{}, Clock: h.clk,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Jitter: func(min, _ time.Duration) time.Duration { return min },
		Launch: func(_ context.Context, org string) (Worker, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			pid++
			w := &fakeWorker{org: org, pid: pid, events: make(chan delivery), dead: make(chan struct{})}
			h.launched[org] = append(h.launched[org], w)
			h.starts = append(h.starts, h.clk.Now())
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
