package statusapi

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/wa-sidecar/wa-sidecar/shared/phone"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// fakeContacts answers every number but those in off as on WhatsApp, or
// err when set, and records what it was asked.
type fakeContacts struct {
	mu    sync.Mutex
	asked [][]string
	off   map[string]bool
	err   error
}

// ParseNumber reads numbers as an organization without a default_country.
func (f *fakeContacts) ParseNumber(_, input string) (string, error) { return phone.Parse(input, "") }

func (f *fakeContacts) CheckNumbers(_ context.Context, _ string, phones []string) ([]outbox.NumberCheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, slices.Clone(phones))
	if f.err != nil {
		return nil, f.err
	}
	var out []outbox.NumberCheck
	for _, p := range phones {
		c := outbox.NumberCheck{Phone: p, OnWhatsApp: !f.off[p], CheckedAt: clocktest.Origin()}
		if c.OnWhatsApp {
			c.JID = p + "@s.whatsapp.net"
		}
		out = append(out, c)
	}
	return out, nil
}

func contactsServer(t *testing.T) (*httptest.Server, *fakeContacts) {
	t.Helper()
	fc := &fakeContacts{off: map[string]bool{"573001230002": true}}
	srv := httptest.NewServer(New(newFakeFleet(), Options{Listen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Contacts: fc}))
	t.Cleanup(srv.Close)
	return srv, fc
}

func TestContactsCheck(t *testing.T) {
	srv, fc := contactsServer(t)
	resp, err := http.Post(srv.URL+"/v1/orgs/2/contacts/check", "application/json",
		strings.NewReader(`{"numbers":["573001230001","573001230002","573001230001"]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got CheckResponse
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	want := []CheckResult{
		{Number: "573001230001", Input: "573001230001", OnWhatsApp: true, JID: "573001230001@s.whatsapp.net", CheckedAt: clocktest.Origin().UTC()},
		{Number: "573001230002", Input: "573001230002", CheckedAt: clocktest.Origin().UTC()},
		{Number: "573001230001", Input: "573001230001", OnWhatsApp: true, JID: "573001230001@s.whatsapp.net", CheckedAt: clocktest.Origin().UTC()},
	}
	if !slices.EqualFunc(got.Results, want, func(a, b CheckResult) bool {
		return a.CheckedAt.Equal(b.CheckedAt) && a.Number == b.Number && a.Input == b.Input && a.JID == b.JID && a.OnWhatsApp == b.OnWhatsApp
	}) {
		t.Fatalf("results %+v", got.Results)
	}
	if len(fc.asked) != 1 || !slices.Equal(fc.asked[0], []string{"573001230001", "573001230002"}) {
		t.Fatalf("asked %v: each number once", fc.asked)
	}
}

// Every bad request is a JSON 4xx naming what is wrong, and asks nothing.
func TestContactsCheckBadInput(t *testing.T) {
	srv, fc := contactsServer(t)
	many := make([]string, 501)
	for i := range many {
		many[i] = fmt.Sprintf("\"5730012%05d\"", i)
	}
	for _, c := range []struct {
		name, path, body string
		status           int
		code, mention    string
	}{
		{"501 numbers", "/v1/orgs/2/contacts/check", `{"numbers":[` + strings.Join(many, ",") + `]}`, 400, "bad_body", "501"},
		{"invalid numbers", "/v1/orgs/2/contacts/check", `{"numbers":["573001230001","12","+57 300","abc"]}`, 400, "bad_body", `"12"`},
		{"empty list", "/v1/orgs/2/contacts/check", `{"numbers":[]}`, 400, "bad_body", "numbers"},
		{"no numbers", "/v1/orgs/2/contacts/check", `{}`, 400, "bad_body", "numbers"},
		{"empty number", "/v1/orgs/2/contacts/check", `{"numbers":[""]}`, 400, "bad_body", "[0]"},
		{"bad JSON", "/v1/orgs/2/contacts/check", `{"numbers":`, 400, "bad_body", "JSON"},
		{"numbers not a list", "/v1/orgs/2/contacts/check", `{"numbers":"573001230001"}`, 400, "bad_body", "numbers"},
		{"unknown field", "/v1/orgs/2/contacts/check", `{"numbers":["573001230001"],"nums":1}`, 400, "bad_body", "nums"},
		{"no body", "/v1/orgs/2/contacts/check", ``, 400, "bad_body", "empty"},
		{"bad org id", "/v1/orgs/..%2Fx/contacts/check", `{"numbers":["573001230001"]}`, 400, "bad_id", ""},
		{"unknown org", "/v1/orgs/99/contacts/check", `{"numbers":["573001230001"]}`, 404, "unknown_org", "99"},
	} {
		code, body := post(t, srv.URL+c.path, c.body)
		if code != c.status || body["code"] != c.code || !strings.Contains(fmt.Sprint(body["error"]), c.mention) {
			t.Errorf("%s: %d %v, want %d %s naming %q", c.name, code, body, c.status, c.code, c.mention)
		}
	}
	if len(fc.asked) != 0 {
		t.Fatalf("bad requests asked WhatsApp: %v", fc.asked)
	}
}

func TestContactsCheckWithoutAnswer(t *testing.T) {
	srv, fc := contactsServer(t)
	fc.err = outbox.ErrNotConnected
	if code, body := post(t, srv.URL+"/v1/orgs/2/contacts/check", `{"numbers":["573001230001"]}`); code != http.StatusConflict || body["code"] != "not_connected" {
		t.Fatalf("not connected: %d %v", code, body)
	}
	fc.err = fmt.Errorf("%w: rpc error: deadline exceeded", outbox.ErrNoAnswer)
	resp, err := http.Post(srv.URL+"/v1/orgs/2/contacts/check", "application/json", strings.NewReader(`{"numbers":["573001230001"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("no answer: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
