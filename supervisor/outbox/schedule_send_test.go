package outbox_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

// testZone has DST changes, so a run across one of them tests the 23- and
// 25-hour days too.
var testZone = func() *time.Location {
	z, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return z
}()

func localDay(t time.Time) string { return t.In(testZone).Format("2006-01-02") }

// nextLocalMorning is 01:00 of the local day after t.
func nextLocalMorning(t time.Time) time.Time {
	y, m, d := t.In(testZone).Date()
	return time.Date(y, m, d+1, 1, 0, 0, 0, testZone)
}

func scheduleMessages() (cfgLimit, days, first int) { return 5, 3, 2 }

// The daily limit and the warm-up hold: day 1 of a newly linked number
// sends warmup_first_day, day 2 more, day warmup_days daily_limit, and
// the rest goes the next local day. A message queued while the limit holds
// wakes the sender without bypassing it. Sampled at every step: never more
// than the day's limit sent in one local day.
func TestDailyLimitAndWarmupHoldTheRestForTheNextDay(t *testing.T) {
	cfg := testMessages()
	cfg.DailyLimit, cfg.WarmupDays, cfg.WarmupFirstDay = scheduleMessages()
	h := newHarness(t, cfg, "")
	h.clk.Advance(nextLocalMorning(h.clk.Now()).Sub(h.clk.Now()))
	linked := localDay(h.clk.Now())
	for i := range 12 {
		h.send("2", fmt.Sprintf("5730000001%02d", i), "hello")
	}
	h.connect("2", true)
	// day limits: 2, 2+3*1/2 = 3, then 5
	limits := []int{2, 3, 5, 5, 5}
	check := func() {
		t.Helper()
		h.w.mu.Lock()
		perDay := map[string]int{}
		for _, at := range h.w.at {
			perDay[localDay(at)]++
		}
		h.w.mu.Unlock()
		for d, n := range perDay {
			day := dayIndex(linked, d)
			if n > limits[min(day, len(limits)-1)] {
				t.Fatalf("%d sent on local day %s (day %d of the warm-up), limit %d", n, d, day+1, limits[day])
			}
		}
	}
	sentAfter := func(d time.Duration) int {
		t.Helper()
		end := h.clk.Now().Add(d)
		for h.clk.Now().Before(end) {
			h.clk.Advance(time.Minute)
			time.Sleep(200 * time.Microsecond)
			check()
		}
		return len(h.w.sent())
	}
	h.until("the first day's two sent", func() bool { check(); return statusOf(h).SentToday == 2 })
	if got := h.o.Counts("2"); got.Queued != 10 {
		t.Fatalf("counts %+v", got)
	}
	st := statusOf(h)
	if st.LimitToday != 2 || st.SentToday != 2 || st.NextWindow == nil || !st.NextWindow.Equal(nextLocalMorning(h.clk.Now()).Add(-time.Hour)) {
		t.Fatalf("sending %+v, want limit 2, sent 2, next window the next local midnight", st)
	}
	h.send("2", "573000000199", "wakes the sender")
	if n := sentAfter(20 * time.Hour); n != 2 {
		t.Fatalf("%d sent on the first day, limit 2", n)
	}
	h.clk.Advance(nextLocalMorning(h.clk.Now()).Sub(h.clk.Now()))
	h.until("the second day's three sent", func() bool { check(); return len(h.w.sent()) == 5 })
	if n := sentAfter(20 * time.Hour); n != 5 {
		t.Fatalf("%d sent by the second day, limits 2+3", n)
	}
	h.clk.Advance(nextLocalMorning(h.clk.Now()).Sub(h.clk.Now()))
	h.until("the third day's five sent", func() bool { check(); return len(h.w.sent()) == 10 })
	if n := sentAfter(20 * time.Hour); n != 10 {
		t.Fatalf("%d sent by the third day, limits 2+3+5", n)
	}
	h.clk.Advance(nextLocalMorning(h.clk.Now()).Sub(h.clk.Now()))
	h.until("the rest sent on the fourth day", func() bool { check(); return len(h.w.sent()) == 13 })
}

func statusOf(h *harness) state.Sending {
	snap := state.Snapshot{OrganizationID: "2"}
	h.o.Decorate(&snap)
	return snap.Sending
}

// dayIndex counts the calendar days from one local date to another.
func dayIndex(from, to string) int {
	a, _ := time.Parse("2006-01-02", from)
	b, _ := time.Parse("2006-01-02", to)
	return int(b.Sub(a) / (24 * time.Hour))
}

