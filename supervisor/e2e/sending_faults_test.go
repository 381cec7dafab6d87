package e2e

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
)

// allMessages pages through every message of org.
func (e *env) allMessages(org string) []statusapi.MessageBody {
	e.t.Helper()
	var out []statusapi.MessageBody
	after := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		page, err := e.api.Messages(ctx, org, "", 500, after)
		cancel()
		if err != nil {
			e.t.Fatalf("list messages of %s: %v", org, err)
		}
		out = append(out, page.Messages...)
		if page.Next == "" {
			return out
		}
		after = page.Next
	}
}

// onlyOurs fails when the phone sent anything but the WhatsApp IDs in
// texts (a message sent a second time under a new ID), or with another
// text, and returns the phone view: what the recipients' phones show.
func (e *env) onlyOurs(phone string, texts map[string]string) []emulator.Delivery {
	e.t.Helper()
	for _, d := range e.deliveries(phone, true) {
		if text, ok := texts[d.ID]; !ok || text != d.Text {
			e.t.Fatalf("the phone sent %q as %s, which the outbox never sent (%q)", d.Text, d.ID, text)
		}
	}
	return e.deliveries(phone, false)
}

// exactlyOnce checks that the recipients' phones show each message once.
func (e *env) exactlyOnce(phone string, texts map[string]string) []emulator.Delivery {
	e.t.Helper()
	view := e.onlyOurs(phone, texts)
	if len(view) != len(texts) {
		e.t.Fatalf("the recipients show %d messages of %d", len(view), len(texts))
	}
	if raw := e.deliveries(phone, true); len(raw) > len(texts)+2 {
		// A resend with the same ID follows each crash at most once.
		e.t.Fatalf("%d raw deliveries for %d messages and 2 crashes", len(raw), len(texts))
	}
	return view
}

// kill -9 of the worker mid-queue, then of the supervisor mid-broadcast:
// every message reaches its recipient exactly once.
func TestSendSurvivesKills(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	phone := "573007915302"
	e.link("kx", phone)
	texts := map[string]string{}
	for i := range 20 {
		text := fmt.Sprint("queued ", i)
		m := e.send("kx", fmt.Sprintf("5730012400%02d", i%4), text, "")
		texts[m.WAMessageID] = text
	}
	sentAtLeast := func(n int) func() error {
		return func() error {
			if got := len(e.onlyOurs(phone, texts)); got < n {
				return fmt.Errorf("%d sent", got)
			}
			return nil
		}
	}
	e.eventually(30*time.Second, "4 messages sent", sentAtLeast(4))
	if err := syscall.Kill(e.status("kx").WorkerPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	var recipients []string
	for i := range 15 {
		recipients = append(recipients, fmt.Sprintf("5730012500%02d", i))
	}
	ctx := context.Background()
	job, err := e.api.CreateBroadcast(ctx, "kx", recipients, "promo", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.allMessages("kx") {
		if m.BroadcastID == job.ID {
			texts[m.WAMessageID] = "promo"
		}
	}
	if len(texts) != 35 {
		t.Fatalf("%d messages queued, want 35", len(texts))
	}
	e.eventually(60*time.Second, "the broadcast under way", func() error {
		b, err := e.api.Broadcast(ctx, "kx", job.ID)
		if err != nil || b.Sent < 3 {
			return fmt.Errorf("%+v %v", b, err)
		}
		return sentAtLeast(23)()
	})
	e.killSupervisor()
	e.startSupervisor()
	e.eventually(90*time.Second, "every message sent", func() error {
		b, err := e.api.Broadcast(ctx, "kx", job.ID)
		if err != nil || b.Status != "done" {
			return fmt.Errorf("broadcast %+v %v", b, err)
		}
		return sentAtLeast(35)()
	})
	e.exactlyOnce(phone, texts)
	for _, m := range e.allMessages("kx") {
		if m.Status != "sent" && m.Status != "delivered" {
			t.Fatalf("message %s ended %s (%s)", m.ID, m.Status, m.Reason)
		}
	}
	if v := e.metric("wa_sidecar_outbox_depth", map[string]string{"org": "kx"}); v != 0 {
		t.Fatalf("outbox_depth = %v after the queue drained", v)
	}
}

// A Bad MAC trip mid-queue: the queued messages wait while the org needs a
// QR, then leave from the newly linked device with their IDs unchanged.
func TestQueuedMessagesWaitForTheRelink(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{`min_interval = "200ms"`: `min_interval = "1s"`}})
	phone := "573007915303"
	oldJID := e.link("rl", phone)
	texts := map[string]string{}
	var ids []string
	for i := range 6 {
		text := fmt.Sprint("relink ", i)
		m := e.send("rl", "573001240100", text, "")
		texts[m.WAMessageID] = text
		ids = append(ids, m.ID)
	}
	e.eventually(15*time.Second, "the first message sent", func() error {
		if len(e.deliveries(phone, false)) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	e.control(http.MethodPost, "/control/devices/"+phone+"/badmac", map[string]int{"count": 5}, nil)
	qr := e.waitStatus("rl", state.QRRequired, 30*time.Second)
	before, beforeRaw := len(e.onlyOurs(phone, texts)), len(e.deliveries(phone, true))
	if before == len(texts) {
		t.Fatal("every message left before the trip; the test proves nothing")
	}
	e.throughout(time.Now().Add(1500*time.Millisecond), "a message left while the org had no device", func() bool {
		return len(e.deliveries(phone, true)) > beforeRaw
	})
	for _, m := range e.allMessages("rl") {
		if m.Status == "failed" {
			t.Fatalf("message %s failed while waiting for the relink: %s", m.ID, m.Reason)
		}
	}
	e.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": qr.QRCode, "phone": phone}, nil)
	newJID := e.waitStatus("rl", state.Connected, 30*time.Second).JID
	if newJID == oldJID {
		t.Fatalf("relinked as the old device %s", oldJID)
	}
	e.waitMessages("rl", ids, 30*time.Second, "sent", "delivered")
	view := e.exactlyOnce(phone, texts)
	for i, d := range view {
		if d.Text != fmt.Sprint("relink ", i) {
			t.Fatalf("delivery %d is %q: out of order", i, d.Text)
		}
		if i < before && d.Device != oldJID {
			t.Fatalf("%q left from %s before the trip, not the first device %s", d.Text, d.Device, oldJID)
		}
		if i >= before && d.Device != newJID {
			t.Fatalf("%q left from %s after the relink, not the new device %s", d.Text, d.Device, newJID)
		}
	}
}
