package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// Answers replace older ones for the same number, and a job's unchecked
// recipients are those without an answer after freshSince whose message
// was never attempted, in sending order.
func TestNumberChecks(t *testing.T) {
	s := openOutbox(t)
	o := clocktest.Origin()
	var msgs []outbox.Message
	for i := range 6 {
		m := msg(fmt.Sprint("j-", i), "2", fmt.Sprintf("57300000%04d", i), o)
		m.Broadcast = "job"
		msgs = append(msgs, m)
	}
	if _, _, err := s.InsertBroadcast(ctx, outbox.Broadcast{ID: "job", Org: "2", Text: "x", Total: len(msgs), CreatedAt: o}, msgs); err != nil {
		t.Fatal(err)
	}
	// 0 answered long ago, 1 recently, 2 answered then answered again
	// recently, 3 attempted once: only 0, 4 and 5 are unchecked.
	old, recent := o.Add(-200*time.Hour), o.Add(-time.Hour)
	if err := s.SaveNumberChecks(ctx, []outbox.NumberCheck{
		{Phone: msgs[0].To, OnWhatsApp: true, CheckedAt: old},
		{Phone: msgs[1].To, OnWhatsApp: false, CheckedAt: recent},
		{Phone: msgs[2].To, OnWhatsApp: true, CheckedAt: old},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveNumberChecks(ctx, []outbox.NumberCheck{{Phone: msgs[2].To, OnWhatsApp: false, CheckedAt: recent}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkSending(ctx, msgs[3], o); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Requeue(ctx, msgs[3], o, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UncheckedRecipients(ctx, "job", o.Add(-168*time.Hour), 10)
	if err != nil || !slices.Equal(got, []string{msgs[0].To, msgs[4].To, msgs[5].To}) {
		t.Fatalf("unchecked %v %v", got, err)
	}
	if got, _ := s.UncheckedRecipients(ctx, "job", o.Add(-168*time.Hour), 2); len(got) != 2 {
		t.Fatalf("limit 2: %v", got)
	}
	cached, err := s.NumberChecks(ctx, []string{msgs[0].To, msgs[2].To, "573999999999"})
	if err != nil || len(cached) != 2 || cached[msgs[2].To].OnWhatsApp || !cached[msgs[2].To].CheckedAt.Equal(recent) ||
		!cached[msgs[0].To].OnWhatsApp || cached[msgs[0].To].Phone != msgs[0].To {
		t.Fatalf("cached %+v %v", cached, err)
	}
}
