package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

// A 463 to a known contact holds that message restrict_backoff as well.
// It used to be picked again at once, as known contacts go on during a
// restriction, and resent at the pacing rate without end (139 times in 10
// minutes), with every later message to known contacts waiting behind it.
func TestRestrictedMessageWaitsItsBackoffEvenToAKnownContact(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.o.Heard("2", "573000000052@s.whatsapp.net", "573000000052@s.whatsapp.net", "3EB0X", "")
	h.connect("2", true)
	hello := h.send("2", "573000000051", "hello")
	h.until("the contact known", func() bool { return h.status("2", hello.ID).Status == outbox.Sent })
	refusals := make([]result, 500)
	for i := range refusals {
		refusals[i] = result{code: 463}
	}
	h.w.arm("573000000051", refusals...)
	refused := h.send("2", "573000000051", "refused")
	h.until("restricted", func() bool { return !h.o.Restricted("2").IsZero() })
	later := h.send("2", "573000000052", "to another known contact")

	backoff := h.cfg.RestrictBackoff.Duration
	start := h.clk.Now()
	for h.clk.Now().Sub(start) < 10*time.Minute {
		h.clk.Advance(time.Second)
		time.Sleep(time.Millisecond) // a yield to the sender, not a sync: the invariant holds at every instant
		allowed := 1 + int(h.clk.Now().Sub(start)/backoff)
		if n := h.w.sentWith(refused.WAID); n > allowed {
			t.Fatalf("the refused message was sent %d times within %s; restrict_backoff %s allows %d",
				n, h.clk.Now().Sub(start), backoff, allowed)
		}
	}
	h.until("the later known contact's message", func() bool { return h.status("2", later.ID).Status == outbox.Sent })
	if m := h.status("2", refused.ID); m.Status != outbox.Queued {
		t.Fatalf("the refused message is %s (%s), want queued until its backoff ends", m.Status, m.Reason)
	}
}

// A last attempt without an answer fails the message as no_answer, unless
// a receipt showed meanwhile that it arrived: store.Fail then changes no
// row, and the failure is not counted. It was, so failed_today grew for a
// message the recipient had.
func TestFailCountsOnlyWhatItFailed(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.connect("2", true)
	lost := result{err: errors.New("rpc error: code = Unavailable")}
	arrived := result{err: lost.err, before: func(req *pb.SendTextRequest) {
		h.o.Receipt("2", []string{req.Id}, "delivered", h.clk.Now())
	}}
	h.w.arm("573000000061", lost, lost, lost, lost, arrived)
	m := h.send("2", "573000000061", "it got there")
	h.until("the last attempt settled", func() bool {
		c := h.o.Counts("2")
		return c.Queued == 0 && c.SentToday+c.FailedToday > 0
	})
	if c := h.o.Counts("2"); c.FailedToday != 0 || c.SentToday != 1 {
		t.Fatalf("counts %+v for one delivered message", c)
	}
	h.m.mu.Lock()
	failed := h.m.failed["no_answer"]
	h.m.mu.Unlock()
	if failed != 0 {
		t.Fatalf("no_answer counted %d times for a delivered message", failed)
	}
	if got := h.status("2", m.ID); got.Status != outbox.Delivered {
		t.Fatalf("message %s (%s)", got.Status, got.Reason)
	}
}

// A reused idempotency key returns the first job only for the same
// recipients (in any order, duplicates aside); the same number of other
// recipients used to get the first job back, and they were silently dropped.
func TestBroadcastKeyComparesRecipients(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	req := outbox.BroadcastRequest{Recipients: []string{"573000000071", "573000000072"}, Text: "offer", IdempotencyKey: "k"}
	first, created, err := h.o.CreateBroadcast(bg, "2", req)
	if err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	req.Recipients = []string{"573000000072", "573000000071", "573000000072"}
	again, created, err := h.o.CreateBroadcast(bg, "2", req)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("the same recipients in another order: %+v %v %v", again, created, err)
	}
	req.Recipients = []string{"573000000071", "573000000073"}
	var ce *outbox.ConflictError
	if b, _, err := h.o.CreateBroadcast(bg, "2", req); !errors.As(err, &ce) {
		t.Fatalf("the key reused with other recipients: %+v %v, want a conflict", b, err)
	}
}

// sqliteError is what modernc.org/sqlite returns: an error with its
// SQLite result code.
type sqliteError struct{ code int }

func (e sqliteError) Error() string { return fmt.Sprintf("sqlite error %d", e.code) }
func (e sqliteError) Code() int     { return e.code }

// refusing fails message writes with err while set.
type refusing struct {
	*store.Store
	err atomic.Pointer[error]
}

