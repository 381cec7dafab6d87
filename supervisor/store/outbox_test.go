package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

func msg(id, org, to string, at time.Time) outbox.Message {
	return outbox.Message{ID: id, Org: org, To: to, Text: "t " + id, WAID: "3EB0" + id, QueuedAt: at}
}

// openOutbox opens a state.db with organizations 2 and other registered:
// the outbox takes messages only for registered organizations.
func openOutbox(t *testing.T) *Store {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	register(t, s, "2", "other")
	return s
}

func register(t *testing.T, s *Store, orgs ...string) {
	t.Helper()
	for _, org := range orgs {
		if err := s.SaveOrg(ctx, lifecycle.Record{ID: org, Status: state.Queued, Run: true}, nil, t0); err != nil {
			t.Fatal(err)
		}
	}
}

func mustSending(t *testing.T, s *Store, id string, at time.Time) {
	t.Helper()
	if ok, err := s.MarkSending(ctx, outbox.Message{ID: id, Org: "2"}, at); err != nil || !ok {
		t.Fatalf("mark %s sending: %v %v", id, ok, err)
	}
}

func TestIdempotentInsert(t *testing.T) {
	s := openOutbox(t)
	m := msg("a", "2", "573001", t0)
	m.IdempotencyKey = "k"
	first, created, err := s.InsertMessage(ctx, m)
	if err != nil || !created || first.Seq == 0 || first.Status != outbox.Queued {
		t.Fatalf("first: %+v %v %v", first, created, err)
	}
	again, created, err := s.InsertMessage(ctx, msg("b", "2", "573002", t0))
	if err != nil || !created || again.ID != "b" {
		t.Fatalf("without a key: %+v %v %v", again, created, err)
	}
	m.ID = "c"
	dup, created, err := s.InsertMessage(ctx, m)
	if err != nil || created || dup.ID != "a" {
		t.Fatalf("same key: %+v %v %v", dup, created, err)
	}
	m.Org = "other"
	if _, created, _ := s.InsertMessage(ctx, m); !created {
		t.Fatal("a key is per organization")
	}
}

func TestNextMessageOrder(t *testing.T) {
	s := openOutbox(t)
	b := outbox.Broadcast{ID: "job", Org: "2", Text: "hi", Total: 2, CreatedAt: t0}
	if _, _, err := s.InsertBroadcast(ctx, b, []outbox.Message{msg("j1", "2", "573011", t0), msg("j2", "2", "573012", t0)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s1", "s2"} {
		s.InsertMessage(ctx, msg(id, "2", "5730"+id, t0))
	}
	next := func(jobs []string, restricted bool) string {
		t.Helper()
		m, ok, err := s.NextMessage(ctx, "2", jobs, restricted, t0)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ""
		}
		return m.ID
	}
	if got := next([]string{"job"}, false); got != "s1" {
		t.Fatalf("next %q: single messages go first", got)
	}
	mustSending(t, s, "s1", t0)
	s.MarkSent(ctx, msg("s1", "2", "5730s1", t0), t0)
	mustSending(t, s, "s2", t0)
	s.Fail(ctx, msg("s2", "2", "5730s2", t0), "server_error_479", t0)
	if got := next(nil, false); got != "" {
		t.Fatalf("next %q with the job not active", got)
	}
	if got := next([]string{"job"}, false); got != "j1" {
		t.Fatalf("next %q, want the job's first", got)
	}
	// Restricted: only known contacts (5730s1 was messaged).
	s.InsertMessage(ctx, msg("s3", "2", "5730s1", t0))
	s.InsertMessage(ctx, msg("s4", "2", "5730new", t0))
	if got := next([]string{"job"}, true); got != "s3" {
		t.Fatalf("restricted next %q", got)
	}
	mustSending(t, s, "s3", t0)
	s.MarkSent(ctx, msg("s3", "2", "5730s1", t0), t0)
	if got := next([]string{"job"}, true); got != "" {
		t.Fatalf("restricted next %q: new contacts must wait", got)
	}
	s.AddContact(ctx, "2", "5730new")
	if got := next([]string{"job"}, true); got != "s4" {
		t.Fatalf("a contact that wrote in: next %q", got)
	}
}

