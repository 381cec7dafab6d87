package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

const hookSecret = "e2e-webhook-secret-0123456789"

// hookReceiver is Django's stand-in: a real HTTP server on loopback that
// checks every signature and answers what the test sets.
type hookReceiver struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	answer int               // HTTP status to answer; 0 = 200
	hang   chan struct{}     // when set, requests wait on it
	got    []webhook.Payload // answered 2xx, in arrival order
	tries  int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := webhook.Verify([]byte(hookSecret), body, req.Header.Get(webhook.SignatureHeader), time.Now(), webhook.Tolerance); err != nil {
			t.Errorf("a webhook does not verify: %v", err)
		}
		r.mu.Lock()
		hang, code := r.hang, r.answer
		r.tries++
		r.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-req.Context().Done():
				return
			}
		}
		if code != 0 && code/100 != 2 {
			w.WriteHeader(code)
			return
		}
		var e webhook.Payload
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
		}
		r.mu.Lock()
		r.got = append(r.got, e)
		r.mu.Unlock()
	}))
	t.Cleanup(func() {
		r.mu.Lock()
		if r.hang != nil {
			close(r.hang)
			r.hang = nil
		}
		r.mu.Unlock()
		r.srv.Close()
	})
	return r
}

func (r *hookReceiver) set(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = code
}

// events returns what org's events were received, as kind:status:reason.
func (r *hookReceiver) events(org string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.got {
		if e.OrganizationID == org {
			out = append(out, e.Event+":"+e.Status+":"+e.Reason)
		}
	}
	return out
}

// linkEvents are the status changes of a link by QR, in order.
var linkEvents = []string{"status_changed:queued:start", "status_changed:starting:spawn", "status_changed:qr_required:qr",
	"status_changed:restoring:pair_success", "status_changed:connected:connected"}

