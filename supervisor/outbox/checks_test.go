package outbox_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

func (w *worker) checked() [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.checks)
}

func (w *worker) markOff(phones ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.off == nil {
		w.off = map[string]bool{}
	}
	for _, p := range phones {
		w.off[p] = true
	}
}

// A message to a number not on WhatsApp fails at once without a send; the
// next message goes without waiting for it, and a second message to the
// same number is failed from the cache, without another check.
func TestNotOnWhatsAppFailsWithoutASend(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.w.markOff("573000000501")
	h.connect("2", true)
	bad := h.send("2", "573000000501", "nobody")
	good := h.send("2", "573000000502", "someone")
	h.until("the good one sent", func() bool { return h.status("2", good.ID).Status == outbox.Sent })
	m := h.status("2", bad.ID)
	if m.Status != outbox.Failed || m.Reason != outbox.ReasonNotOnWhatsApp || m.Attempts != 0 {
		t.Fatalf("message to a number not on WhatsApp: %+v", m)
	}
	again := h.send("2", "573000000501", "nobody again")
	h.until("the second one failed", func() bool { return h.status("2", again.ID).Status == outbox.Failed })
	for _, c := range h.w.sent() {
		if c.To == "573000000501" {
			t.Fatalf("a send to a number not on WhatsApp: %v", c)
		}
	}
	if got := h.w.checked(); !slices.EqualFunc(got, [][]string{{"573000000501"}, {"573000000502"}}, slices.Equal) {
		t.Fatalf("checks %v: each number once, the cached one not again", got)
	}
	// The metric is counted after the failure's commit, which the status
	// above already shows.
	h.until("both failures counted", func() bool { return h.m.failedOf(outbox.ReasonNotOnWhatsApp) == 2 })
}

// A broadcast checks its unknown recipients in one batch before its first
// send; the ones not on WhatsApp fail without a send and cost no pacing.
func TestBroadcastChecksItsRecipientsFirst(t *testing.T) {
	// The bucket alone paces, one send every 2s: a turn taken is a token
	// spent, whether or not a send follows.
	cfg := testMessages()
	cfg.MinInterval.Duration, cfg.PerMinute = 0, 30
	turn := time.Minute / 30
	h := newHarness(t, cfg, "")
	var recipients, off []string
	for i := range 20 {
		p := fmt.Sprintf("5730000006%02d", i)
		recipients = append(recipients, p)
		if i%4 == 1 {
			off = append(off, p)
		}
	}
	h.w.markOff(off...)
	// One recipient was checked before: it is not asked again.
	if err := h.st.SaveNumberChecks(bg, []outbox.NumberCheck{{Phone: recipients[19], OnWhatsApp: true, CheckedAt: h.clk.Now()}}); err != nil {
		t.Fatal(err)
	}
	h.connect("2", true)
	b, _, err := h.o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: recipients, Text: "offers"})
	if err != nil {
		t.Fatal(err)
	}
	// Fine steps: the gaps between sends below are read off the fake clock.
	deadline := time.Now().Add(20 * time.Second)
	for got, _ := h.o.Broadcast(bg, "2", b.ID); got.Status != outbox.JobDone; got, _ = h.o.Broadcast(bg, "2", b.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("the job never finished: %+v", got)
		}
		h.clk.Advance(20 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	got, _ := h.o.Broadcast(bg, "2", b.ID)
	if got.Counts.Sent != 15 || got.Counts.Failed != 5 {
		t.Fatalf("counts %+v", got.Counts)
	}
	if checks := h.w.checked(); len(checks) != 1 || !slices.Equal(checks[0], recipients[:19]) {
		t.Fatalf("checks %v, want one batch of the 19 unchecked recipients", checks)
	}
	sent := h.w.sent()
	h.w.mu.Lock()
	at := slices.Clone(h.w.at)
	h.w.mu.Unlock()
	if len(sent) != 15 {
		t.Fatalf("%d sends, want 15", len(sent))
	}
	for _, c := range sent {
		if slices.Contains(off, c.To) {
			t.Fatalf("a send to a number not on WhatsApp: %s", c.To)
		}
	}
	// Sends go one turn apart (plus the test's steps of the fake clock): a
	// failure that took a turn would leave a gap of two.
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap >= turn*5/4 {
			t.Fatalf("%s between sends %d and %d; a failure held sending back", gap, i-1, i)
		}
	}
}

// A check without an answer is retried like a send without one: the
// message waits, no number is marked, and it goes once WhatsApp answers.
func TestCheckWithoutAnswerRetries(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.w.mu.Lock()
	h.w.checkErr = errors.New("rpc error: code = Unavailable")
	h.w.mu.Unlock()
	h.connect("2", true)
	m := h.send("2", "573000000701", "later")
	h.until("two checks without an answer", func() bool { return len(h.w.checked()) >= 2 })
	if st := h.status("2", m.ID); st.Status != outbox.Queued || len(h.w.sent()) != 0 {
		t.Fatalf("after checks without an answer: %+v, %d sends", st, len(h.w.sent()))
	}
	cached, err := h.st.NumberChecks(bg, []string{"573000000701"})
	if err != nil || len(cached) != 0 {
		t.Fatalf("a check without an answer cached %v (%v)", cached, err)
	}
	h.w.mu.Lock()
	h.w.checkErr = nil
	h.w.mu.Unlock()
	h.until("sent", func() bool { return h.status("2", m.ID).Status == outbox.Sent })
}

// With check_numbers off nothing is asked.
func TestCheckNumbersOff(t *testing.T) {
	cfg := testMessages()
	cfg.CheckNumbers = false
	h := newHarness(t, cfg, "")
	h.w.markOff("573000000801")
	h.connect("2", true)
	m := h.send("2", "573000000801", "sent anyway")
	h.until("sent", func() bool { return h.status("2", m.ID).Status == outbox.Sent })
	if len(h.w.checked()) != 0 {
		t.Fatalf("checks %v with check_numbers off", h.w.checked())
	}
}

// CheckNumbers serves fresh cached answers without a worker, asks for the
// rest, and needs a connected worker only for those.
func TestCheckNumbersCachesAndNeedsAWorker(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	h.w.markOff("573000000902")
	phones := []string{"573000000901", "573000000902"}
	if _, err := h.o.CheckNumbers(bg, "2", phones); !errors.Is(err, outbox.ErrNotConnected) {
		t.Fatalf("without a worker: %v", err)
	}
	h.connect("2", true)
	got, err := h.o.CheckNumbers(bg, "2", phones)
	if err != nil || len(got) != 2 || !got[0].OnWhatsApp || got[1].OnWhatsApp || got[0].JID != "573000000901@s.whatsapp.net" ||
		!got[0].CheckedAt.Equal(h.clk.Now()) {
		t.Fatalf("CheckNumbers = %+v, %v", got, err)
	}
	h.connect("2", false)
	h.clk.Advance(time.Hour)
	again, err := h.o.CheckNumbers(bg, "2", phones)
	if err != nil || !again[0].CheckedAt.Equal(got[0].CheckedAt) || again[1].OnWhatsApp {
		t.Fatalf("cached answers: %+v, %v", again, err)
	}
	h.clk.Advance(h.cfg.CheckTTL.Duration)
	if _, err := h.o.CheckNumbers(bg, "2", phones); !errors.Is(err, outbox.ErrNotConnected) {
		t.Fatalf("answers older than check_ttl were served: %v", err)
	}
	if n := len(h.w.checked()); n != 1 {
		t.Fatalf("%d checks, want 1", n)
	}
}