func TestReceiptsMoveForwardOnly(t *testing.T) {
	s := openOutbox(t)
	m := msg("a", "2", "573001", t0)
	s.InsertMessage(ctx, m)
	mustSending(t, s, "a", t0)
	// The receipt overtakes the ack.
	changed, err := s.Receipt(ctx, "2", []string{"3EB0a"}, outbox.Delivered, t0.Add(time.Second), t0.Add(time.Second))
	if err != nil || len(changed) != 1 {
		t.Fatalf("receipt: %v %v", changed, err)
	}
	// The send's answer was lost: the message stays delivered.
	if got, err := s.Requeue(ctx, m, t0.Add(time.Second), time.Time{}); err != nil || got.Status != outbox.Delivered {
		t.Fatalf("requeue after the receipt: %+v %v", got, err)
	}
	s.MarkSent(ctx, m, t0.Add(500*time.Millisecond))
	got, _ := s.Message(ctx, "2", "a")
	if got.Status != outbox.Delivered || !got.SentAt.Equal(t0.Add(500*time.Millisecond)) {
		t.Fatalf("after a receipt and a late ack: %+v", got)
	}
	s.Receipt(ctx, "2", []string{"3EB0a"}, outbox.Read, t0.Add(2*time.Second), t0.Add(2*time.Second))
	if changed, _ := s.Receipt(ctx, "2", []string{"3EB0a"}, outbox.Delivered, t0.Add(3*time.Second), t0.Add(3*time.Second)); len(changed) != 0 {
		t.Fatal("a delivery receipt moved a read message back")
	}
	if changed, _ := s.Receipt(ctx, "other", []string{"3EB0a"}, outbox.Read, t0, t0); len(changed) != 0 {
		t.Fatal("another organization's receipt matched")
	}
}

func TestExpireRecoverAndCounts(t *testing.T) {
	s := openOutbox(t)
	for i := range 4 {
		s.InsertMessage(ctx, msg(fmt.Sprint(i), "2", "573001", t0.Add(time.Duration(i)*time.Hour)))
	}
	mustSending(t, s, "0", t0)
	mustSending(t, s, "3", t0)
	s.MarkSent(ctx, msg("3", "2", "573001", t0), t0.Add(4*time.Hour))
	expired, err := s.ExpireQueued(ctx, t0.Add(2*time.Hour), t0.Add(5*time.Hour))
	if err != nil || len(expired) != 1 || expired[0].ID != "1" {
		t.Fatalf("expired %+v %v: only the queued message older than the limit", expired, err)
	}
	if n, cancelled, err := s.RecoverSending(ctx, t0); err != nil || n != 1 || len(cancelled) != 0 {
		t.Fatalf("recovered %d %v %v", n, cancelled, err)
	}
	if m, _ := s.Message(ctx, "2", "0"); m.Status != outbox.Queued || m.Attempts != 1 {
		t.Fatalf("recovered message %+v", m)
	}
	counts, err := s.OutboxCounts(ctx, t0.Add(4*time.Hour))
	if err != nil || counts["2"].Queued != 2 || counts["2"].SentToday != 1 || counts["2"].FailedToday != 1 {
		t.Fatalf("counts %+v %v", counts, err)
	}
	if _, err := s.Message(ctx, "other", "0"); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("another org's message: %v", err)
	}
}

