package outbox_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/mediastore"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

var bg = context.Background()

// worker answers SendText as scripted per recipient (an ack otherwise) and
// records every call.
type worker struct {
	mu     sync.Mutex
	clk    *clock.Fake
	calls  []*pb.SendTextRequest
	at     []time.Time
	script map[string][]result
	media  []*pb.SendMediaRequest
	// off are numbers not on WhatsApp; checks records each CheckNumbers
	// call's phones, and checkErr, while set, is every check's answer.
	off      map[string]bool
	checks   [][]string
	checkErr error
}

// SendMedia records the call and acks it.
func (w *worker) SendMedia(_ context.Context, req *pb.SendMediaRequest) (*pb.SendTextResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.media = append(w.media, req)
	return &pb.SendTextResponse{Id: req.Id, ServerTimestampUnixMs: 1}, nil
}

func (w *worker) mediaSent() []*pb.SendMediaRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.media)
}

func (w *worker) CheckNumbers(_ context.Context, phones []string) ([]*pb.NumberCheck, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checks = append(w.checks, slices.Clone(phones))
	if w.checkErr != nil {
		return nil, w.checkErr
	}
	var out []*pb.NumberCheck
	for _, p := range phones {
		c := &pb.NumberCheck{Phone: p, OnWhatsapp: !w.off[p]}
		if c.OnWhatsapp {
			c.Jid = p + "@s.whatsapp.net"
		}
		out = append(out, c)
	}
	return out, nil
}

type result struct {
	code int32
	err  error
	// before, when set, runs before the answer (outside the worker's lock):
	// it may block, as a send in flight does, or change the world meanwhile.
	before func(req *pb.SendTextRequest)
}

func (w *worker) SendText(_ context.Context, req *pb.SendTextRequest) (*pb.SendTextResponse, error) {
	w.mu.Lock()
	w.calls = append(w.calls, req)
	w.at = append(w.at, w.clk.Now())
	r, scripted := result{}, false
	if rs := w.script[req.To]; len(rs) > 0 {
		w.script[req.To] = rs[1:]
		r, scripted = rs[0], true
	}
	w.mu.Unlock()
	if r.before != nil {
		r.before(req)
	}
	switch {
	case !scripted:
	case r.err != nil:
		return nil, r.err
	case r.code != 0:
		return &pb.SendTextResponse{Id: req.Id, ServerError: r.code}, nil
	}
	return &pb.SendTextResponse{Id: req.Id, ServerTimestampUnixMs: 1}, nil
}

// sentWith counts the sends of one WhatsApp message ID.
func (w *worker) sentWith(waID string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.calls {
		if c.Id == waID {
			n++
		}
	}
	return n
}

func (w *worker) arm(to string, rs ...result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.script == nil {
		w.script = map[string][]result{}
	}
	w.script[to] = append(w.script[to], rs...)
}

func (w *worker) sent() []*pb.SendTextRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

type metrics struct {
	mu            sync.Mutex
	failed        map[string]int
	persistErrors int
}

func (m *metrics) SetOutboxDepth(string, int)     {}
func (m *metrics) MessageSent(string)             {}
func (m *metrics) ObserveSend(time.Duration)      {}
func (m *metrics) SetBroadcasts(int, int)         {}
func (m *metrics) SetSendRestricted(string, bool) {}
func (m *metrics) PersistError() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.persistErrors++
}
func (m *metrics) MessageFailed(org, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed == nil {
		m.failed = map[string]int{}
	}
	m.failed[reason]++
}

// failedOf is MessageFailed's count for reason.
func (m *metrics) failedOf(reason string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed[reason]
}

type harness struct {
	t   *testing.T
	o   *outbox.Outbox
	st  *store.Store
	clk *clock.Fake
	w   *worker
	m   *metrics
	lib *mediastore.Library
	cfg config.Messages
	mu  sync.Mutex
	on  map[string]bool
}

func testMessages() config.Messages {
	c := config.Default().Messages
	c.MinInterval.Duration = 2 * time.Second
	c.PerMinute = 60
	c.Jitter = [2]config.Duration{}
	c.MaxJobs = 1
	c.StalledAfter.Duration = 5 * time.Minute
	c.RestrictBackoff.Duration = time.Hour
	// The schedule has its own tests; the others send more than a
	// warm-up's first day.
	c.DailyLimit = 0
	return c
}