func (r *refusing) fail() error {
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *refusing) InsertMessage(ctx context.Context, m outbox.Message) (outbox.Message, bool, error) {
	if err := r.fail(); err != nil {
		return outbox.Message{}, false, fmt.Errorf("queue message for %s: %w", m.Org, err)
	}
	return r.Store.InsertMessage(ctx, m)
}

// A full disk (SQLITE_FULL) or an I/O error (SQLITE_IOERR, extended codes
// included) is ErrNotSaved, the API's 503 persist_failed, and the outbox is
// not ready until a write succeeds; any other error is neither.
func TestDiskFullIsNotSaved(t *testing.T) {
	var gate *refusing
	h := newHarnessWith(t, testMessages(), "", func(s *store.Store) outbox.Store {
		gate = &refusing{Store: s}
		return gate
	})
	req := outbox.SendRequest{To: "573000000081", Text: "x"}
	for _, code := range []int{13, 10, 10 | 3<<8} {
		var err error = sqliteError{code}
		gate.err.Store(&err)
		if _, _, err := h.o.Send(bg, "2", req); !errors.Is(err, outbox.ErrNotSaved) {
			t.Fatalf("code %d: %v, want ErrNotSaved", code, err)
		}
		if err := h.o.Ready(); !errors.Is(err, outbox.ErrNotSaved) {
			t.Fatalf("code %d: ready %v while writes fail", code, err)
		}
	}
	gate.err.Store(nil)
	if _, _, err := h.o.Send(bg, "2", req); err != nil {
		t.Fatal(err)
	}
	if err := h.o.Ready(); err != nil {
		t.Fatalf("ready %v after a write went through", err)
	}
	var other error = sqliteError{19} // SQLITE_CONSTRAINT: not the disk
	gate.err.Store(&other)
	if _, _, err := h.o.Send(bg, "2", req); err == nil || errors.Is(err, outbox.ErrNotSaved) {
		t.Fatalf("a constraint error: %v", err)
	}
	if err := h.o.Ready(); err != nil {
		t.Fatalf("ready %v after an error that is not the disk's", err)
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if h.m.persistErrors != 3 {
		t.Fatalf("persist errors counted %d, want 3", h.m.persistErrors)
	}
}

// Deleting an organization while one of its messages is being sent: the
// message reaches WhatsApp and its ack records it sent; only what was
// still queued fails, in the tombstone's own transaction, and a message
// POST after it is refused. The old delete failed the message in flight
// before its worker was closed, so a message that arrived was reported
// failed.
func TestDeleteDuringSendKeepsTheAck(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	release := make(chan struct{})
	var once sync.Once
	letGo := func() { once.Do(func() { close(release) }) }
	// Registered after the harness's, so it runs first: a failing test
	// must not leave the send blocked, or Stop would wait for it forever.
	t.Cleanup(letGo)
	inFlight := make(chan struct{})
	h.w.arm("573000000091", result{before: func(*pb.SendTextRequest) { close(inFlight); <-release }})
	flying := h.send("2", "573000000091", "in flight")
	waiting := h.send("2", "573000000092", "still queued")
	h.connect("2", true)
	h.until("the first message in flight", func() bool {
		select {
		case <-inFlight:
			return true
		default:
			return false
		}
	})
	// What the fleet does on DELETE: the tombstone is committed, then the
	// organization is no longer connected, then the outbox is told.
	if err := h.st.SaveOrg(bg, lifecycle.Record{ID: "2", Status: state.Stopped, Deleted: true}, nil, h.clk.Now()); err != nil {
		t.Fatal(err)
	}
	h.connect("2", false)
	h.o.OrgDeleted("2")
	if _, _, err := h.o.Send(bg, "2", outbox.SendRequest{To: "573000000093", Text: "too late"}); !errors.Is(err, outbox.ErrUnknownOrg) {
		t.Fatalf("a message for the deleted organization: %v, want ErrUnknownOrg", err)
	}
	if m := h.status("2", waiting.ID); m.Status != outbox.Failed || m.Reason != outbox.ReasonOrgDeleted {
		t.Fatalf("the queued message is %s (%s) after the tombstone", m.Status, m.Reason)
	}
	letGo()
	h.until("the ack recorded", func() bool { return h.status("2", flying.ID).Status != outbox.Sending })
	if m := h.status("2", flying.ID); m.Status != outbox.Sent {
		t.Fatalf("the message WhatsApp acked is %s (%s)", m.Status, m.Reason)
	}
	// The counts follow the commit, in memory, a moment later.
	h.until("the ack counted", func() bool { return h.o.Counts("2").Queued == 0 })
	if c := h.o.Counts("2"); c.Queued != 0 || c.SentToday != 1 || c.FailedToday != 1 {
		t.Fatalf("counts %+v", c)
	}
}
