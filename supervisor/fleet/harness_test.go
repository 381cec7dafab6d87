package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// fakeWorker is a worker process without a process: the test pushes events
// and decides when it dies.
type fakeWorker struct {
	h      *harness
	org    string
	pid    int
	events chan *pb.Event
	dead   chan struct{}
	once   sync.Once
	// stopGate, when set, holds Stop: a worker slow to close.
	stopGate chan struct{}
	// restoring is what Start reports: whether the store held a device.
	restoring bool

	mu           sync.Mutex
	killed       bool
	unresponsive bool
	fingerprint  string
}

// Start behaves as the real worker does with its store: a device there is
// restored; none and a restore asked for is device_missing, without a
// connect; none otherwise opens a registration (the server offers a QR),
// which the harness records with the fake clock's time.
func (w *fakeWorker) Start(_ context.Context, req *pb.StartRequest) (*pb.StartResponse, error) {
	w.mu.Lock()
	w.fingerprint = req.Fingerprint
	w.mu.Unlock()
	switch {
	case w.restoring:
		return &pb.StartResponse{Restoring: true}, nil
	case req.Restore:
		return &pb.StartResponse{DeviceMissing: true}, nil
	}
	w.h.registered(w.org)
	return &pb.StartResponse{}, nil
}

func (w *fakeWorker) Events(ctx context.Context, sink func(*pb.Event) error) error {
	for {
		select {
		case ev := <-w.events:
			if err := sink(ev); err != nil {
				return err
			}
		case <-w.dead:
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

func (w *fakeWorker) Stop(ctx context.Context) error {
	if w.stopGate != nil {
		select {
		case <-w.stopGate:
		case <-ctx.Done():
		}
	}
	return nil
}

func (w *fakeWorker) Logout(context.Context) error { return nil }
func (w *fakeWorker) PairPhone(context.Context, string) (string, error) {
	return "ABCD-EFGH", nil
}
func (w *fakeWorker) SendText(context.Context, *pb.SendTextRequest) (*pb.SendTextResponse, error) {
	return nil, errors.New("not in this test")
}
func (w *fakeWorker) SendMedia(context.Context, *pb.SendMediaRequest) (*pb.SendTextResponse, error) {
	return nil, errors.New("not in this test")
}
func (w *fakeWorker) CheckNumbers(context.Context, []string) ([]*pb.NumberCheck, error) {
	return nil, errors.New("not in this test")
}
func (w *fakeWorker) PID() int { return w.pid }

// Kill ends the "process": from here on it no longer counts as alive.
func (w *fakeWorker) Kill() {
	w.once.Do(func() {
		w.h.exited(w)
		w.mu.Lock()
		w.killed = true
		w.mu.Unlock()
		close(w.dead)
	})
}

// crash makes the worker vanish as if killed with -9; the fleet still has
// to reap it.
func (w *fakeWorker) crash() { w.Kill() }

func (w *fakeWorker) hang() {
	w.mu.Lock()
	w.unresponsive = true
	w.mu.Unlock()
}

func (w *fakeWorker) isKilled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.killed
}

// memStore is state.db in memory; fail makes every write fail, gate holds
// every write until closed.
type memStore struct {
	mu   sync.Mutex
	recs map[string]lifecycle.Record
	fail error
	gate chan struct{}
	// waiting counts saves held at the gate.
	waiting int
	writes  int
	// events are the webhook events committed, in order.
	events []webhook.Event
}

func (s *memStore) SaveOrg(ctx context.Context, r lifecycle.Record, events []webhook.Event, _ time.Time) error {
	s.mu.Lock()
	gate := s.gate
	if gate != nil {
		s.waiting++
	}
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.writes++
	s.recs[r.ID] = r
	s.events = append(s.events, events...)
	return nil
}

// committed lists the kinds of org's committed webhook events, with their
// status and reason.
func (s *memStore) committed(org string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		if e.Org == org {
			out = append(out, e.Kind+":"+e.Status+":"+e.Reason)
		}
	}
	return out
}

func (s *memStore) DeleteOrg(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	delete(s.recs, id)
	return nil
}

func (s *memStore) get(id string) (lifecycle.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	return r, ok
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *memStore) all() []lifecycle.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []lifecycle.Record
	for _, r := range s.recs {
		out = append(out, r)
	}
	return out
}

type fakeArchive struct {
	mu      sync.Mutex
	fail    error
	reasons map[string][]string
	// atMove records the organization's live processes at every Move.
	atMove []int
	h      *harness
}

