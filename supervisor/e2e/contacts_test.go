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

	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// A broadcast of 20 with 5 numbers not on WhatsApp delivers 15 and fails 5
// as not_on_whatsapp without ever sending them: the emulator's raw
// deliveries never show them, none of them was ever sending, and the
// 15 others go out once each. Then the check route answers from the cache
// without a worker, asks WhatsApp through the worker for new numbers, and
// refuses bad input with a JSON 4xx naming what is wrong.
func TestNumbersNotOnWhatsApp(t *testing.T) {
	t.Parallel()
	r := newHookReceiver(t)
	e := newEnvWith(t, options{tcp: true, extra: hookConfig(t, r, "")})
	phone := "573007915340"
	e.link("nw", phone)
	ctx := context.Background()
	emu := emuctl.New(e.emuURL)

	recipients := numbers("5730012700", 20)
	var off []string
	for i, p := range recipients {
		if i%4 == 2 {
			off = append(off, p)
			if err := emu.SetOnWhatsApp(ctx, p, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	job, err := e.api.CreateBroadcast(ctx, "nw", recipients, "only for WhatsApp users", "")
	if err != nil {
		t.Fatal(err)
	}
	// Sampled while the job runs, not only at its end.
	neverSent := func() {
		for _, d := range e.deliveries(phone, true) {
			if slices.Contains(off, d.To) {
				t.Fatalf("the emulator got a message to %s, which is not on WhatsApp", d.To)
			}
		}
	}
	e.eventually(60*time.Second, "the job done", func() error {
		neverSent()
		b, err := e.api.Broadcast(ctx, "nw", job.ID)
		if err != nil || b.Status != "done" {
			return fmt.Errorf("%+v %v", b, err)
		}
		if b.Sent != 15 || b.Failed != 5 {
			t.Fatalf("job done with %d sent and %d failed, want 15 and 5", b.Sent, b.Failed)
		}
		return nil
	})
	neverSent()
	raw := e.deliveries(phone, true)
	if len(raw) != 15 {
		t.Fatalf("%d raw deliveries, want the 15 numbers on WhatsApp once each", len(raw))
	}
	list, err := e.api.Messages(ctx, "nw", "failed", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	var failedTo []string
	for _, m := range list.Messages {
		if m.Reason != "not_on_whatsapp" || m.SendingAt != nil {
			t.Fatalf("failed message %+v: want not_on_whatsapp and never sending", m)
		}
		failedTo = append(failedTo, m.To)
	}
	slices.Sort(failedTo)
	if !slices.Equal(failedTo, off) {
		t.Fatalf("failed %v, want %v", failedTo, off)
	}
	// One batch asked about the job's 20 numbers before its first send.
	if n := strings.Count(e.logs.String(), `"msg":"numbers checked with WhatsApp before their first send","org":"nw"`); n != 1 {
		t.Fatalf("%d check batches logged, want 1", n)
	}
	e.eventually(15*time.Second, "5 webhooks for the failures", func() error {
		if n := countOf(r.events("nw"), "message_status:failed:not_on_whatsapp"); n != 5 {
			return fmt.Errorf("%d not_on_whatsapp webhooks", n)
		}
		return nil
	})

	// A single message to a number never checked is checked, then failed.
	lone := "573001279999"
	if err := emu.SetOnWhatsApp(ctx, lone, false); err != nil {
		t.Fatal(err)
	}
	m := e.send("nw", lone, "hello?", "")
	e.eventually(15*time.Second, "the lone message failed", func() error {
		if got := e.message("nw", m.ID); got.Status != "failed" || got.Reason != "not_on_whatsapp" {
			return fmt.Errorf("%+v", got)
		}
		return nil
	})

	// The route: cached answers and a new number through the worker.
	got, err := e.api.CheckNumbers(ctx, "nw", []string{off[0], recipients[0], "573001278888"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 3 || got.Results[0].OnWhatsApp || !got.Results[1].OnWhatsApp || !got.Results[2].OnWhatsApp ||
		got.Results[2].JID != "573001278888@s.whatsapp.net" || got.Results[0].Input != off[0] {
		t.Fatalf("check: %+v", got.Results)
	}
	if _, err := e.api.Stop(ctx, "nw"); err != nil {
		t.Fatal(err)
	}
	e.eventually(15*time.Second, "the worker gone", func() error {
		if s := e.status("nw"); s.Status == "connected" {
			return fmt.Errorf("still %s", s.Status)
		}
		return nil
	})
	cached, err := e.api.CheckNumbers(ctx, "nw", []string{off[0], "573001278888"})
	if err != nil || !cached.Results[1].CheckedAt.Equal(got.Results[2].CheckedAt) || cached.Results[0].OnWhatsApp {
		t.Fatalf("cached answers without a worker: %+v %v", cached, err)
	}
	if _, err := e.api.CheckNumbers(ctx, "nw", []string{"573001277777"}); !apiclient.IsCode(err, "not_connected") {
		t.Fatalf("a new number without a worker: %v, want 409 not_connected", err)
	}

	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprintf("5730012%05d", i))
	}
	for _, c := range []struct{ name, body, mention string }{
		{"501 numbers", `{"numbers":[` + strings.Join(many, ",") + `]}`, "501"},
		{"invalid numbers", `{"numbers":["573001230001","12","+57 300 123"]}`, `"12"`},
		{"empty list", `{"numbers":[]}`, "numbers"},
		{"bad JSON", `{"numbers":[`, "JSON"},
	} {
		status, body := e.postJSON("/v1/orgs/nw/contacts/check", c.body)
		var eb statusapi.ErrorBody
		if err := json.Unmarshal([]byte(body), &eb); err != nil || status != http.StatusBadRequest || eb.Code != "bad_body" || !strings.Contains(eb.Error, c.mention) {
			t.Errorf("%s: %d %s, want a JSON 400 naming %q", c.name, status, body, c.mention)
		}
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// postJSON POSTs body to the TCP API and returns the status and raw answer.
func (e *env) postJSON(path, body string) (int, string) {
	e.t.Helper()
	resp, err := e.http.Post(e.apiURL+path, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}
