package outbox

import (
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
)

func TestNumberDecision(t *testing.T) {
	now := clocktest.Origin()
	ttl := 168 * time.Hour
	on := NumberCheck{Phone: "573001234567", OnWhatsApp: true, CheckedAt: now.Add(-time.Hour)}
	off := NumberCheck{Phone: "573001234567", CheckedAt: now.Add(-time.Hour)}
	stale := on
	stale.CheckedAt = now.Add(-ttl)
	future := off
	future.CheckedAt = now.Add(time.Minute)
	for _, tc := range []struct {
		name     string
		attempts int
		c        NumberCheck
		found    bool
		want     numberStep
	}{
		{"never checked", 0, NumberCheck{}, false, numberAsk},
		{"fresh, on WhatsApp", 0, on, true, numberSend},
		{"fresh, not on WhatsApp", 0, off, true, numberFail},
		{"checked exactly ttl ago", 0, stale, true, numberAsk},
		{"checked after now (clock stepped back)", 0, future, true, numberAsk},
		{"attempted before: not checked again", 1, NumberCheck{}, false, numberSend},
		{"attempted before, even if known off", 2, off, true, numberSend},
	} {
		if got := numberDecision(tc.attempts, tc.c, tc.found, now, ttl); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if !Fresh(on, now, ttl) || Fresh(stale, now, ttl) || Fresh(NumberCheck{}, now, ttl) {
		t.Error("Fresh disagrees with numberDecision")
	}
}

func TestAnsweredNeedsAnAnswerForEveryPhone(t *testing.T) {
	at := clocktest.Origin()
	got, err := answered([]string{"2", "1"}, []*pb.NumberCheck{
		{Phone: "1", OnWhatsapp: true, Jid: "1@s.whatsapp.net"}, {Phone: "2", Jid: "ignored"}, {Phone: "3", OnWhatsapp: true},
	}, at)
	if err != nil || len(got) != 2 || got[0].Phone != "2" || got[0].OnWhatsApp || got[0].JID != "" ||
		got[1].JID != "1@s.whatsapp.net" || !got[1].CheckedAt.Equal(at) {
		t.Fatalf("answered = %+v, %v", got, err)
	}
	if _, err := answered([]string{"1", "2"}, []*pb.NumberCheck{{Phone: "1"}}, at); err == nil {
		t.Fatal("a phone without an answer was taken as answered")
	}
}
