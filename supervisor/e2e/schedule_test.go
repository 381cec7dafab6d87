package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// During quiet hours a broadcast waits while a single (transactional)
// message goes, and the waiting job is not reported stalled. The window is
// computed around the wall time in the org's zone, so it may cross
// midnight; the status object says when it ends.
func TestQuietHoursHoldBroadcastsWhileSingleMessagesGo(t *testing.T) {
	t.Parallel()
	zone, err := time.LoadLocation("America/Bogota")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(zone)
	end := now.Add(time.Hour).Truncate(time.Minute)
	quiet := fmt.Sprintf("quiet_hours = %q\n[[org]]\nid = \"qh\"\ntimezone = \"America/Bogota\"\n",
		now.Add(-time.Hour).Format("15:04")+"-"+end.Format("15:04"))
	e := newEnv(t, quiet)
	e.link("qh", "573007915340")
	ctx := context.Background()
	job, err := e.api.CreateBroadcast(ctx, "qh", numbers("5730013400", 3), "night offer", "")
	if err != nil {
		t.Fatal(err)
	}
	single, err := e.api.Send(ctx, "qh", "573001340099", "your code is 1234", "")
	if err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "the single message sent", func() error {
		m, err := e.api.Message(ctx, "qh", single.ID)
		if err != nil {
			return err
		}
		if m.Status != "sent" && m.Status != "delivered" && m.Status != "read" {
			return fmt.Errorf("single message is %s", m.Status)
		}
		return nil
	})
	st := e.status("qh")
	if st.Sending.NextWindow == nil || !st.Sending.NextWindow.Equal(end.UTC()) {
		t.Fatalf("sending %+v, want next_window %s (the end of the quiet hours)", st.Sending, end.UTC())
	}
	// stalled_after is 5s: three times that without a broadcast message
	// and without a stall report.
	e.throughout(time.Now().Add(15*time.Second), "a broadcast message went, or the job was reported stalled, during quiet hours", func() bool {
		b, err := e.api.Broadcast(ctx, "qh", job.ID)
		if err != nil {
			t.Fatal(err)
		}
		return b.Sent > 0 || b.Status == "stalled"
	})
	if b, _ := e.api.Broadcast(ctx, "qh", job.ID); b.Sent != 0 || b.Pending != 3 {
		t.Fatalf("broadcast during quiet hours: %+v", b)
	}
	if e.logs.contains("broadcast stalled") {
		t.Fatal("a stall was reported for a broadcast held by quiet hours")
	}
}

// The daily limit holds the rest of the day's messages, across a restart of
// the supervisor: the count is read back from state.db.
func TestDailyLimitHoldsAcrossARestart(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{"daily_limit = 0": "daily_limit = 2\nwarmup_days = 0"}})
	e.link("dl", "573007915341")
	ctx := context.Background()
	for i := range 4 {
		if _, err := e.api.Send(ctx, "dl", fmt.Sprintf("57300134100%d", i), "hello", ""); err != nil {
			t.Fatal(err)
		}
	}
	sent := func() int {
		list, err := e.api.Messages(ctx, "dl", "", 10, "")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range list.Messages {
			if m.SentAt != nil {
				n++
			}
		}
		return n
	}
	e.eventually(30*time.Second, "two messages sent", func() error {
		if n := sent(); n != 2 {
			return fmt.Errorf("%d sent", n)
		}
		return nil
	})
	y, m, d := time.Now().UTC().Date()
	midnight := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	check := func(when string) {
		t.Helper()
		s := e.status("dl").Sending
		// The sends may have straddled midnight: then the day is new.
		if s.NextWindow != nil && s.NextWindow.After(midnight) {
			t.Skip("the wall clock passed midnight UTC during the test")
		}
		if s.LimitToday != 2 || s.SentToday != 2 || s.NextWindow == nil || !s.NextWindow.Equal(midnight) {
			t.Fatalf("%s: sending %+v, want 2 of 2 sent, next window %s", when, s, midnight)
		}
	}
	check("after the sends")
	e.stop()
	e.startSupervisor()
	e.waitStatus("dl", state.Connected, 30*time.Second)
	check("after a restart")
	// min_interval is 200ms: a third send would come within a second.
	e.throughout(time.Now().Add(3*time.Second), "a third message sent on a day whose limit was reached", func() bool { return sent() > 2 })
}
