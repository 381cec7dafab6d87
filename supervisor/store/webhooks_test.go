package store

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
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
	s.Receipt(ctx, "2", []string{single.WAID}, outbox.Read, t0, t0)
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

// A dispatcher round reads every organization's head in one statement,
// however many organizations have events waiting: with one query per
// organization, 1,000 organizations meant 1,000 statements a round on the
// connection every commit needs.
func TestEventHeadsIsOneQuery(t *testing.T) {
	s := openCounting(t)
	s.EnableEvents(false, nil)
	var evs []webhook.Event
	for i := range 30 {
		org := fmt.Sprintf("org%02d", i)
		for range 3 {
			evs = append(evs, webhook.NewEvent(webhook.StatusChanged, org, "connected", "", t0, nil))
		}
	}
	if err := s.AddEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	before := statements.Load()
	heads, err := s.EventHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := statements.Load() - before; n != 1 {
		t.Fatalf("reading 30 organizations' heads took %d statements, want 1", n)
	}
	if len(heads) != 30 {
		t.Fatalf("%d heads, want 30", len(heads))
	}
	for i, h := range heads {
		if h.ID != evs[3*i].ID {
			t.Fatalf("head %d is %s of %s, want the organization's first event %s", i, h.ID, h.Org, evs[3*i].ID)
		}
	}
}

// The queue's counts are kept as events come, die, are retried and go,
// by triggers in the transactions that change the queue.
func TestEventCountsAreKept(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	s.EnableEvents(false, nil)
	counts := func(wantWaiting, wantDead int) {
		t.Helper()
		waiting, dead, err := s.EventCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if waiting != wantWaiting || dead != wantDead {
			t.Fatalf("counts waiting %d dead %d, want %d and %d", waiting, dead, wantWaiting, wantDead)
		}
	}
	counts(0, 0)
	evs := []webhook.Event{
		webhook.NewEvent(webhook.StatusChanged, "a", "connected", "", t0, nil),
		webhook.NewEvent(webhook.StatusChanged, "a", "connected", "", t0, nil),
		webhook.NewEvent(webhook.StatusChanged, "b", "connected", "", t0, nil),
	}
	s.AddEvents(ctx, evs...)
	counts(3, 0)
	heads, _ := s.EventHeads(ctx)
	s.EventFailed(ctx, heads[0].Seq, 1, t0.Add(time.Second), "HTTP 500")
	counts(3, 0)
	s.EventDead(ctx, heads[0].Seq, 2, t0, "HTTP 500")
	counts(2, 1)
	if _, err := s.RetryDeadEvent(ctx, evs[0].ID, t0); err != nil {
		t.Fatal(err)
	}
	counts(3, 0)
	s.EventDelivered(ctx, heads[0].Seq)
	s.EventDelivered(ctx, heads[1].Seq)
	counts(1, 0)

}

// A receipt's event is stamped with the time the supervisor recorded it,
// to the millisecond, and carries WhatsApp's time (whole seconds from the
// recipient's phone) in data.wa_timestamp: a receiver sorting by timestamp
// sees sent, delivered, read in that order, not delivered first.
func TestReceiptEventsAreStampedWhenRecorded(t *testing.T) {
	s := openOutbox(t)
	s.EnableEvents(false, nil)
	origin := clocktest.Origin().Truncate(time.Second)
	sentAt := origin.Add(400 * time.Millisecond)
	m := msg("s1", "2", "573041", origin)
	s.InsertMessage(ctx, m)
	mustSending(t, s, "s1", origin)
	if _, err := s.MarkSent(ctx, m, sentAt); err != nil {
		t.Fatal(err)
	}
	// WhatsApp says the phone got it in the same second, 0.4 s "before"
	// the ack was recorded; the supervisor hears it 250 ms after the ack.
	deliveredWA, deliveredAt := origin, sentAt.Add(250*time.Millisecond)
	readWA, readAt := origin.Add(time.Second), origin.Add(1789*time.Millisecond)
	if _, err := s.Receipt(ctx, "2", []string{m.WAID}, outbox.Delivered, deliveredWA, deliveredAt); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Receipt(ctx, "2", []string{m.WAID}, outbox.Read, readWA, readAt); err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM webhook_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		t.Fatal(err)
	}
	type body struct {
		Status    string
		Timestamp string
		Data      map[string]string
	}
	var got []body
	for _, e := range evs {
		var b body
		if err := json.Unmarshal(e.Body(), &b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	want := []body{
		{Status: "sent", Timestamp: stamp(sentAt)},
		{Status: "delivered", Timestamp: stamp(deliveredAt), Data: map[string]string{"wa_timestamp": stamp(deliveredWA)}},
		{Status: "read", Timestamp: stamp(readAt), Data: map[string]string{"wa_timestamp": stamp(readWA)}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Status != w.Status || g.Timestamp != w.Timestamp || g.Data["wa_timestamp"] != w.Data["wa_timestamp"] {
			t.Fatalf("event %d: status %s timestamp %s wa_timestamp %q; want %s %s %q",
				i, g.Status, g.Timestamp, g.Data["wa_timestamp"], w.Status, w.Timestamp, w.Data["wa_timestamp"])
		}
		if i > 0 && g.Timestamp < got[i-1].Timestamp {
			t.Fatalf("a receiver sorting by timestamp puts %s before %s", g.Status, got[i-1].Status)
		}
	}
}
