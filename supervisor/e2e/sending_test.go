package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
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

// withSentAt re-reads messages that went out until each has its sent_at: a
// receipt can overtake the send's ack (store.Receipt), so a message is
// delivered for a moment before the ack adds its sent_at.
func (e *env) withSentAt(org string, msgs []statusapi.MessageBody) []statusapi.MessageBody {
	e.t.Helper()
	e.eventually(10*time.Second, "every sent_at recorded", func() error {
		for i := range msgs {
			if msgs[i] = e.message(org, msgs[i].ID); msgs[i].SentAt == nil {
				return fmt.Errorf("%s is %s without sent_at", msgs[i].ID, msgs[i].Status)
			}
		}
		return nil
	})
	return msgs
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
	msgs := e.withSentAt("sd", e.waitMessages("sd", ids, 30*time.Second, "delivered"))
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
		// The API shows what it sends: a Django page lists the texts.
		if msgs[i].Text != d.Text {
			t.Fatalf("message %s shows text %q, sent %q", msgs[i].ID, msgs[i].Text, d.Text)
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

// With min_interval 0, the per_minute bucket alone spaces a burst: 120 a
// minute is one send every 500ms, however fast messages are queued.
func TestPerMinuteCapHoldsOverABurst(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{set: map[string]string{
		`min_interval = "200ms"`: `min_interval = "0s"`,
		"per_minute = 600":       "per_minute = 120",
	}})
	phone := "573007915301"
	e.link("pm", phone)
	var ids []string
	for i := range 6 {
		ids = append(ids, e.send("pm", "573001230002", fmt.Sprint("burst ", i), "").ID)
	}
	e.waitMessages("pm", ids, 30*time.Second, "sent", "delivered")
	got := e.deliveries(phone, true)
	if len(got) != 6 {
		t.Fatalf("%d deliveries for 6 messages", len(got))
	}
	// The emulator's clock sees the arrivals, and one arrival late by
	// the scheduling noise of a loaded machine shortens the gap after it
	// (a gap of 384ms was seen with seven builds on two cores). So every
	// pair i < j must be (j-i)×500ms apart, less one noise allowance: a
	// missing bucket, which sends the burst within milliseconds, still
	// fails every pair.
	const turn, noise = 500 * time.Millisecond, 400 * time.Millisecond
	for i := range got {
		for j := i + 1; j < len(got); j++ {
			if gap := got[j].At.Sub(got[i].At); gap < time.Duration(j-i)*turn-noise {
				t.Fatalf("sends %d and %d arrived %s apart; per_minute 120 allows one per 500ms", i, j, gap)
			}
		}
	}
}

// Each bad request gets a 400 whose sentence names what is wrong, and
// nothing is queued by it.
func TestSendBadInput(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{tcp: true, extra: "max_recipients = 3\n"})
	e.start("bi")
	long := strings.Repeat("a", 65537)
	for _, c := range []struct {
		name, method, path, body string
		want                     int
		names                    string
	}{
		{"no body", "POST", "/v1/orgs/bi/messages", "", 400, "body"},
		{"not JSON", "POST", "/v1/orgs/bi/messages", "to=1", 400, "JSON"},
		{"unknown field", "POST", "/v1/orgs/bi/messages", `{"to":"573001230003","text":"x","body":"y"}`, 400, "body"},
		{"short number", "POST", "/v1/orgs/bi/messages", `{"to":"12345","text":"x"}`, 400, "to"},
		{"letters in the number", "POST", "/v1/orgs/bi/messages", `{"to":"57300abc0003","text":"x"}`, 400, "to"},
		{"number of 16 digits", "POST", "/v1/orgs/bi/messages", `{"to":"5730012300031234","text":"x"}`, 400, "to"},
		{"empty text", "POST", "/v1/orgs/bi/messages", `{"to":"573001230003","text":""}`, 400, "text"},
		{"text too long", "POST", "/v1/orgs/bi/messages", `{"to":"573001230003","text":"` + long + `"}`, 400, "text"},
		{"key with spaces", "POST", "/v1/orgs/bi/messages", `{"to":"573001230003","text":"x","idempotency_key":"a b"}`, 400, "idempotency_key"},
		{"bad numbers in a broadcast", "POST", "/v1/orgs/bi/broadcasts", `{"recipients":["573001230003","12","x1"],"text":"x"}`, 400,
			`phone number "12" is not a phone number; with no default_country set, a number is read country code first; phone number "x1" has letters`},
		{"no recipients", "POST", "/v1/orgs/bi/broadcasts", `{"recipients":[],"text":"x"}`, 400, "recipients"},
		{"over max_recipients", "POST", "/v1/orgs/bi/broadcasts",
			`{"recipients":["573001230003","573001230004","573001230005","573001230006"],"text":"x"}`, 400, "max_recipients"},
		{"unknown status filter", "GET", "/v1/orgs/bi/messages?status=lost", "", 400, "status"},
		{"limit not a number", "GET", "/v1/orgs/bi/messages?limit=ten", "", 400, "limit"},
		{"unknown organization", "POST", "/v1/orgs/nobody/messages", `{"to":"573001230003","text":"x"}`, 404, "nobody"},
		{"unknown message", "GET", "/v1/orgs/bi/messages/m_nope", "", 404, "m_nope"},
	} {
		req, _ := http.NewRequest(c.method, e.apiURL+c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct{ Error, Code string }
		if resp.StatusCode != c.want || json.Unmarshal(b, &body) != nil || !strings.Contains(body.Error, c.names) {
			t.Errorf("%s: HTTP %d %s, want %d naming %q", c.name, resp.StatusCode, b, c.want, c.names)
		}
	}
	if s := e.status("bi"); s.Outbox.Queued != 0 {
		t.Fatalf("bad requests queued %d messages", s.Outbox.Queued)
	}
}