func TestBroadcastLifecycle(t *testing.T) {
	s := openOutbox(t)
	b := outbox.Broadcast{ID: "job", Org: "2", Text: "hi", Total: 3, CreatedAt: t0, IdempotencyKey: "k"}
	msgs := []outbox.Message{msg("m1", "2", "573011", t0), msg("m2", "2", "573012", t0), msg("m3", "2", "573013", t0)}
	got, created, err := s.InsertBroadcast(ctx, b, msgs)
	if err != nil || !created || got.Counts.Pending != 3 || got.Status != outbox.JobQueued {
		t.Fatalf("insert %+v %v %v", got, created, err)
	}
	b.ID = "job2"
	dup, created, err := s.InsertBroadcast(ctx, b, msgs)
	if err != nil || created || dup.ID != "job" {
		t.Fatalf("same key made a second job: %+v %v %v", dup, created, err)
	}
	s.SetJobStatus(ctx, "job", outbox.JobSending, t0.Add(time.Second))
	mustSending(t, s, "m1", t0)
	s.MarkSent(ctx, msgs[0], t0.Add(2*time.Second))
	mustSending(t, s, "m2", t0)
	job, failed, err := s.CancelBroadcast(ctx, "2", "job", t0.Add(3*time.Second))
	if err != nil || len(failed) != 1 || failed[0].ID != "m3" || job.Status != outbox.JobCancelled ||
		job.Counts != (outbox.Counts{Pending: 1, Sent: 1, Failed: 1}) || !job.StartedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("cancel: %+v %+v %v", job, failed, err)
	}
	if ok, err := s.MarkSending(ctx, msgs[2], t0); ok || err != nil {
		t.Fatalf("a cancelled message was marked sending: %v %v", ok, err)
	}
	if moved, err := s.SetJobStatus(ctx, "job", outbox.JobSending, t0.Add(4*time.Second)); moved || err != nil {
		t.Fatalf("a scheduler with an old view revived the cancelled job: %v %v", moved, err)
	}
	// The message being sent at the cancel had no answer: it is not put
	// back in a cancelled job's line.
	if got, err := s.Requeue(ctx, msgs[1], t0.Add(5*time.Second), time.Time{}); err != nil || got.Status != outbox.Failed || got.Reason != "cancelled" {
		t.Fatalf("requeue into a cancelled job: %+v %v", got, err)
	}
	if open, _ := s.OpenJobs(ctx); len(open) != 0 {
		t.Fatalf("open jobs %+v", open)
	}
	if _, _, err := s.CancelBroadcast(ctx, "other", "job", t0); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("cancel of another org's job: %v", err)
	}
}

