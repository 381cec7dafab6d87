package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
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
	job, err := e.api.CreateBroadcast(ctx, "qh", numbers("57300134000", 3), "night offer", "")
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
