package store

import (
	"slices"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

func kinds(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.db.QueryContext(ctx, `SELECT kind, status, reason FROM webhook_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k, st, r string
		rows.Scan(&k, &st, &r)
		out = append(out, k+":"+st+":"+r)
	}
	return out
}

// Each outcome commits its webhook event in its own transaction; a job's
// last message brings broadcast_done with it; the dispatcher is told after
// the commit.
func TestOutcomesCommitTheirEvents(t *testing.T) {
	s := openOutbox(t)
	notified := 0
	s.EnableEvents(false, func() { notified++ })
	single := msg("s1", "2", "573041", t0)
	s.InsertMessage(ctx, single)
	mustSending(t, s, "s1", t0)
	s.MarkSent(ctx, single, t0)
	s.Receipt(ctx, "2", []string{single.WAID}, outbox.Read, t0)
	job := msg("j1", "2", "573042", t0)
	job.Broadcast = "job"
	s.InsertBroadcast(ctx, outbox.Broadcast{ID: "job", Org: "2", Text: "x", Total: 1, CreatedAt: t0}, []outbox.Message{job})
	s.Fail(ctx, job, "server_error_479", t0)
	s.Restrict(ctx, "2", t0.Add(time.Hour), t0)
	s.AddEvents(ctx, webhook.NewEvent(webhook.MessageReceived, "2", "", "", t0, nil))
	want := []string{
		"message_status:sent:", "message_status:read:", "message_status:failed:server_error_479",
		"broadcast_done:done:", "send_restricted:restricted:463",
	}
	if got := kinds(t, s); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v (message_received is off)", got, want)
	}
	if notified != 4 {
		t.Fatalf("the dispatcher was told %d times for 4 commits with events", notified)
	}
}

// Without webhooks no event is kept: nothing would ever take it out.
func TestNoEventsWhenOff(t *testing.T) {
	s := openOutbox(t)
	m := msg("s1", "2", "573041", t0)
	s.InsertMessage(ctx, m)
	s.Fail(ctx, m, "expired", t0)
	s.AddEvents(ctx, webhook.NewEvent(webhook.StatusChanged, "2", "connected", "", t0, nil))
	if got := kinds(t, s); len(got) != 0 {
		t.Fatalf("events kept with webhooks off: %v", got)
	}
}

// broadcast_progress goes out at most once per 10 s per job.
func TestProgressEventsAreSpaced(t *testing.T) {
	s := openOutbox(t)
	s.EnableEvents(false, nil)
	var msgs []outbox.Message
	for i := range 4 {
		m := msg(string(rune('a'+i)), "2", "57304"+string(rune('0'+i)), t0)
		m.Broadcast = "job"
		msgs = append(msgs, m)
	}
	s.InsertBroadcast(ctx, outbox.Broadcast{ID: "job", Org: "2", Text: "x", Total: 4, CreatedAt: t0}, msgs)
	for i, at := range []time.Duration{0, 3 * time.Second, 11 * time.Second} {
		mustSending(t, s, msgs[i].ID, t0)
		s.MarkSent(ctx, msgs[i], t0.Add(at))
	}
	want := []string{"message_status:sent:", "broadcast_progress:queued:", "message_status:sent:", "message_status:sent:", "broadcast_progress:queued:"}
	if got := kinds(t, s); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// Deleting an organization cancels its open jobs: each tells the webhook.
func TestDeleteCancelsJobsWithTheirEvents(t *testing.T) {
	s := openOutbox(t)
	s.EnableEvents(false, nil)
	m := msg("j1", "2", "573042", t0)
	m.Broadcast = "job"
	s.InsertBroadcast(ctx, outbox.Broadcast{ID: "job", Org: "2", Text: "x", Total: 1, CreatedAt: t0}, []outbox.Message{m})
	if err := s.SaveOrg(ctx, lifecycle.Record{ID: "2", Status: state.Stopped, Deleted: true}, nil, t0); err != nil {
		t.Fatal(err)
	}
	want := []string{"message_status:failed:org_deleted", "broadcast_done:cancelled:"}
	if got := kinds(t, s); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// Each organization's head is its oldest live event; a dead letter does
// not hold the organization's later events back.
func TestEventHeads(t *testing.T) {
	s := openOutbox(t)
	s.EnableEvents(false, nil)
	var evs []webhook.Event
	for _, org := range []string{"b", "a", "c", "a", "b"} {
		evs = append(evs, webhook.NewEvent(webhook.StatusChanged, org, "connected", "", t0, nil))
	}
	s.AddEvents(ctx, evs...)
	heads, _ := s.EventHeads(ctx)
	if len(heads) != 3 || heads[0].ID != evs[1].ID || heads[1].ID != evs[0].ID || heads[2].ID != evs[2].ID {
		t.Fatalf("heads %+v", heads)
	}
	if heads[0].Created.IsZero() {
		t.Fatal("no commit time on the event")
	}
	s.EventDead(ctx, heads[1].Seq, 1, t0, "HTTP 500")
	heads, _ = s.EventHeads(ctx)
	if len(heads) != 3 || heads[1].ID != evs[4].ID {
		t.Fatalf("after org b's head died: %+v", heads)
	}
}