// A job is done in the transaction of its last message, whichever way the
// message ends: an ack, a failure, or a receipt that overtook a lost ack.
func TestJobFinishesWithItsLastMessage(t *testing.T) {
	s := openOutbox(t)
	msgs := []outbox.Message{msg("m1", "2", "573011", t0), msg("m2", "2", "573012", t0), msg("m3", "2", "573013", t0)}
	for i := range msgs {
		msgs[i].Broadcast = "job"
	}
	s.InsertBroadcast(ctx, outbox.Broadcast{ID: "job", Org: "2", Text: "hi", Total: 3, CreatedAt: t0}, msgs)
	s.SetJobStatus(ctx, "job", outbox.JobSending, t0)
	status := func() outbox.JobStatus {
		t.Helper()
		st, err := s.JobStatus(ctx, "job")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	mustSending(t, s, "m1", t0)
	if sent, err := s.MarkSent(ctx, msgs[0], t0); err != nil || !sent || status() != outbox.JobSending {
		t.Fatalf("after the first ack: %v %v %s", sent, err, status())
	}
	s.Fail(ctx, msgs[1], "server_error_479", t0)
	mustSending(t, s, "m3", t0)
	s.Receipt(ctx, "2", []string{msgs[2].WAID}, outbox.Delivered, t0.Add(time.Second), t0.Add(time.Second))
	if st := status(); st != outbox.JobDone {
		t.Fatalf("job %s after its last message was delivered", st)
	}
	if sent, err := s.MarkSent(ctx, msgs[2], t0.Add(2*time.Second)); err != nil || !sent {
		t.Fatalf("the late ack of a delivered message: %v %v", sent, err)
	}
	if sent, _ := s.MarkSent(ctx, msgs[1], t0); sent {
		t.Fatal("an ack for a failed message counted as sent")
	}
}

// A database from before jobs finished with their last message: boot
// finishes the drained ones, and a crash's sending message of a cancelled
// job fails instead of going again.
func TestBootRepairsJobs(t *testing.T) {
	s := openOutbox(t)
	a := msg("a1", "2", "573021", t0)
	a.Broadcast = "drained"
	s.InsertBroadcast(ctx, outbox.Broadcast{ID: "drained", Org: "2", Text: "x", Total: 1, CreatedAt: t0}, []outbox.Message{a})
	if _, err := s.db.ExecContext(ctx, `UPDATE messages SET status = 'sent' WHERE id = 'a1'`); err != nil {
		t.Fatal(err)
	}
	c := msg("c1", "2", "573022", t0)
	c.Broadcast = "gone"
	s.InsertBroadcast(ctx, outbox.Broadcast{ID: "gone", Org: "2", Text: "y", Total: 1, CreatedAt: t0}, []outbox.Message{c})
	mustSending(t, s, "c1", t0)
	s.CancelBroadcast(ctx, "2", "gone", t0)
	n, cancelled, err := s.RecoverSending(ctx, t0.Add(time.Second))
	if err != nil || n != 0 || len(cancelled) != 1 || cancelled[0].ID != "c1" || cancelled[0].Reason != "cancelled" {
		t.Fatalf("recover: %d %+v %v", n, cancelled, err)
	}
	if err := s.FinishDrained(ctx, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.JobStatus(ctx, "drained"); st != outbox.JobDone {
		t.Fatalf("drained job %s after boot", st)
	}
}

// An attempt counts as the organization's last send, answered or not.
func TestAttemptIsTheLastSend(t *testing.T) {
	s := openOutbox(t)
	m := msg("a", "2", "573031", t0)
	s.InsertMessage(ctx, m)
	if ok, err := s.MarkSending(ctx, m, t0.Add(time.Minute)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	senders, err := s.Senders(ctx)
	if err != nil || !senders["2"].LastSentAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("senders %+v %v", senders, err)
	}
}

// A message requeued after a 463 waits until its notBefore, even to a
// known contact during the restriction; the messages behind it go on.
func TestHeldMessageWaitsItsTurn(t *testing.T) {
	s := openOutbox(t)
	s.AddContact(ctx, "2", "573051")
	s.AddContact(ctx, "2", "573052")
	refused, later := msg("a", "2", "573051", t0), msg("b", "2", "573052", t0)
	s.InsertMessage(ctx, refused)
	s.InsertMessage(ctx, later)
	mustSending(t, s, "a", t0)
	until := t0.Add(time.Hour)
	if got, err := s.Requeue(ctx, refused, t0, until); err != nil || got.Status != outbox.Queued {
		t.Fatalf("requeue: %+v %v", got, err)
	}
	for _, c := range []struct {
		at   time.Time
		want string
	}{{t0.Add(time.Minute), "b"}, {until, "a"}} {
		m, ok, err := s.NextMessage(ctx, "2", nil, true, c.at)
		if err != nil || !ok || m.ID != c.want {
			t.Fatalf("next at %s: %q %v %v, want %q", c.at.Sub(t0), m.ID, ok, err, c.want)
		}
	}
}

// Fail reports whether it failed the message: one that left pending
// another way (a receipt showed it arrived) is returned as it is, and its
// caller must not count a second outcome.
func TestFailReportsWhetherItFailed(t *testing.T) {
	s := openOutbox(t)
	m := msg("a", "2", "573061", t0)
	s.InsertMessage(ctx, m)
	mustSending(t, s, "a", t0)
	s.Receipt(ctx, "2", []string{m.WAID}, outbox.Delivered, t0, t0)
	got, changed, err := s.Fail(ctx, m, "no_answer", t0)
	if err != nil || changed || got.Status != outbox.Delivered {
		t.Fatalf("fail after a receipt: %+v %v %v", got, changed, err)
	}
	other := msg("b", "2", "573062", t0)
	s.InsertMessage(ctx, other)
	if got, changed, err := s.Fail(ctx, other, "expired", t0); err != nil || !changed || got.Status != outbox.Failed {
		t.Fatalf("fail of a queued message: %+v %v %v", got, changed, err)
	}
	if _, changed, _ := s.Fail(ctx, other, "expired", t0); changed {
		t.Fatal("a failed message failed twice")
	}
}

// The tombstone's transaction fails the organization's queued messages
// and cancels its jobs: no crash between the delete and the failing
// leaves one queued, and a message for the organization after it is
// refused. A message being sent is left to its answer: an ack records it
// sent; no answer fails it as org_deleted, and so does a crash.
func TestTombstoneFailsQueuedMessagesInItsTransaction(t *testing.T) {
	s := openOutbox(t)
	s.EnableEvents(false, nil)
	flying, acked, queued := msg("f", "2", "573071", t0), msg("k", "2", "573072", t0), msg("q", "2", "573073", t0)
	job := msg("j", "2", "573074", t0)
	job.Broadcast = "job"
	for _, m := range []outbox.Message{flying, acked, queued} {
		s.InsertMessage(ctx, m)
	}
	s.InsertBroadcast(ctx, outbox.Broadcast{ID: "job", Org: "2", Text: "x", Total: 1, CreatedAt: t0}, []outbox.Message{job})
	mustSending(t, s, "f", t0)
	mustSending(t, s, "k", t0)
	if err := s.SaveOrg(ctx, lifecycle.Record{ID: "2", Status: state.Stopped, Deleted: true}, nil, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]outbox.Status{"f": outbox.Sending, "k": outbox.Sending, "q": outbox.Failed, "j": outbox.Failed} {
		if m, _ := s.Message(ctx, "2", id); m.Status != want || (want == outbox.Failed && m.Reason != outbox.ReasonOrgDeleted) {
			t.Fatalf("message %s is %s (%s) after the tombstone, want %s", id, m.Status, m.Reason, want)
		}
	}
	if st, _ := s.JobStatus(ctx, "job"); st != outbox.JobCancelled {
		t.Fatalf("job %s after the tombstone", st)
	}
	if _, _, err := s.InsertMessage(ctx, msg("late", "2", "573075", t0)); !errors.Is(err, outbox.ErrUnknownOrg) {
		t.Fatalf("a message after the tombstone: %v", err)
	}
	if _, _, err := s.InsertBroadcast(ctx, outbox.Broadcast{ID: "late", Org: "2", Text: "x", Total: 1, CreatedAt: t0},
		[]outbox.Message{msg("late", "2", "573075", t0)}); !errors.Is(err, outbox.ErrUnknownOrg) {
		t.Fatalf("a broadcast after the tombstone: %v", err)
	}
	if sent, err := s.MarkSent(ctx, acked, t0.Add(2*time.Second)); err != nil || !sent {
		t.Fatalf("the ack of a message in flight at the delete: %v %v", sent, err)
	}
	if got, err := s.Requeue(ctx, flying, t0.Add(2*time.Second), time.Time{}); err != nil ||
		got.Status != outbox.Failed || got.Reason != outbox.ReasonOrgDeleted {
		t.Fatalf("no answer after the delete: %+v %v", got, err)
	}
	// A crash with a message in flight: the boot fails it too, and
	// whatever an older version left queued for an unregistered org.
	s.db.ExecContext(ctx, `UPDATE messages SET status = 'sending' WHERE id = 'f'`)
	s.db.ExecContext(ctx, `INSERT INTO messages (id, org, recipient, text, wa_id, status, queued_at) VALUES ('old', 'gone', '573076', 't', '3EB0old', 'queued', 1)`)
	n, failed, err := s.RecoverSending(ctx, t0.Add(3*time.Second))
	if err != nil || n != 0 || len(failed) != 2 {
		t.Fatalf("recover: %d %+v %v", n, failed, err)
	}
}

// A job stored before its recipients hash was kept gets it from its
// messages when its key is reused, and keeps it.
func TestOldBroadcastGetsItsRecipientsHash(t *testing.T) {
	s := openOutbox(t)
	b := outbox.Broadcast{ID: "job", Org: "2", Text: "x", Total: 2, CreatedAt: t0, IdempotencyKey: "k"}
	to := []string{"573082", "573081"}
	s.InsertBroadcast(ctx, b, []outbox.Message{msg("m1", "2", to[0], t0), msg("m2", "2", to[1], t0)})
	s.db.ExecContext(ctx, `UPDATE broadcasts SET recipients_hash = '' WHERE id = 'job'`)
	b.ID, b.RecipientsHash = "job2", "new"
	got, created, err := s.InsertBroadcast(ctx, b, nil)
	if err != nil || created || got.ID != "job" || got.RecipientsHash != outbox.RecipientsHash(to) {
		t.Fatalf("reused key on an old job: %+v %v %v", got, created, err)
	}
	var kept string
	s.db.QueryRowContext(ctx, `SELECT recipients_hash FROM broadcasts WHERE id = 'job'`).Scan(&kept)
	if kept != got.RecipientsHash {
		t.Fatalf("hash kept %q", kept)
	}
}
