package conformance

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// oneOrg is a fleet of one connected organization, "2", that can be made
// to boot; the e2e suite checks the real fleet's answers.
type oneOrg struct {
	mu      sync.Mutex
	booting bool
}

func (f *oneOrg) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.booting {
		return fleet.ErrBooting
	}
	return nil
}

func (f *oneOrg) setBooting(b bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.booting = b
}

func (f *oneOrg) snap() state.Snapshot {
	return state.Snapshot{OrganizationID: "2", Status: state.Connected, JID: "573007915262:12@s.whatsapp.net", Egress: "direct"}
}

func (f *oneOrg) List() []state.Snapshot { return []state.Snapshot{f.snap()} }

func (f *oneOrg) Get(id string) (state.Snapshot, error) {
	if id != "2" {
		return state.Snapshot{}, lifecycle.ErrUnknownOrg
	}
	return f.snap(), nil
}

func (f *oneOrg) Start(_ context.Context, id string, _ fleet.StartOptions) (state.Snapshot, error) {
	s := f.snap()
	s.OrganizationID = id
	return s, nil
}

func (f *oneOrg) Stop(_ context.Context, id string) (state.Snapshot, error)   { return f.Get(id) }
func (f *oneOrg) Logout(_ context.Context, id string) (state.Snapshot, error) { return f.Get(id) }
func (f *oneOrg) Clear(_ context.Context, id string) (state.Snapshot, error)  { return f.Get(id) }

func (f *oneOrg) Delete(_ context.Context, id string) error {
	_, err := f.Get(id)
	return err
}

func (f *oneOrg) PairPhone(_ context.Context, id, _ string) (string, error) {
	if _, err := f.Get(id); err != nil {
		return "", err
	}
	return "", &lifecycle.ConflictError{Org: id, Msg: "pairing needs a running, unlinked session (status is connected)"}
}

// TestTheAPIAnswersAsDocumented drives the real handler through the
// checking transport: the answers the e2e suite rarely sees (the probes,
// the document, a wrong key, booting, unknown routes and methods).
func TestTheAPIAnswersAsDocumented(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	f := &oneOrg{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(statusapi.New(f, statusapi.Options{APIKey: "k", Listen: "127.0.0.1:0", Log: log}))
	defer srv.Close()
	var reports []error
	client := &http.Client{Transport: &Transport{Next: http.DefaultTransport, Checker: c, Report: func(err error) { reports = append(reports, err) }}}
	do := func(method, path, key, body string, want int) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("x-api-key", key)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	f.setBooting(true)
	do("GET", "/healthz", "", "", 200)
	do("GET", "/readyz", "", "", 503)
	do("GET", "/v1/openapi.json", "", "", 200)
	do("GET", "/v1/orgs", "k", "", 503)
	f.setBooting(false)
	do("GET", "/readyz", "", "", 200)
	do("GET", "/v1/orgs", "", "", 401)
	do("GET", "/v1/orgs", "wrong", "", 401)
	do("GET", "/v1/orgs", "k", "", 200)
	do("GET", "/v1/orgs/2", "k", "", 200)
	do("GET", "/v1/orgs/no%20such", "k", "", 400)
	do("GET", "/v1/orgs/3", "k", "", 404)
	do("POST", "/v1/orgs/3/start", "k", `{"force":true}`, 202)
	do("POST", "/v1/orgs/2/start", "k", "", 200)
	do("POST", "/v1/orgs/2/start", "k", `{"forse":true}`, 400)
	do("POST", "/v1/orgs/2/stop", "k", "", 200)
	do("POST", "/v1/orgs/2/logout", "k", "{}", 200)
	do("POST", "/v1/orgs/2/clear", "k", "", 200)
	do("POST", "/v1/orgs/2/pair-phone", "k", `{"phone":"573001234567"}`, 409)
	do("DELETE", "/v1/orgs/2", "k", "", 200)
	do("POST", "/api/clear-corrupted-session", "k", `{"organization_id":2}`, 200)
	do("GET", "/v1/webhooks/dead", "k", "", 404)
	do("POST", "/v1/webhooks/dead/evt_x/retry", "k", "", 404)
	do("GET", "/v1/orgs/2/messages", "k", "", 404)
	do("PUT", "/v1/orgs/2", "k", "", 405)
	do("GET", "/v2/nothing", "k", "", 404)
	for _, err := range reports {
		t.Error(err)
	}
}