// hookConfig is the [webhook] table pointing at r.
func hookConfig(t *testing.T, r *hookReceiver, extra string) string {
	secret := filepath.Join(t.TempDir(), "webhook_secret")
	if err := os.WriteFile(secret, []byte(hookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("[webhook]\nurl = %q\nsecret_file = %q\n%s", r.srv.URL+"/wa/webhook", secret, extra)
}

// Status changes, the Bad MAC cure and message statuses reach the
// receiver signed, in the order they happened.
func TestWebhooksReportWhatHappens(t *testing.T) {
	t.Parallel()
	r := newHookReceiver(t)
	e := newEnv(t, hookConfig(t, r, "incoming = true\n"))
	phone := "573007915320"
	e.link("wh", phone)
	e.eventually(10*time.Second, "the link reported", func() error {
		if got := r.events("wh"); !slices.Equal(got, linkEvents) {
			return fmt.Errorf("events %v, want %v", got, linkEvents)
		}
		return nil
	})
	m := e.send("wh", "573001250000", "hola", "")
	e.control(http.MethodPost, "/control/devices/"+phone+"/message", map[string]string{"from": "573001250001", "text": "hi there"}, nil)
	e.eventually(15*time.Second, "message_status sent and message_received", func() error {
		got := r.events("wh")
		// The recipient's receipt may overtake the server's ack: then the
		// message goes straight to delivered, never back to sent.
		sent := slices.Contains(got, "message_status:sent:") || slices.Contains(got, "message_status:delivered:")
		if !sent || !slices.Contains(got, "message_received::") {
			return fmt.Errorf("events %v", got)
		}
		return nil
	})
	r.mu.Lock()
	for _, ev := range r.got {
		var d map[string]string
		json.Unmarshal(ev.Data, &d)
		switch ev.Event {
		case "message_status":
			if d["message_id"] != m.ID || d["wa_message_id"] != m.WAMessageID {
				t.Errorf("message_status data %s for %s", ev.Data, m.ID)
			}
		case "message_received":
			if d["from"] != "573001250001" || d["text"] != "hi there" {
				t.Errorf("message_received data %s", ev.Data)
			}
		}
	}
	r.mu.Unlock()
	e.control(http.MethodPost, "/control/devices/"+phone+"/badmac", map[string]int{"count": 5}, nil)
	e.eventually(15*time.Second, "session_cleared", func() error {
		got := r.events("wh")
		if !slices.ContainsFunc(got, func(s string) bool {
			return strings.HasPrefix(s, "session_cleared:") && strings.HasSuffix(s, ":bad_mac_errors")
		}) {
			return fmt.Errorf("events %v", got)
		}
		return nil
	})
	if v := e.metric("wa_sidecar_webhook_deliveries_total", map[string]string{"result": "delivered"}); v < 7 {
		t.Fatalf("webhook_deliveries_total{result=delivered} = %v", v)
	}
}

// A receiver that answers 500, and then is down while the supervisor is
// killed and restarted, still gets every event, in order.
func TestWebhooksSurviveFailuresAndRestarts(t *testing.T) {
	t.Parallel()
	r := newHookReceiver(t)
	r.set(http.StatusInternalServerError)
	e := newEnv(t, hookConfig(t, r, ""))
	e.link("wr", "573007915321")
	e.eventually(10*time.Second, "failed deliveries", func() error {
		if v := e.metric("wa_sidecar_webhook_deliveries_total", map[string]string{"result": "failed"}); v < 1 {
			return fmt.Errorf("failed = %v", v)
		}
		if v := e.metric("wa_sidecar_webhook_queue_depth", nil); v != float64(len(linkEvents)) {
			return fmt.Errorf("queue depth %v, want the %d status changes", v, len(linkEvents))
		}
		return nil
	})
	e.killSupervisor()
	r.set(0)
	e.startSupervisor()
	e.eventually(30*time.Second, "the events after the restart", func() error {
		got := r.events("wr")
		if len(got) < len(linkEvents) || !slices.Equal(got[:len(linkEvents)], linkEvents) {
			return fmt.Errorf("events %v, want %v first", got, linkEvents)
		}
		return nil
	})
}

// A receiver that never answers costs its events time, not the API: the
// status API's latency while it hangs is printed, not asserted.
func TestHangingReceiverDoesNotSlowTheAPI(t *testing.T) {
	t.Parallel()
	r := newHookReceiver(t)
	r.mu.Lock()
	r.hang = make(chan struct{})
	r.mu.Unlock()
	e := newEnv(t, hookConfig(t, r, ""))
	e.link("wt", "573007915322")
	var lat []time.Duration
	for range 200 {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := e.api.List(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("GET /v1/orgs with a hanging webhook receiver: p50 %s, p99 %s over %d calls", lat[len(lat)/2], lat[len(lat)*99/100], len(lat))
	if s := e.status("wt"); s.Status != state.Connected {
		t.Fatalf("the org is %s while its webhooks hang", s.Status)
	}
}

// After give_up_after an event is a dead letter: listed by the API, and
// delivered when retried through it.
func TestWebhookDeadLetterRetry(t *testing.T) {
	t.Parallel()
	r := newHookReceiver(t)
	r.set(http.StatusServiceUnavailable)
	e := newEnvWith(t, options{tcp: true, extra: hookConfig(t, r, "give_up_after = \"1s\"\n")})
	e.start("wd")
	get := func() statusapi.DeadLetterList {
		resp, err := e.http.Get(e.apiURL + "/v1/webhooks/dead")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l statusapi.DeadLetterList
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	var dead statusapi.DeadLetterList
	e.eventually(20*time.Second, "a dead letter", func() error {
		if dead = get(); len(dead.DeadLetters) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	e.eventually(15*time.Second, "the dead letter counted", func() error {
		if v := e.metric("wa_sidecar_webhook_dead_letters", nil); v < 1 {
			return fmt.Errorf("webhook_dead_letters = %v", v)
		}
		return nil
	})
	r.set(0)
	first := dead.DeadLetters[len(dead.DeadLetters)-1]
	if first.LastError != "receiver answered HTTP 503" || first.Event != "status_changed" {
		t.Fatalf("dead letter %+v", first)
	}
	resp, err := e.http.Post(e.apiURL+"/v1/webhooks/dead/"+first.ID+"/retry", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %v %v", resp, err)
	}
	resp.Body.Close()
	e.eventually(15*time.Second, "the retried event delivered", func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, ev := range r.got {
			if ev.ID == first.ID {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	resp, _ = e.http.Post(e.apiURL+"/v1/webhooks/dead/evt_nope/retry", "application/json", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("retry of an unknown event: HTTP %d", resp.StatusCode)
	}
	resp.Body.Close()
}