func newHarness(t *testing.T, cfg config.Messages, path string) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, path, func(st *store.Store) outbox.Store { return st })
}

// newHarnessWith lets a test put itself between the outbox and its store.
func newHarnessWith(t *testing.T, cfg config.Messages, path string, wrap func(*store.Store) outbox.Store) *harness {
	t.Helper()
	return newHarnessFrom(t, cfg, path, wrap, clocktest.Origin())
}

// newHarnessFrom starts the fake clock at start: a restart goes on from
// where the last harness's clock was.
func newHarnessFrom(t *testing.T, cfg config.Messages, path string, wrap func(*store.Store) outbox.Store, start time.Time) *harness {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	register(t, st, "2")
	h := &harness{t: t, st: st, clk: clock.NewFake(start),
		m: &metrics{}, cfg: cfg, on: map[string]bool{}}
	h.w = &worker{clk: h.clk}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if h.lib, err = mediastore.Open(filepath.Join(filepath.Dir(path), "media"), st, log); err != nil {
		t.Fatal(err)
	}
	h.o = outbox.New(outbox.Options{
		Config: cfg, Store: wrap(st), Metrics: h.m, Clock: h.clk, Log: log, Zone: testZone, Media: h.lib,
		Fleet: outbox.FleetFunc(func(org string) (outbox.Worker, bool) {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.w, h.on[org]
		}),
	})
	if err := h.o.Start(bg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.o.Stop(); st.Close() })
	return h
}