func (a *fakeArchive) Move(org, reason string, now time.Time) (string, error) {
	alive := a.h.aliveOf(org)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.atMove = append(a.atMove, alive)
	if a.fail != nil {
		return "", a.fail
	}
	if a.reasons == nil {
		a.reasons = map[string][]string{}
	}
	a.reasons[org] = append(a.reasons[org], reason)
	return fmt.Sprintf("/auth/%s_%s_%d", org, reason, now.UnixMilli()), nil
}

func (a *fakeArchive) Prune(string, int) ([]string, error) { return nil, nil }

func (a *fakeArchive) setFail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = err
}

func (a *fakeArchive) of(org string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reasons[org])
}

type recMetrics struct {
	mu       sync.Mutex
	restarts []string
	persist  int
	status   map[string]state.Status
}

func (m *recMetrics) SetStatus(org string, s state.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.status == nil {
		m.status = map[string]state.Status{}
	}
	m.status[org] = s
}
func (m *recMetrics) Forget(org string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.status, org)
}
func (*recMetrics) SetLive(map[string]int)        {}
func (*recMetrics) SetQueueDepth(int)             {}
func (*recMetrics) BadMACError(string)            {}
func (*recMetrics) BadMACTrip(string)             {}
func (*recMetrics) SessionCleared(string, string) {}
func (*recMetrics) Logout(string, string)         {}
func (*recMetrics) SetRSS(string, int64)          {}
func (*recMetrics) QRCode(string)                 {}
func (*recMetrics) ObserveStart(time.Duration)    {}
func (*recMetrics) DecryptFailure(string, string) {}
func (m *recMetrics) WorkerRestart(org, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.restarts = append(m.restarts, org+":"+reason)
}
func (m *recMetrics) PersistError() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.persist++
}
func (m *recMetrics) persistErrors() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.persist
}

// harness is a Fleet with fake processes, store and archive, and a clock
// the test moves. The launcher counts live processes at every change, so
// the cap is checked at every instant, not at the end.
type harness struct {
	t     testing.TB
	f     *Fleet
	clk   *clock.Fake
	store *memStore
	arch  *fakeArchive
	m     *recMetrics
	cfg   config.Config

	mu       sync.Mutex
	pid      int
	launched map[string][]*fakeWorker
	starts   []time.Time
	alive    map[string]int
	maxAlive int
	overlap  string // an org that once had two processes at once
	// restoring lists the orgs whose workers report an existing device.
	restoring map[string]bool
	// registrations lists, per org, when a worker opened a registration.
	registrations map[string][]time.Time
	// gate, when set, holds every launch until closed or cancelled.
	gate     chan struct{}
	stopGate chan struct{}
	// purged lists the organizations Options.Purged heard, in order.
	purged []string
}

func (h *harness) purge(org string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.purged = append(h.purged, org)
}

func (h *harness) purgedOrgs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.purged)
}

func testConfig() config.Config {
	c := config.Default()
	c.StateDir = "/nonexistent-state"
	c.Workers.StartGap.Duration = 2 * time.Second
	c.Workers.StartJitter = [2]config.Duration{{Duration: time.Second}, {Duration: time.Second}}
	return c
}

func newHarness(t testing.TB, cfg config.Config, recs ...lifecycle.Record) *harness {
	t.Helper()
	return newHarnessPicking(t, cfg, nil, recs...)
}

// newHarnessPicking is newHarness with the fingerprint picks decided by intn.
func newHarnessPicking(t testing.TB, cfg config.Config, intn func(int) int, recs ...lifecycle.Record) *harness {
	t.Helper()
	h := newUnbootedHarness(t, cfg, intn, recs...)
	h.f.Boot(recs)
	return h
}

// newUnbootedHarness stores recs but leaves the Boot to the test.
func newUnbootedHarness(t testing.TB, cfg config.Config, intn func(int) int, recs ...lifecycle.Record) *harness {
	t.Helper()
	h := &harness{
		t: t, clk: clock.NewFake(clocktest.Origin()), cfg: cfg,
		store: &memStore{recs: map[string]lifecycle.Record{}}, m: &recMetrics{},
		launched: map[string][]*fakeWorker{}, alive: map[string]int{}, restoring: map[string]bool{}, pid: 1000,
	}
	h.arch = &fakeArchive{h: h}
	for _, r := range recs {
		h.store.recs[r.ID] = r
	}
	h.f = New(Options{
		Config: cfg, Store: h.store, Archive: h.arch, Metrics: h.m, Clock: h.clk,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Jitter:   func(min, _ time.Duration) time.Duration { return min },
		Launch:   h.launch,
		Intn:     intn,
		Lookup:   fakeLookup,
		Webhooks: true,
		Purged:   h.purge,
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.f.Shutdown(ctx)
		h.mu.Lock()
		defer h.mu.Unlock()
		for org, n := range h.alive {
			if n != 0 {
				t.Errorf("%s: %d processes left after shutdown", org, n)
			}
		}
	})
	return h
}

