package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// A 463 holds messages to new contacts for restrict_backoff while known
// contacts still get theirs; a 479 fails the one message it refused.
func TestSendRefusals(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{`restrict_backoff = "3s"`: `restrict_backoff = "6s"`}})
	phone := "573007915304"
	known, first, second := "573001240200", "573001240201", "573001240202"
	e.link("rf", phone)
	texts := map[string]string{}
	send := func(to, text string) string {
		m := e.send("rf", to, text, "")
		texts[m.WAMessageID] = text
		return m.ID
	}
	e.waitMessages("rf", []string{send(known, "hello")}, 15*time.Second, "sent", "delivered")

	e.control(http.MethodPost, "/control/devices/"+phone+"/send-error", map[string]any{"code": 463}, nil)
	held := []string{send(first, "nice to meet you")}
	var s state.Snapshot
	e.eventually(15*time.Second, "the org restricted", func() error {
		if s = e.status("rf"); s.SendRestrictedUntil == nil {
			return fmt.Errorf("no send_restricted_until in %+v", s.Outbox)
		}
		return nil
	})
	until := *s.SendRestrictedUntil
	if !e.logs.contains(`"msg":"WhatsApp restricts new chats (463): messages to new contacts wait, known contacts go on","org":"rf"`) {
		t.Fatal("no log line for the restriction")
	}
	if v := e.metric("wa_sidecar_send_restricted", map[string]string{"org": "rf"}); v != 1 {
		t.Fatalf("send_restricted = %v during the restriction", v)
	}
	held = append(held, send(second, "hi there"))
	e.waitMessages("rf", []string{send(known, "still here")}, 15*time.Second, "sent", "delivered")
	if time.Now().After(until) {
		t.Fatal("the restriction ended before the known contact's message went; the test proves nothing")
	}
	for _, id := range held {
		if m := e.message("rf", id); m.Status != "queued" {
			t.Fatalf("a message to a new contact is %s during the restriction", m.Status)
		}
	}
	for _, m := range e.withSentAt("rf", e.waitMessages("rf", held, 30*time.Second, "sent", "delivered")) {
		if m.SentAt.Before(until) {
			t.Fatalf("%s sent at %s, before the restriction ended at %s", m.ID, m.SentAt, until)
		}
	}
	e.eventually(10*time.Second, "the restriction lifted", func() error {
		if s := e.status("rf"); s.SendRestrictedUntil != nil {
			return fmt.Errorf("still restricted until %s", s.SendRestrictedUntil)
		}
		if v := e.metric("wa_sidecar_send_restricted", map[string]string{"org": "rf"}); v != 0 {
			return fmt.Errorf("send_restricted = %v", v)
		}
		return nil
	})

	refused := "573001240203"
	e.control(http.MethodPost, "/control/devices/"+phone+"/send-error", map[string]any{"code": 479, "to": refused}, nil)
	bad, good := send(refused, "refused"), send(second, "fine")
	if m := e.waitMessages("rf", []string{bad}, 15*time.Second, "failed")[0]; m.Reason != "server_error_479" || m.FailedAt == nil {
		t.Fatalf("the refused message: %+v", m)
	}
	e.waitMessages("rf", []string{good}, 15*time.Second, "sent", "delivered")
	if v := e.metric("wa_sidecar_messages_failed_total", map[string]string{"org": "rf", "reason": "server_error_479"}); v != 1 {
		t.Fatalf("messages_failed_total{reason=server_error_479} = %v", v)
	}
	delete(texts, e.message("rf", bad).WAMessageID)
	e.exactlyOnce(phone, texts)
}

// Messages for a logged-out organization stay queued, are not sent, and
// fail as expired after expire_after.
func TestLoggedOutMessagesExpire(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{`expire_after = "1h"`: `expire_after = "3s"`}})
	phone := "573007915305"
	e.link("lx", phone)
	e.control(http.MethodPost, "/control/devices/"+phone+"/logout", nil, nil)
	e.waitStatus("lx", state.LoggedOut, 15*time.Second)
	m := e.send("lx", "573001240300", "anyone there?", "")
	if m.Status != "queued" {
		t.Fatalf("accepted as %s", m.Status)
	}
	e.throughout(time.Now().Add(1500*time.Millisecond), "the message left its queue early", func() bool {
		return e.message("lx", m.ID).Status != "queued"
	})
	got := e.waitMessages("lx", []string{m.ID}, 15*time.Second, "failed")[0]
	if got.Reason != "expired" || got.QueuedAt == nil || got.FailedAt.Sub(*got.QueuedAt) < 3*time.Second {
		t.Fatalf("expired message: %+v", got)
	}
	if v := e.metric("wa_sidecar_messages_failed_total", map[string]string{"org": "lx", "reason": "expired"}); v != 1 {
		t.Fatalf("messages_failed_total{reason=expired} = %v", v)
	}
	if d := e.deliveries(phone, true); len(d) != 0 {
		t.Fatalf("a logged-out org sent %+v", d)
	}
}
