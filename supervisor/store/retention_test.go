package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/retention"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// pruneAll walks the messages, then the dead letters, the way the
// retention.Pruner does, and counts the batches.
func pruneAll(t *testing.T, s *Store, cutoff time.Time, limit int) (retention.Batch, int) {
	t.Helper()
	var total retention.Batch
	batches := 0
	for _, prune := range []func(after int64) (retention.Batch, error){
		func(after int64) (retention.Batch, error) { return s.PruneMessages(ctx, cutoff, after, limit) },
		func(after int64) (retention.Batch, error) { return s.PruneDeadLetters(ctx, cutoff, after, limit) },
	} {
		var after int64
		for {
			b, err := prune(after)
			if err != nil {
				t.Fatal(err)
			}
			batches++
			total.Messages += b.Messages
			total.Broadcasts += b.Broadcasts
			total.Events += b.Events
			if !b.More {
				break
			}
			if b.Next <= after {
				t.Fatalf("the walk did not move: after %d, next %d", after, b.Next)
			}
			after = b.Next
		}
	}
	return total, batches
}

func column(t *testing.T, s *Store, q string, args ...any) []string {
	t.Helper()
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// eventSeq is the sequence number of the message_status event of message
// id that reports status.
func eventSeq(t *testing.T, s *Store, id, status string) int64 {
	t.Helper()
	var seq int64
	if err := s.db.QueryRowContext(ctx, `SELECT seq FROM webhook_events WHERE kind = 'message_status'
		AND json_extract(data, '$.message_id') = ? AND status = ?`, id, status).Scan(&seq); err != nil {
		t.Fatalf("event %s of %s: %v", status, id, err)
	}
	return seq
}

// Pruning deletes exactly the final messages whose last change is older
// than the cutoff, their dead letters, the finished jobs whose last message
// went and the dead letters that died before the cutoff; it leaves pending
// messages whatever their age, newer ones, events still waiting for
// delivery, and the counts of a job it pruned in part.
func TestPruneDeletesOnlyWhatOutlivedRetention(t *testing.T) {
	s := openOutbox(t)
	s.EnableEvents(false, nil)
	o := clocktest.Origin()
	const ret = 720 * time.Hour
	now := o.Add(ret + 2*time.Hour)
	cutoff := retention.Cutoff(now, ret) // o + 2h
	old, late := o.Add(time.Minute), o.Add(3*time.Hour)

	sent := func(m outbox.Message, at time.Time) {
		t.Helper()
		mustSending(t, s, m.ID, at)
		if ok, err := s.MarkSent(ctx, m, at); err != nil || !ok {
			t.Fatalf("sent %s: %v %v", m.ID, ok, err)
		}
	}
	insert := func(id string, at time.Time) outbox.Message {
		t.Helper()
		m := msg(id, "2", "5730"+id, at)
		if _, _, err := s.InsertMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	job := func(id string, n int) []outbox.Message {
		t.Helper()
		var msgs []outbox.Message
		for i := range n {
			m := msg(fmt.Sprintf("%s-%d", id, i), "2", fmt.Sprintf("5731%s%d", id, i), o)
			m.Broadcast = id
			msgs = append(msgs, m)
		}
		if _, _, err := s.InsertBroadcast(ctx, outbox.Broadcast{ID: id, Org: "2", Text: "x", Total: n, CreatedAt: o}, msgs); err != nil {
			t.Fatal(err)
		}
		return msgs
	}

	sent(insert("old-sent", o), old)
	oldFailed := insert("old-failed", o)
	if _, _, err := s.Fail(ctx, oldFailed, "server_error_479", old); err != nil {
		t.Fatal(err)
	}
	oldRead := insert("old-read", o)
	sent(oldRead, old)
	s.Receipt(ctx, "2", []string{oldRead.WAID}, outbox.Read, o.Add(time.Hour), o.Add(time.Hour))
	readLate := insert("read-late", o)
	sent(readLate, old)
	s.Receipt(ctx, "2", []string{readLate.WAID}, outbox.Read, late, late)
	insert("old-queued", o)
	mustSending(t, s, insert("old-sending", o).ID, old)

	done := job("done", 2)
	sent(done[0], old)
	sent(done[1], old)
	half := job("half", 2)
	sent(half[0], old)
	sent(half[1], late)
	open := job("open", 2)
	sent(open[0], old)

	sent(insert("new-sent", late), late)

	// Dead letters: the old failure's event died recently, but its message
	// goes, and so does it; the old send's event still waits for delivery
	// and stays. Of two other events, the one dead before the cutoff goes.
	s.EventDead(ctx, eventSeq(t, s, "old-failed", "failed"), 3, late, "HTTP 500")
	waiting := eventSeq(t, s, "old-sent", "sent")
	s.AddEvents(ctx, webhook.NewEvent(webhook.StatusChanged, "2", "connected", "", old, nil),
		webhook.NewEvent(webhook.StatusChanged, "2", "disconnected", "", late, nil))
	other := column(t, s, `SELECT seq FROM webhook_events WHERE kind = 'status_changed' ORDER BY seq`)
	deadOld, deadNew := other[0], other[1]
	s.db.ExecContext(ctx, `UPDATE webhook_events SET dead_at = ? WHERE seq = ?`, millis(old), deadOld)
	s.db.ExecContext(ctx, `UPDATE webhook_events SET dead_at = ? WHERE seq = ?`, millis(late), deadNew)
	// emit stamps created_at from the wall clock; these events were
	// committed at o on this test's clock.
	s.db.ExecContext(ctx, `UPDATE webhook_events SET created_at = ?`, millis(o))
	events := len(column(t, s, `SELECT seq FROM webhook_events`))

	got, batches := pruneAll(t, s, cutoff, 3)
	if batches < 4 {
		t.Errorf("%d batches of 3 for 13 messages and their events: not batched", batches)
	}
	wantLeft := []string{"read-late", "old-queued", "old-sending", "half-1", "open-1", "new-sent"}
	if left := column(t, s, `SELECT id FROM messages ORDER BY seq`); !slices.Equal(left, wantLeft) {
		t.Errorf("messages left %v, want %v", left, wantLeft)
	}
	if jobs := column(t, s, `SELECT id FROM broadcasts ORDER BY seq`); !slices.Equal(jobs, []string{"half", "open"}) {
		t.Errorf("jobs left %v: only the done one whose messages all went is deleted", jobs)
	}
	b, err := s.Broadcast(ctx, "2", "half")
	if err != nil || b.Counts != (outbox.Counts{Sent: 2}) {
		t.Errorf("a job pruned in part lost its counts: %+v %v", b.Counts, err)
	}
	if ev := column(t, s, `SELECT seq FROM webhook_events WHERE seq IN (?, ?, ?)`, waiting, deadOld, deadNew); !slices.Equal(ev, []string{fmt.Sprint(waiting), deadNew}) {
		t.Errorf("of the waiting event %d, the old dead letter %s and the new one %s, left: %v", waiting, deadOld, deadNew, ev)
	}
	if dead := column(t, s, `SELECT seq FROM webhook_events WHERE dead_at > 0 AND json_extract(data, '$.message_id') = 'old-failed'`); len(dead) != 0 {
		t.Errorf("the dead letter of a pruned message stayed: %v", dead)
	}
	left := len(column(t, s, `SELECT seq FROM webhook_events`))
	if want := (retention.Batch{Messages: 7, Broadcasts: 1, Events: 2}); got != want || events-left != 2 {
		t.Errorf("pruned %+v, want %+v; %d events before, %d after", got, want, events, left)
	}
	again, _ := pruneAll(t, s, cutoff, 3)
	if again != (retention.Batch{}) {
		t.Errorf("a second prune found more: %+v", again)
	}
}

// The walk reads a bounded batch whatever the table holds, and stops at
// the first batch queued entirely after the cutoff instead of reading the
// rest of the table.
func TestPruneStopsAtNewMessages(t *testing.T) {
	s := openOutbox(t)
	o := clocktest.Origin()
	for i := range 10 {
		s.InsertMessage(ctx, msg(fmt.Sprint("m", i), "2", fmt.Sprint("5730", i), o.Add(time.Duration(i)*time.Hour)))
	}
	b, err := s.PruneMessages(ctx, o.Add(90*time.Minute), 0, 3)
	if err != nil || !b.More || b.Next != 3 {
		t.Fatalf("first batch (two queued before the cutoff): %+v %v", b, err)
	}
	b, err = s.PruneMessages(ctx, o.Add(90*time.Minute), b.Next, 3)
	if err != nil || b.More || b.Next != 6 {
		t.Fatalf("a batch queued after the cutoff must end the walk: %+v %v", b, err)
	}
}
