package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

func msg(id, org, to string, at time.Time) outbox.Message {
	return outbox.Message{ID: id, Org: org, To: to, Text: "t " + id, WAID: "3EB0" + id, QueuedAt: at}
}

func mustSending(t *testing.T, s *Store, id string, at time.Time) {
	t.Helper()
	if ok, err := s.MarkSending(ctx, id, at); err != nil || !ok {
		t.Fatalf("mark %s sending: %v %v", id, ok, err)
	}
}

func TestIdempotentInsert(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
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
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	b := outbox.Broadcast{ID: "job", Org: "2", Text: "hi", Total: 2, CreatedAt: t0}
	if _, _, err := s.InsertBroadcast(ctx, b, []outbox.Message{msg("j1", "2", "573011", t0), msg("j2", "2", "573012", t0)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s1", "s2"} {
		s.InsertMessage(ctx, msg(id, "2", "5730"+id, t0))
	}
	next := func(jobs []string, restricted bool) string {
		t.Helper()
		m, ok, err := s.NextMessage(ctx, "2", jobs, restricted)
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
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	m := msg("a", "2", "573001", t0)
	s.InsertMessage(ctx, m)
	mustSending(t, s, "a", t0)
	// The receipt overtakes the ack.
	changed, err := s.Receipt(ctx, "2", []string{"3EB0a"}, outbox.Delivered, t0.Add(time.Second))
	if err != nil || len(changed) != 1 {
		t.Fatalf("receipt: %v %v", changed, err)
	}
	if err := s.Requeue(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	s.MarkSent(ctx, m, t0.Add(500*time.Millisecond))
	got, _ := s.Message(ctx, "2", "a")
	if got.Status != outbox.Delivered || !got.SentAt.Equal(t0.Add(500*time.Millisecond)) {
		t.Fatalf("after a receipt and a late ack: %+v", got)
	}
	s.Receipt(ctx, "2", []string{"3EB0a"}, outbox.Read, t0.Add(2*time.Second))
	if changed, _ := s.Receipt(ctx, "2", []string{"3EB0a"}, outbox.Delivered, t0.Add(3*time.Second)); len(changed) != 0 {
		t.Fatal("a delivery receipt moved a read message back")
	}
	if changed, _ := s.Receipt(ctx, "other", []string{"3EB0a"}, outbox.Read, t0); len(changed) != 0 {
		t.Fatal("another organization's receipt matched")
	}
}

func TestExpireRecoverAndCounts(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
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
	if n, err := s.RecoverSending(ctx); err != nil || n != 1 {
		t.Fatalf("recovered %d %v", n, err)
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
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
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
	if ok, err := s.MarkSending(ctx, "m3", t0); ok || err != nil {
		t.Fatalf("a cancelled message was marked sending: %v %v", ok, err)
	}
	if n, _ := s.JobPending(ctx, "job"); n != 1 {
		t.Fatalf("%d pending: the message being sent finishes", n)
	}
	if open, _ := s.OpenJobs(ctx); len(open) != 0 {
		t.Fatalf("open jobs %+v", open)
	}
	if _, _, err := s.CancelBroadcast(ctx, "other", "job", t0); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("cancel of another org's job: %v", err)
	}
}