// fakeLookup resolves as a host with localhost on both loopbacks (::1
// first, as many resolvers answer) and no other name.
func fakeLookup(_ context.Context, host string) ([]netip.Addr, error) {
	if host == "localhost" {
		return []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (h *harness) launch(ctx context.Context, org string) (Worker, error) {
	h.mu.Lock()
	h.pid++
	w := &fakeWorker{h: h, org: org, pid: h.pid, events: make(chan *pb.Event, 16), dead: make(chan struct{}),
		restoring: h.restoring[org], stopGate: h.stopGate}
	h.launched[org] = append(h.launched[org], w)
	h.starts = append(h.starts, h.clk.Now())
	h.alive[org]++
	if h.alive[org] > 1 {
		h.overlap = org
	}
	total := 0
	for _, n := range h.alive {
		total += n
	}
	h.maxAlive = max(h.maxAlive, total)
	gate := h.gate
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			// A real launcher reaps what it forked before it answers.
			w.Kill()
			return nil, ctx.Err()
		}
	}
	return w, nil
}

func (h *harness) registered(org string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.registrations == nil {
		h.registrations = map[string][]time.Time{}
	}
	h.registrations[org] = append(h.registrations[org], h.clk.Now())
}

// registrationsOf lists when org's workers opened a registration.
func (h *harness) registrationsOf(org string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.registrations[org])
}

func (h *harness) exited(w *fakeWorker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.alive[w.org]--
}

func (h *harness) aliveOf(org string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.alive[org]
}

func (h *harness) maxAliveSeen() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxAlive
}

// eventually polls cond, firing due timers, until it holds or a deadline
// passes: runners act on goroutines, so a test waits for their effect.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		h.clk.Advance(0)
		time.Sleep(time.Millisecond)
	}
}

// advance moves the fake clock in steps, letting runners act between them
// as they would in real time.
func (h *harness) advance(d time.Duration) {
	step := max(100*time.Millisecond, d/50)
	for ; d > 0; d -= step {
		h.clk.Advance(min(step, d))
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) snap(id string) state.Snapshot {
	h.t.Helper()
	s, err := h.f.Get(id)
	if err != nil {
		h.t.Fatalf("get %s: %v", id, err)
	}
	return s
}

func (h *harness) waitStatus(id string, want state.Status) state.Snapshot {
	h.t.Helper()
	var s state.Snapshot
	h.eventually(fmt.Sprintf("%s %s", id, want), func() bool {
		s, _ = h.f.Get(id)
		return s.Status == want
	})
	return s
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

func (h *harness) start(id string) state.Snapshot {
	h.t.Helper()
	s, err := h.f.Start(context.Background(), id, StartOptions{})
	if err != nil {
		h.t.Fatalf("start %s: %v", id, err)
	}
	return s
}

func (h *harness) stop(id string) {
	h.t.Helper()
	if _, err := h.f.Stop(context.Background(), id); err != nil {
		h.t.Fatalf("stop %s: %v", id, err)
	}
}

// running starts id and waits until its worker is attached.
func (h *harness) running(id string) *fakeWorker {
	h.t.Helper()
	n := h.launches(id)
	h.start(id)
	h.eventually(id+" attached", func() bool {
		h.clk.Advance(100 * time.Millisecond)
		s, _ := h.f.Get(id)
		return h.launches(id) > n && s.WorkerPID != 0
	})
	return h.worker(id)
}

// connected brings id to connected as jid.
func (h *harness) connected(id, jid string) *fakeWorker {
	h.t.Helper()
	w := h.running(id)
	w.events <- &pb.Event{Kind: &pb.Event_Connected{Connected: &pb.Connected{Jid: jid}}}
	h.waitStatus(id, state.Connected)
	return w
}

func (h *harness) ready() {
	h.t.Helper()
	h.eventually("ready", func() bool { return h.f.Ready() == nil })
}

// startTimes lists when each launch began, by the fake clock.
func (h *harness) startTimes() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.starts)
}
