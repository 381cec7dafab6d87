package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
)

func (e *env) send(org, to, text, key string) statusapi.MessageBody {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := e.api.Send(ctx, org, to, text, key)
	if err != nil {
		e.t.Fatalf("send to %s: %v", to, err)
	}
	return m
}

func (e *env) message(org, id string) statusapi.MessageBody {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := e.api.Message(ctx, org, id)
	if err != nil {
		e.t.Fatalf("message %s: %v", id, err)
	}
	return m
}

// waitMessages waits until every message has one of the statuses.
func (e *env) waitMessages(org string, ids []string, timeout time.Duration, statuses ...string) []statusapi.MessageBody {
	e.t.Helper()
	var out []statusapi.MessageBody
	e.eventually(timeout, fmt.Sprintf("%d messages %v", len(ids), statuses), func() error {
		out = out[:0]
		for _, id := range ids {
			m := e.message(org, id)
			if !slices.Contains(statuses, m.Status) {
				return fmt.Errorf("%s is %s (%s)", id, m.Status, m.Reason)
			}
			out = append(out, m)
		}
		return nil
	})
	return out
}

// deliveries is what the emulator saw the org's phone send: each message
// ID once as a recipient's phone shows it, or every delivery with raw.
func (e *env) deliveries(phone string, raw bool) []emulator.Delivery {
	e.t.Helper()
	var out []emulator.Delivery
	path := "/control/devices/" + phone + "/sent"
	if raw {
		path += "?raw=1"
	}
	e.control(http.MethodGet, path, nil, &out)
	return out
}

// Messages are delivered once each, in order, at least min_interval apart,
// and move to delivered and read with the recipient's receipts.
func TestSendDeliversInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	phone, to := "573007915300", "573001230001"
	e.link("sd", phone)
	var ids []string
	for i := range 5 {
		ids = append(ids, e.send("sd", to, fmt.Sprint("hola ", i), "").ID)
	}
	msgs := e.waitMessages("sd", ids, 30*time.Second, "delivered")
	for i := 1; i < len(msgs); i++ {
		if gap := msgs[i].SentAt.Sub(*msgs[i-1].SentAt); gap < 200*time.Millisecond {
			t.Fatalf("messages %d and %d sent %s apart, below min_interval", i-1, i, gap)
		}
	}
	got := e.deliveries(phone, false)
	if len(got) != 5 {
		t.Fatalf("the recipient shows %d messages: %+v", len(got), got)
	}
	for i, d := range got {
		if d.Text != fmt.Sprint("hola ", i) || d.To != to || d.ID != msgs[i].WAMessageID {
			t.Fatalf("delivery %d: %+v, want %q as %s", i, d, fmt.Sprint("hola ", i), msgs[i].WAMessageID)
		}
	}
	if raw := e.deliveries(phone, true); len(raw) != 5 {
		t.Fatalf("%d raw deliveries: a message went twice", len(raw))
	}
	e.control(http.MethodPost, "/control/devices/"+phone+"/receipts", map[string]string{"id": msgs[2].WAMessageID, "type": "read"}, nil)
	e.waitMessages("sd", ids[2:3], 10*time.Second, "read")
	ctx := context.Background()
	list, err := e.api.Messages(ctx, "sd", "", 2, "")
	if err != nil || len(list.Messages) != 2 || list.Messages[0].ID != ids[4] || list.Next != ids[3] {
		t.Fatalf("first page: %+v %v", list, err)
	}
	if list, err = e.api.Messages(ctx, "sd", "read", 10, ""); err != nil || len(list.Messages) != 1 || list.Messages[0].ID != ids[2] {
		t.Fatalf("read filter: %+v %v", list, err)
	}
	s := e.status("sd")
	if s.Outbox.Queued != 0 || s.Outbox.SentToday != 5 {
		t.Fatalf("status outbox %+v", s.Outbox)
	}
	if v := e.metric("wa_sidecar_messages_sent_total", map[string]string{"org": "sd"}); v != 5 {
		t.Fatalf("messages_sent_total = %v", v)
	}
	// A retry of a create with the same key returns the first message.
	first := e.send("sd", to, "once", "order-77")
	again := e.send("sd", to, "once", "order-77")
	if again.ID != first.ID || again.WAMessageID != first.WAMessageID {
		t.Fatalf("idempotent retry made %s after %s", again.ID, first.ID)
	}
}