// The day's count survives a restart, from state.db, and a relink of the
// same number keeps its warm-up day.
func TestDailyCountSurvivesARestart(t *testing.T) {
	cfg := testMessages()
	cfg.DailyLimit, cfg.WarmupDays, cfg.WarmupFirstDay = scheduleMessages()
	path := filepath.Join(t.TempDir(), "state.db")
	h := newHarness(t, cfg, path)
	h.clk.Advance(nextLocalMorning(h.clk.Now()).Sub(h.clk.Now()))
	for i := range 4 {
		h.send("2", fmt.Sprintf("5730000002%02d", i), "hello")
	}
	h.connect("2", true)
	h.until("the first day's two sent", func() bool { return statusOf(h).SentToday == 2 })
	at := h.clk.Now()
	h.o.Stop()

	h2 := newHarnessFrom(t, cfg, path, func(st *store.Store) outbox.Store { return st }, at)
	if st := statusOf(h2); st.SentToday != 2 || st.LimitToday != 2 {
		t.Fatalf("after the restart: %+v, want 2 of 2 sent today", st)
	}
	h2.connect("2", true)
	for range 600 {
		h2.clk.Advance(time.Minute)
		time.Sleep(200 * time.Microsecond)
		if n := len(h2.w.sent()); n > 0 {
			t.Fatalf("%d sent after the restart on a day whose limit was reached", n)
		}
	}
	h2.clk.Advance(nextLocalMorning(h2.clk.Now()).Sub(h2.clk.Now()))
	h2.until("the rest sent the next day", func() bool { return len(h2.w.sent()) == 2 })
	if st := statusOf(h2); st.LimitToday != 3 {
		t.Fatalf("the second day after the relink: %+v, want the warm-up's day 2 limit 3", st)
	}
}

// During quiet hours a broadcast waits and a single message goes; the job
// that was sending when they began gives its turn up and is not reported
// stalled, however long they last, and it goes on when they end.
func TestQuietHoursHoldBroadcastsNotSingleMessages(t *testing.T) {
	cfg := testMessages()
	start := clocktest.Origin().In(testZone).Truncate(time.Minute).Add(10 * time.Minute)
	end := start.Add(3 * time.Hour)
	cfg.QuietHours = start.Format("15:04") + "-" + end.Format("15:04")
	h := newHarness(t, cfg, "")
	recipients := make([]string, 400)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("573000003%03d", i)
	}
	b, _, err := h.o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: recipients, Text: "offer"})
	if err != nil {
		t.Fatal(err)
	}
	h.connect("2", true)
	h.until("the broadcast sending", func() bool { return len(h.w.sent()) > 0 })
	h.clk.Advance(start.Sub(h.clk.Now()))
	h.until("quiet hours", func() bool { return statusOf(h).NextWindow != nil })
	// A broadcast message taken before the quiet hours began may still be
	// on its way; count from when the sender sleeps again.
	h.parked()
	before := len(h.w.sent())
	if before >= len(recipients) {
		t.Fatalf("the broadcast finished before the quiet hours: raise its size")
	}
	single := h.send("2", "573000000999", "your code is 1234")
	h.until("the single message sent", func() bool { return h.status("2", single.ID).Status == outbox.Sent })
	if st := statusOf(h); st.NextWindow == nil || !st.NextWindow.Equal(end) {
		t.Fatalf("sending %+v, want the next window at the end of the quiet hours %s", st, end)
	}
	jobStatus := func() outbox.JobStatus {
		t.Helper()
		job, err := h.o.Broadcast(bg, "2", b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return job.Status
	}
	h.until("the held job giving its turn up", func() bool {
		h.connect("2", true) // plans the jobs again
		return jobStatus() == outbox.JobQueued
	})
	for h.clk.Now().Before(end.Add(-time.Minute)) {
		h.clk.Advance(time.Minute)
		h.connect("2", true)
		time.Sleep(200 * time.Microsecond)
		if n := len(h.w.sent()); n > before+1 {
			t.Fatalf("%d broadcast messages sent during quiet hours", n-before-1)
		}
		if st := jobStatus(); st != outbox.JobQueued {
			t.Fatalf("the broadcast is %s at %s while quiet hours hold it, want queued (its turn given up)", st, h.clk.Now())
		}
	}
	h.until("the broadcast going on after the quiet hours", func() bool {
		h.connect("2", true)
		return len(h.w.sent()) > before+3
	})
}
