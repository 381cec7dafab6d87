package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// The Django example (examples/django), served by Django, against a real
// supervisor whose API is on TCP with a key: its page shows the QR that the
// emulated phone scans, then connected; its send view queues a message
// that the recipient's phone shows, once however often the form is sent.
func TestDjangoLinksAndSends(t *testing.T) {
	t.Parallel()
	needDjango(t)
	// The number as a person types it: the form passes it on, and the
	// sidecar stores and sends its E.164 digits.
	const org, phone, typed, to, text = "dj", "573007915400", "+57 300 123 4567", "573001234567", "Your order #1042 has shipped"
	key := rand.Text()
	e := newEnvWith(t, options{tcp: true, before: withAPIKey(key)})
	e.api = e.newAPI(strings.TrimPrefix(e.apiURL, "http://"), key)
	d := startDjango(t, djangoConfig{api: e.apiURL, apiKey: key, org: org})

	// The key is accepted: the sidecar's answer is that org is not registered yet.
	var apiErr struct{ Code string }
	if code := d.getJSON("/status.json", &apiErr); code != http.StatusBadGateway || apiErr.Code != "unknown_org" {
		t.Fatalf("status.json before start: %d %+v, want 502 unknown_org", code, apiErr)
	}

	// The page's Start button.
	token := d.form().Get("csrfmiddlewaretoken")
	if code, page := d.post("/start", url.Values{"csrfmiddlewaretoken": {token}}, nil); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, page)
	}
	var s state.Snapshot
	statusVia := func(want state.Status) func() error {
		return func() error {
			s = state.Snapshot{} // fields a status leaves out must not linger from the last one
			if code := d.getJSON("/status.json", &s); code != http.StatusOK {
				return fmt.Errorf("status.json answers %d", code)
			}
			if s.Status != want {
				return fmt.Errorf("status is %s (last event %s)", s.Status, s.LastEvent)
			}
			return nil
		}
	}
	e.eventually(30*time.Second, "a QR in django's status view", statusVia(state.QRRequired))
	if !strings.HasPrefix(s.QR, "data:image/png;base64,") || s.QRCode == "" {
		t.Fatalf("django's status view has no QR: %+v", s)
	}
	if _, page := d.get("/"); !bytes.Contains(page, []byte(`<img id="qr" src="data:image/png;base64,`)) {
		t.Fatalf("the page shows no QR image:\n%s", page)
	}

	e.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": s.QRCode, "phone": phone}, nil)
	e.eventually(30*time.Second, "connected in django's status view", statusVia(state.Connected))
	if !strings.HasPrefix(s.JID, phone) || s.QR != "" {
		t.Fatalf("connected with JID %q (want phone %s) and QR %q", s.JID, phone, s.QR)
	}
	e.status(org) // notes the worker's pid for the leak check at the end

	form := d.form()
	form.Set("to", typed)
	form.Set("text", text)
	var first, again statusapi.MessageBody
	if code, b := d.post("/send", form, &first); code != http.StatusAccepted || first.ID == "" || first.WAMessageID == "" || first.To != to {
		t.Fatalf("send: %d %s", code, b)
	}
	// A double click sends the same form, with the same idempotency key.
	if code, b := d.post("/send", form, &again); code != http.StatusAccepted || again.ID != first.ID {
		t.Fatalf("the same form again: %d %s, want 202 and message %s", code, b, first.ID)
	}
	e.eventually(30*time.Second, "the recipient to show the message", func() error {
		got := e.deliveries(phone, false)
		if len(got) != 1 {
			return fmt.Errorf("the recipient shows %d messages: %+v", len(got), got)
		}
		if got[0].To != to || got[0].Text != text || got[0].ID != first.WAMessageID {
			t.Fatalf("the recipient shows %+v, want %q to %s as %s", got[0], text, to, first.WAMessageID)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if list, err := e.api.Messages(ctx, org, "", 50, ""); err != nil || len(list.Messages) != 1 {
		t.Fatalf("the outbox holds %+v (%v), want the one message", list.Messages, err)
	}
	shown := regexp.MustCompile(`Message ` + regexp.QuoteMeta(first.ID) + ` is <span class="status">(delivered|read)</span>\.`)
	e.eventually(30*time.Second, "the page to show the message delivered", func() error {
		if _, page := d.get("/?sent=" + url.QueryEscape(first.ID)); !shown.Match(page) {
			return fmt.Errorf("the page does not say %s is delivered", first.ID)
		}
		return nil
	})
}

// The example's webhook view records a correctly signed event once, and
// refuses forged, altered, replayed and unsigned ones. Django alone: no
// supervisor is needed to send these.
func TestDjangoWebhookSignatures(t *testing.T) {
	t.Parallel()
	needDjango(t)
	dir := t.TempDir()
	secretFile, secret := writeSecret(t, dir)
	d := startDjango(t, djangoConfig{api: "unix:" + filepath.Join(dir, "no-api.sock"), secretFile: secretFile, org: "2"})

	now := time.Now()
	event := func(id string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"event":"session_cleared","organization_id":"2","status":"qr_required","reason":"bad_mac_errors","timestamp":%q,"data":{}}`,
			id, now.UTC().Format(time.RFC3339))
	}
	unix := now.Unix()
	good := event("evt-good")
	if code := d.postWebhook(good, sign(secret, good, unix)); code/100 != 2 {
		t.Fatalf("a signed event: %d", code)
	}
	// At least once: the same event again is answered 2xx and kept once.
	if code := d.postWebhook(good, sign(secret, good, unix)); code/100 != 2 {
		t.Fatalf("the same event again: %d", code)
	}
	// While a secret is rotated the header carries one v1 per secret.
	rotated := event("evt-rotated")
	other := sign([]byte("the-old-secret"), rotated, unix)
	if code := d.postWebhook(rotated, other+","+strings.Split(sign(secret, rotated, unix), ",")[1]); code/100 != 2 {
		t.Fatalf("an event signed with two secrets, one right: %d", code)
	}

	altered := bytes.Replace(event("evt-altered"), []byte(`"2"`), []byte(`"3"`), 1)
	refused := []struct {
		what      string
		body      []byte
		signature string
	}{
		{"forged (another secret)", event("evt-forged"), sign([]byte("not-the-secret"), event("evt-forged"), unix)},
		{"altered after signing", altered, sign(secret, event("evt-altered"), unix)},
		{"replayed (signed 10 minutes ago)", event("evt-replayed"), sign(secret, event("evt-replayed"), unix-600)},
		{"from the future (10 minutes ahead)", event("evt-future"), sign(secret, event("evt-future"), unix+600)},
		{"unsigned", event("evt-unsigned"), ""},
	}
	for _, r := range refused {
		if code := d.postWebhook(r.body, r.signature); code/100 != 4 {
			t.Errorf("%s: answered %d, want 4xx", r.what, code)
		}
	}

	var ids []string
	for _, ev := range d.events() {
		ids = append(ids, ev.ID)
	}
	if want := []string{"evt-good", "evt-rotated"}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("django recorded %v, want %v", ids, want)
	}
}

// A Bad MAC trip reaches the Django example as a signed session_cleared
// webhook, through the wa_sidecar package's view, and the package emails
// the organization's owner to scan again (Django's console backend).
func TestDjangoWebhooks(t *testing.T) {
	t.Parallel()
	needDjango(t)
	const org, phone = "djw", "573007915401"
	var d *djangoServer
	var secret []byte
	e := newEnvWith(t, options{before: func(e *env) {
		var secretFile string
		secretFile, secret = writeSecret(t, e.dir)
		// The harness's API socket: the supervisor is not running yet, and
		// Django calls the API only when asked.
		d = startDjango(t, djangoConfig{api: "unix:" + filepath.Join(e.dir, "api.sock"), secretFile: secretFile, org: org,
			ownerEmail: "owner@shop.example"})
		appendConfig(e, fmt.Sprintf("[webhook]\nurl = %q\nsecret_file = %q\n", d.url+"/webhook", secretFile))
	}})

	e.link(org, phone)
	var s state.Snapshot
	if code := d.getJSON("/status.json", &s); code != http.StatusOK || s.Status != state.Connected {
		t.Fatalf("django's status view over the unix socket: %d %+v", code, s)
	}

	e.control(http.MethodPost, "/control/devices/"+phone+"/badmac", map[string]int{"count": 5}, nil)
	e.eventually(30*time.Second, "the Bad MAC trip", func() error {
		if s := e.status(org); s.BadMAC.Trips != 1 {
			return fmt.Errorf("trips %d, status %s", s.BadMAC.Trips, s.Status)
		}
		return nil
	})

	var got webhook.Payload
	e.eventually(30*time.Second, "django to receive a verified session_cleared", func() error {
		for _, ev := range d.events() {
			if ev.Event == "session_cleared" {
				got = ev
				return nil
			}
		}
		if strings.Contains(d.logs.String(), `"POST /webhook HTTP/1.1" 403`) {
			return fmt.Errorf("django refused the supervisor's webhook signature")
		}
		return fmt.Errorf("not received; django recorded %+v", d.events())
	})
	if got.ID == "" || got.OrganizationID != org || got.Reason != "bad_mac_errors" {
		t.Fatalf("session_cleared event %+v, want an id, organization %s, reason bad_mac_errors", got, org)
	}
	if _, err := time.Parse(time.RFC3339, got.Timestamp); err != nil {
		t.Fatalf("event timestamp %q: %v", got.Timestamp, err)
	}
	e.eventually(10*time.Second, "the owner's relink email", func() error {
		mail := d.out.String()
		for _, want := range []string{"Subject: WhatsApp for " + org + " must be linked again", "To: owner@shop.example", "Close WhatsApp Web"} {
			if !strings.Contains(mail, want) {
				return fmt.Errorf("django's stdout has no %q:\n%s", want, mail)
			}
		}
		return nil
	})
	if e.logs.contains(string(secret)) {
		t.Fatalf("the webhook secret appears in the supervisor's log")
	}
}