// register makes orgs registered organizations: the outbox takes messages
// only for those.
func register(t testing.TB, st *store.Store, orgs ...string) {
	t.Helper()
	for _, org := range orgs {
		if err := st.SaveOrg(bg, lifecycle.Record{ID: org, Status: state.Queued, Run: true}, nil, clocktest.Origin()); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) connect(org string, on bool) {
	h.mu.Lock()
	h.on[org] = on
	h.mu.Unlock()
	h.o.OrgStatus(org, on, "573009990000:1@s.whatsapp.net")
}

func (h *harness) send(org, to, text string) outbox.Message {
	h.t.Helper()
	m, _, err := h.o.Send(bg, org, outbox.SendRequest{To: to, Text: text})
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// until advances the fake clock in steps until cond holds.
func (h *harness) until(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		h.clk.Advance(250 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

// parked waits until the sender sleeps on the fake clock, its one timer.
func (h *harness) parked() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.clk.Pending() != 1 {
		if time.Now().After(deadline) {
			h.t.Fatalf("the sender never parked (%d timers)", h.clk.Pending())
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) status(org, id string) outbox.Message {
	m, err := h.o.Message(bg, org, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *harness) sentTo() []string {
	var out []string
	for _, c := range h.w.sent() {
		out = append(out, c.To+":"+c.Text)
	}
	return out
}

func TestSendsInOrderOnlyWhileConnected(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	a := h.send("2", "573001112222", "one")
	b := h.send("2", "573001112222", "two")
	h.clk.Advance(time.Minute)
	if n := len(h.w.sent()); n != 0 {
		t.Fatalf("%d sends while not connected", n)
	}
	h.connect("2", true)
	h.until("both sent", func() bool { return h.status("2", b.ID).Status == outbox.Sent })
	if got := h.sentTo(); !slices.Equal(got, []string{"573001112222:one", "573001112222:two"}) {
		t.Fatalf("sent %v", got)
	}
	if calls := h.w.sent(); calls[0].Id != a.WAID || calls[1].Id != b.WAID {
		t.Fatalf("sent with ids %s %s, want the fixed %s %s", calls[0].Id, calls[1].Id, a.WAID, b.WAID)
	}
	if gap := h.status("2", b.ID).SentAt.Sub(h.status("2", a.ID).SentAt); gap < 2*time.Second {
		t.Fatalf("sent %s apart, below min_interval", gap)
	}
	h.connect("2", false)
	c := h.send("2", "573001112222", "three")
	h.clk.Advance(time.Minute)
	if st := h.status("2", c.ID).Status; st != outbox.Queued {
		t.Fatalf("sent while disconnected: %s", st)
	}
	h.connect("2", true)
	h.until("sent after the reconnect", func() bool { return h.status("2", c.ID).Status == outbox.Sent })
	// The in-memory counts follow the commit of "sent" a moment later; they
	// must reach exactly these and never pass them.
	h.until("counts of 0 queued, 3 sent", func() bool {
		cnt := h.o.Counts("2")
		if cnt.SentToday > 3 {
			t.Fatalf("counts %+v: more sent than went out", cnt)
		}
		return cnt.Queued == 0 && cnt.SentToday == 3
	})
}

// A 463 holds messages to new contacts for restrict_backoff; a known
// contact's message goes on meanwhile; nothing is failed or sent twice.
func TestRestrictionHoldsOnlyNewContacts(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.connect("2", true)
	known := h.send("2", "573000000001", "hello")
	h.until("known contact messaged", func() bool { return h.status("2", known.ID).Status == outbox.Sent })
	h.w.arm("573000000002", result{code: 463})
	fresh := h.send("2", "573000000002", "first contact")
	h.until("restricted", func() bool { return !h.o.Restricted("2").IsZero() })
	later := h.send("2", "573000000003", "another new one")
	again := h.send("2", "573000000001", "again")
	h.until("the known contact's message", func() bool { return h.status("2", again.ID).Status == outbox.Sent })
	if st := h.status("2", fresh.ID).Status; st != outbox.Queued {
		t.Fatalf("the refused message is %s, want queued", st)
	}
	if st := h.status("2", later.ID).Status; st != outbox.Queued {
		t.Fatalf("a later new contact's message is %s during the restriction", st)
	}
	// The sender's wait is scheduled from the time it read: advancing the
	// fake clock before it parks would push its wake-up an hour further.
	h.parked()
	h.clk.Advance(59 * time.Minute)
	h.parked()
	if n := len(h.w.sent()); n != 3 {
		t.Fatalf("%d sends during the restriction, want 3 (retried hot?)", n)
	}
	h.until("both new contacts after the restriction", func() bool {
		return h.status("2", fresh.ID).Status == outbox.Sent && h.status("2", later.ID).Status == outbox.Sent
	})
	if calls := h.w.sent(); calls[1].Id != calls[3].Id && calls[1].Id != calls[4].Id {
		t.Fatalf("the refused message was not sent again with its ID")
	}
}

// A number that wrote to the organization directly is a known contact;
// a LID, or a member of a group, is not.
func TestHeardMakesKnownContacts(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.o.Heard("2", "573000000041@s.whatsapp.net", "573000000041@s.whatsapp.net", "3EB0X", "hi")
	h.o.Heard("2", "573000000044@lid", "573000000044@lid", "3EB0X", "hi")
	h.o.Heard("2", "573000000043@s.whatsapp.net", "120363000000000001@g.us", "3EB0X", "hi")
	h.connect("2", true)
	h.w.arm("573000000040", result{code: 463})
	first := h.send("2", "573000000040", "new")
	h.until("restricted", func() bool { return !h.o.Restricted("2").IsZero() })
	wrote := h.send("2", "573000000041", "you wrote to us")
	lid := h.send("2", "573000000044", "lid")
	member := h.send("2", "573000000043", "group member")
	h.until("the contact who wrote", func() bool { return h.status("2", wrote.ID).Status == outbox.Sent })
	for _, m := range []outbox.Message{first, lid, member} {
		if st := h.status("2", m.ID).Status; st != outbox.Queued {
			t.Fatalf("%s to %s is %s during the restriction", m.Text, m.To, st)
		}
	}
}

func TestServerErrorFailsOneMessage(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.connect("2", true)
	h.w.arm("573000000009", result{code: 479})
	bad := h.send("2", "573000000009", "x")
	good := h.send("2", "573000000010", "y")
	h.until("both handled", func() bool { return h.status("2", good.ID).Status == outbox.Sent })
	m := h.status("2", bad.ID)
	if m.Status != outbox.Failed || m.Reason != "server_error_479" {
		t.Fatalf("refused message: %+v", m)
	}
	h.until("the refusal counted", func() bool { return h.m.failedOf("server_error_479") == 1 })
}

// A send without an answer puts the message back; it goes again with the
// same ID after a pause, never at once.
func TestNoAnswerRetriesWithTheSameID(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.connect("2", true)
	h.w.arm("573000000011", result{err: errors.New("rpc error: code = Unavailable")})
	m := h.send("2", "573000000011", "z")
	h.until("sent on the second try", func() bool { return h.status("2", m.ID).Status == outbox.Sent })
	calls := h.w.sent()
	if len(calls) != 2 || calls[0].Id != calls[1].Id || calls[0].Id != m.WAID {
		t.Fatalf("calls %v", calls)
	}
	if got := h.status("2", m.ID).Attempts; got != 2 {
		t.Fatalf("attempts %d", got)
	}
}

// The pause after a send without an answer holds whatever wakes the
// sender: a new message must not trigger the retry early.
func TestNoAnswerPauseHoldsAgainstWakeUps(t *testing.T) {
	cfg := testMessages()
	cfg.MinInterval.Duration, cfg.PerMinute = 0, 600
	h := newHarness(t, cfg, "")
	h.connect("2", true)
	h.w.arm("573000000013", result{err: errors.New("rpc error: code = Unavailable")})
	m := h.send("2", "573000000013", "first")
	h.until("the first attempt", func() bool { return len(h.w.sent()) == 1 })
	other := h.send("2", "573000000014", "woken")
	h.until("both sent", func() bool {
		return h.status("2", m.ID).Status == outbox.Sent && h.status("2", other.ID).Status == outbox.Sent
	})
	h.w.mu.Lock()
	gap := h.w.at[1].Sub(h.w.at[0])
	h.w.mu.Unlock()
	if gap < time.Second {
		t.Fatalf("retried %s after a send without an answer; the pause is 1s", gap)
	}
}

// A message that never gets an answer fails after maxAttempts instead of
// holding the organization's later messages back until it expires.
func TestNoAnswerGivesUp(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.connect("2", true)
	fail := result{err: errors.New("rpc error: code = Unknown desc = send text: usync failed")}
	h.w.arm("573000000015", fail, fail, fail, fail, fail, fail)
	stuck := h.send("2", "573000000015", "never answered")
	later := h.send("2", "573000000016", "behind it")
	h.until("the later message sent", func() bool { return h.status("2", later.ID).Status == outbox.Sent })
	if got := h.status("2", stuck.ID); got.Status != outbox.Failed || got.Reason != "no_answer" || got.Attempts != 5 {
		t.Fatalf("the unanswered message: %s %s after %d attempts", got.Status, got.Reason, got.Attempts)
	}
}

// A message a crash left sending is sent again with its ID after a restart.
func TestCrashLeftSendingGoesAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	register(t, st, "2")
	st.InsertMessage(bg, outbox.Message{ID: "msg_x", Org: "2", To: "573000000012", Text: "x", WAID: "3EB0AA", QueuedAt: clocktest.Origin()})
	st.MarkSending(bg, outbox.Message{ID: "msg_x", Org: "2"}, clocktest.Origin())
	st.Close()
	h := newHarness(t, testMessages(), path)
	h.connect("2", true)
	h.until("sent", func() bool { return h.status("2", "msg_x").Status == outbox.Sent })
	if calls := h.w.sent(); len(calls) != 1 || calls[0].Id != "3EB0AA" {
		t.Fatalf("calls %v", calls)
	}
}

// afterPick runs once, right after the sender picked its next message.
type afterPick struct {
	*store.Store
	once sync.Once
	fn   func(outbox.Message)
}

func (a *afterPick) NextMessage(ctx context.Context, org string, jobs []string, restricted bool, now time.Time) (outbox.Message, bool, error) {
	m, ok, err := a.Store.NextMessage(ctx, org, jobs, restricted, now)
	if ok {
		a.once.Do(func() { a.fn(m) })
	}
	return m, ok, err
}

// A message cancelled or expired after the sender picked it, while it
// waited for its pacing turn, is not sent. The old sender committed
// "sending" only if the message was still queued but sent it either way.
func TestMessageGoneWhileWaitingIsNotSent(t *testing.T) {
	var st *store.Store
	h := newHarnessWith(t, testMessages(), "", func(s *store.Store) outbox.Store {
		st = s
		return &afterPick{Store: s, fn: func(m outbox.Message) {
			if _, _, err := s.Fail(bg, m, "expired", clocktest.Origin()); err != nil {
				t.Error(err)
			}
		}}
	})
	gone := h.send("2", "573000000031", "too late")
	next := h.send("2", "573000000032", "in time")
	h.connect("2", true)
	h.until("the next message sent", func() bool { return h.status("2", next.ID).Status == outbox.Sent })
	if got := h.sentTo(); !slices.Equal(got, []string{"573000000032:in time"}) {
		t.Fatalf("sent %v; the expired message went out", got)
	}
	if m, _ := st.Message(bg, "2", gone.ID); m.Status != outbox.Failed || m.Reason != "expired" {
		t.Fatalf("the expired message is %s (%s)", m.Status, m.Reason)
	}
}

// One job sends at a time with max_jobs 1; the second waits, then runs;
// a cancelled job fails its unsent messages.
func TestBroadcastTurnsAndCancel(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.connect("2", true)
	first, _, err := h.o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: []string{"573000000021", "573000000022", "573000000021"}, Text: "one"})
	if err != nil || first.Total != 2 {
		t.Fatalf("create: %+v %v (duplicates removed)", first, err)
	}
	second, _, _ := h.o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: []string{"573000000023", "573000000024"}, Text: "two"})
	third, _, _ := h.o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: []string{"573000000025", "573000000026"}, Text: "three"})
	h.until("the first job done", func() bool { b, _ := h.o.Broadcast(bg, "2", first.ID); return b.Status == outbox.JobDone })
	if b, _ := h.o.Broadcast(bg, "2", third.ID); b.Status != outbox.JobQueued {
		t.Fatalf("third job %s while the second had the only turn", b.Status)
	}
	h.until("the second job started", func() bool { b, _ := h.o.Broadcast(bg, "2", second.ID); return b.Status == outbox.JobSending })
	if _, err := h.o.CancelBroadcast(bg, "2", third.ID); err != nil {
		t.Fatal(err)
	}
	h.until("the second job done", func() bool { b, _ := h.o.Broadcast(bg, "2", second.ID); return b.Status == outbox.JobDone })
	b, _ := h.o.Broadcast(bg, "2", third.ID)
	if b.Status != outbox.JobCancelled || b.Counts.Failed != 2 || b.Counts.Sent != 0 {
		t.Fatalf("cancelled job %+v", b)
	}
	for _, c := range h.sentTo() {
		if c[len(c)-5:] == "three" {
			t.Fatalf("a cancelled job's message went out: %s", c)
		}
	}
	h.until("both cancellations counted", func() bool { return h.m.failedOf("cancelled") == 2 })
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	var ie *outbox.InputError
	for _, r := range []outbox.SendRequest{
		{To: "(300) 111-2222", Text: "x"}, {To: "+57 300 111 22", Text: "x"}, {To: "573001112222", Text: "  "}, {To: "573001112222", Text: "x", IdempotencyKey: "a b"},
		{To: "573001112222", Text: string([]byte{0xff})},
	} {
		if _, _, err := h.o.Send(bg, "2", r); !errors.As(err, &ie) {
			t.Errorf("%+v: %v", r, err)
		}
	}
	_, _, err := h.o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: []string{"573001112222", "12", "abc"}, Text: "x"})
	if !errors.As(err, &ie) || ie.Field != "recipients" || !containsAll(ie.Msg, `"12"`, `"abc"`) {
		t.Fatalf("bad recipients: %v", err)
	}
	cfg := testMessages()
	cfg.MaxRecipients = 2
	h2 := newHarness(t, cfg, "")
	if _, _, err := h2.o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: []string{"573000000001", "573000000002", "573000000003"}, Text: "x"}); !errors.As(err, &ie) {
		t.Fatalf("over max_recipients: %v", err)
	}
	h.send("2", "573001112222", "x")
	var ce *outbox.ConflictError
	if _, _, err := h.o.Send(bg, "2", outbox.SendRequest{To: "573001112222", Text: "x", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.o.Send(bg, "2", outbox.SendRequest{To: "573001112222", Text: "other", IdempotencyKey: "k"}); !errors.As(err, &ce) {
		t.Fatalf("a key reused for another text: %v", err)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// A SIGTERM during the boot stops the outbox before Start finishes: Start
// then refuses to begin its loops behind Stop's back (they raced Stop's
// Wait on the WaitGroup before).
func TestStartAfterStop(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := outbox.New(outbox.Options{Config: testMessages(), Store: st, Metrics: &metrics{},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Fleet: outbox.FleetFunc(func(string) (outbox.Worker, bool) { return nil, false })})
	o.Stop()
	if err := o.Start(bg); err == nil {
		t.Fatal("Start after Stop began the outbox's loops")
	}
}
