package statusapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

const testKey = "s3cret-key"

// fakeFleet records calls and answers from a map of snapshots; err, when
// set, is returned by every call.
type fakeFleet struct {
	mu    sync.Mutex
	orgs  map[string]state.Snapshot
	calls []string
	err   error
	code  string
	ready error
}

func (f *fakeFleet) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

func (f *fakeFleet) setReady(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready = err
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{orgs: map[string]state.Snapshot{
		"2":                        {OrganizationID: "2", Status: state.Connected, JID: "573007915262:12@s.whatsapp.net"},
		"68e3f605f2d61bb5556b7b20": {OrganizationID: "68e3f605f2d61bb5556b7b20", Status: state.QRRequired, QRCode: "2@abc"},
	}}
}

func (f *fakeFleet) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeFleet) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeFleet) set(id string, st state.Status) state.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.orgs[id]
	s.OrganizationID, s.Status = id, st
	f.orgs[id] = s
	return s
}

func (f *fakeFleet) known(id string) (state.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.orgs[id]
	if !ok {
		return state.Snapshot{}, fmt.Errorf("get %s: %w", id, lifecycle.ErrUnknownOrg)
	}
	return s, nil
}

func (f *fakeFleet) List() []state.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "list")
	var out []state.Snapshot
	for _, s := range f.orgs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b state.Snapshot) int { return strings.Compare(a.OrganizationID, b.OrganizationID) })
	return out
}

func (f *fakeFleet) Get(id string) (state.Snapshot, error) {
	if err := f.record("get " + id); err != nil {
		return state.Snapshot{}, err
	}
	return f.known(id)
}

func (f *fakeFleet) Start(_ context.Context, id string, opts fleet.StartOptions) (state.Snapshot, error) {
	call := "start " + id
	if opts.Force {
		call += " force"
	}
	if err := f.record(call); err != nil {
		return state.Snapshot{}, err
	}
	if s, err := f.known(id); err == nil && s.Status == state.Connected {
		return s, nil
	}
	return f.set(id, state.Queued), nil
}

func (f *fakeFleet) Stop(_ context.Context, id string) (state.Snapshot, error) {
	if err := f.record("stop " + id); err != nil {
		return state.Snapshot{}, err
	}
	if _, err := f.known(id); err != nil {
		return state.Snapshot{}, err
	}
	return f.set(id, state.Stopped), nil
}

func (f *fakeFleet) Logout(ctx context.Context, id string) (state.Snapshot, error) {
	if err := f.record("logout " + id); err != nil {
		return state.Snapshot{}, err
	}
	if _, err := f.known(id); err != nil {
		return state.Snapshot{}, err
	}
	return f.set(id, state.LoggedOut), ctx.Err()
}

func (f *fakeFleet) Clear(_ context.Context, id string) (state.Snapshot, error) {
	if err := f.record("clear " + id); err != nil {
		return state.Snapshot{}, err
	}
	if _, err := f.known(id); err != nil {
		return state.Snapshot{}, err
	}
	return f.set(id, state.Queued), nil
}

func (f *fakeFleet) Delete(_ context.Context, id string) error {
	if err := f.record("delete " + id); err != nil {
		return err
	}
	if _, err := f.known(id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.orgs, id)
	return nil
}

func (f *fakeFleet) PairPhone(ctx context.Context, id, phone string) (string, error) {
	if err := f.record("pair-phone " + id + " " + phone); err != nil {
		return "", err
	}
	if _, err := f.known(id); err != nil {
		return "", err
	}
	return "ABCD-EFGH", ctx.Err()
}

type harness struct {
	t     *testing.T
	fleet *fakeFleet
	h     http.Handler
	logs  *bytes.Buffer
}

func newHarness(t *testing.T, key string) *harness {
	t.Helper()
	logs := &bytes.Buffer{}
	f := newFakeFleet()
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &harness{t: t, fleet: f, h: New(f, Options{APIKey: key, Listen: "127.0.0.1:8089", AllowedOrigins: []string{"https://app.example"}, Log: log}), logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// do sends a request with the test key unless header overrides are given.
func (h *harness) do(method, target, body string, header ...string) *httptest.ResponseRecorder {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.Host = "127.0.0.1:8089"
	req.Header.Set("x-api-key", testKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec
}

func decodeAs[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON; body %s", ct, rec.Body)
	}
	var v T
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	return v
}

func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) ErrorBody {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	e := decodeAs[ErrorBody](t, rec)
	if e.Code != code || e.Error == "" {
		t.Fatalf("error = %+v, want code %q and a sentence", e, code)
	}
	return e
}

func TestHealthzNeedsNoKey(t *testing.T) {
	h := newHarness(t, testKey)
	rec := h.do("GET", "/healthz", "", "x-api-key", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	if got := decodeAs[map[string]string](t, rec); got["status"] != "ok" {
		t.Fatalf("body = %v", got)
	}
}

func TestListNeverNull(t *testing.T) {
	h := newHarness(t, testKey)
	rec := h.do("GET", "/v1/orgs", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	got := decodeAs[[]state.Snapshot](t, rec)
	if len(got) != 2 || got[0].OrganizationID != "2" || got[1].OrganizationID != "68e3f605f2d61bb5556b7b20" {
		t.Fatalf("list = %+v", got)
	}

	h.fleet.orgs = map[string]state.Snapshot{}
	rec = h.do("GET", "/v1/orgs", "")
	if body := strings.TrimSpace(rec.Body.String()); body != "[]" {
		t.Fatalf("empty list body = %s, want []", body)
	}
}

func TestGet(t *testing.T) {
	h := newHarness(t, testKey)
	rec := h.do("GET", "/v1/orgs/2", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d; %s", rec.Code, rec.Body)
	}
	if got := decodeAs[state.Snapshot](t, rec); got.Status != state.Connected || got.JID == "" {
		t.Fatalf("snapshot = %+v", got)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control = %q", cc)
	}
	wantError(t, h.do("GET", "/v1/orgs/99", ""), http.StatusNotFound, "unknown_org")
}

func TestMutatingRoutes(t *testing.T) {
	tests := []struct {
		method, path, body string
		status             int
		want               state.Status
		call               string
	}{
		{"POST", "/v1/orgs/new-org/start", "", http.StatusAccepted, state.Queued, "start new-org"},
		{"POST", "/v1/orgs/2/start", "{}", http.StatusOK, state.Connected, "start 2"},
		{"POST", "/v1/orgs/2/stop", "", http.StatusOK, state.Stopped, "stop 2"},
		{"POST", "/v1/orgs/2/logout", "", http.StatusOK, state.LoggedOut, "logout 2"},
		{"POST", "/v1/orgs/2/clear", " \n", http.StatusOK, state.Queued, "clear 2"},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			h := newHarness(t, testKey)
			rec := h.do(tt.method, tt.path, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; %s", rec.Code, tt.status, rec.Body)
			}
			if got := decodeAs[state.Snapshot](t, rec); got.Status != tt.want {
				t.Fatalf("status field = %q, want %q", got.Status, tt.want)
			}
			if calls := h.fleet.Calls(); len(calls) != 1 || calls[0] != tt.call {
				t.Fatalf("fleet calls = %q, want %q", calls, tt.call)
			}
		})
	}
}

func TestUnknownOrgOnActions(t *testing.T) {
	h := newHarness(t, testKey)
	for _, r := range [][2]string{{"POST", "/v1/orgs/77/stop"}, {"POST", "/v1/orgs/77/logout"},
		{"POST", "/v1/orgs/77/clear"}, {"DELETE", "/v1/orgs/77"}} {
		e := wantError(t, h.do(r[0], r[1], ""), http.StatusNotFound, "unknown_org")
		if !strings.Contains(e.Error, "77") {
			t.Errorf("%s %s: message %q does not name the organization", r[0], r[1], e.Error)
		}
	}
}

func TestDelete(t *testing.T) {
	h := newHarness(t, testKey)
	rec := h.do("DELETE", "/v1/orgs/2", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d; %s", rec.Code, rec.Body)
	}
	if got := decodeAs[DeleteResponse](t, rec); got != (DeleteResponse{OrganizationID: "2", Deleted: true}) {
		t.Fatalf("body = %+v", got)
	}
	wantError(t, h.do("GET", "/v1/orgs/2", ""), http.StatusNotFound, "unknown_org")
}

func TestPairPhone(t *testing.T) {
	h := newHarness(t, testKey)
	rec := h.do("POST", "/v1/orgs/68e3f605f2d61bb5556b7b20/pair-phone", `{"phone":"573001234567"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d; %s", rec.Code, rec.Body)
	}
	if got := decodeAs[PairPhoneResponse](t, rec); got.Code != "ABCD-EFGH" {
		t.Fatalf("body = %+v", got)
	}
	if calls := h.fleet.Calls(); len(calls) != 1 || calls[0] != "pair-phone 68e3f605f2d61bb5556b7b20 573001234567" {
		t.Fatalf("calls = %q", calls)
	}

	for _, body := range []string{`{"phone":"+573001234567"}`, `{"phone":"57 300"}`, `{"phone":"123456"}`,
		`{"phone":"1234567890123456"}`, `{"phone":""}`, `{}`, `null`} {
		wantError(t, h.do("POST", "/v1/orgs/2/pair-phone", body), http.StatusBadRequest, "bad_body")
	}
	wantError(t, h.do("POST", "/v1/orgs/2/pair-phone", ""), http.StatusBadRequest, "bad_body")
	if n := len(h.fleet.Calls()); n != 1 {
		t.Fatalf("fleet called %d times; bad phones must not reach it", n)
	}

	h.fleet.err = &lifecycle.ConflictError{Org: "2", Msg: "already linked"}
	e := wantError(t, h.do("POST", "/v1/orgs/2/pair-phone", `{"phone":"5730012345"}`), http.StatusConflict, "conflict")
	if !strings.Contains(e.Error, "already linked") {
		t.Fatalf("conflict message %q lost the reason", e.Error)
	}
}

func TestBadIDsNeverReachTheFleet(t *testing.T) {
	h := newHarness(t, testKey)
	long := strings.Repeat("a", 65)
	for _, target := range []string{
		"/v1/orgs/..%2Fx", "/v1/orgs/a%2Fb", "/v1/orgs/" + long, "/v1/orgs/%20", "/v1/orgs/2_corrupted_1700000000000",
		"/v1/orgs/..%2Fx/start", "/v1/orgs/a%2Fb/clear", "/v1/orgs/" + long + "/stop",
	} {
		method := "POST"
		if !strings.HasSuffix(target, "start") && !strings.HasSuffix(target, "clear") && !strings.HasSuffix(target, "stop") {
			method = "GET"
		}
		wantError(t, h.do(method, target, ""), http.StatusBadRequest, "bad_id")
	}
	wantError(t, h.do("DELETE", "/v1/orgs/a%2Fb", ""), http.StatusBadRequest, "bad_id")
	wantError(t, h.do("POST", "/v1/orgs/..%2Fx/pair-phone", `{"phone":"5730012345"}`), http.StatusBadRequest, "bad_id")
	// An unescaped ".." would be resolved to another route by a redirect;
	// it is refused instead.
	wantError(t, h.do("GET", "/v1/orgs/../x", ""), http.StatusNotFound, "not_found")
	wantError(t, h.do("GET", "/v1/orgs//2", ""), http.StatusNotFound, "not_found")
	if calls := h.fleet.Calls(); len(calls) != 0 {
		t.Fatalf("fleet saw %q", calls)
	}
}

func TestAPIKey(t *testing.T) {
	h := newHarness(t, testKey)
	e := wantError(t, h.do("GET", "/v1/orgs", "", "x-api-key", ""), http.StatusUnauthorized, "unauthorized")
	if !strings.Contains(e.Error, "missing") {
		t.Fatalf("missing key message = %q", e.Error)
	}
	e = wantError(t, h.do("GET", "/v1/orgs", "", "x-api-key", "wrong"), http.StatusUnauthorized, "unauthorized")
	if strings.Contains(e.Error, testKey) {
		t.Fatal("error leaks the key")
	}
	wantError(t, h.do("GET", "/v1/orgs", "", "x-api-key", testKey+"x"), http.StatusUnauthorized, "unauthorized")
	// Unauthenticated callers learn nothing about the route table.
	wantError(t, h.do("GET", "/nope", "", "x-api-key", ""), http.StatusUnauthorized, "unauthorized")
	wantError(t, h.do("POST", "/v1/orgs/2/stop", "", "x-api-key", "wrong"), http.StatusUnauthorized, "unauthorized")
	if calls := h.fleet.Calls(); len(calls) != 0 {
		t.Fatalf("fleet saw %q", calls)
	}
}

func TestDevModeWithoutKey(t *testing.T) {
	h := newHarness(t, "")
	if rec := h.do("GET", "/v1/orgs", "", "x-api-key", ""); rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	if rec := h.do("GET", "/v1/orgs", "", "x-api-key", "anything"); rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
}

func TestBodies(t *testing.T) {
	h := newHarness(t, testKey)
	huge := `{"phone":"` + strings.Repeat("1", maxBody) + `"}`
	wantError(t, h.do("POST", "/v1/orgs/2/pair-phone", huge), http.StatusRequestEntityTooLarge, "too_large")
	wantError(t, h.do("POST", "/v1/orgs/2/start", `{"force":"`+strings.Repeat("x", maxBody)+`"}`),
		http.StatusRequestEntityTooLarge, "too_large")
	wantError(t, h.do("POST", "/api/clear-corrupted-session", huge), http.StatusRequestEntityTooLarge, "too_large")

	e := wantError(t, h.do("POST", "/v1/orgs/2/start", `{"forse":true}`), http.StatusBadRequest, "bad_body")
	if !strings.Contains(e.Error, "forse") {
		t.Fatalf("unknown field message %q does not name the field", e.Error)
	}
	wantError(t, h.do("POST", "/v1/orgs/2/pair-phone", `{"phone":"5730012345","extra":1}`), http.StatusBadRequest, "bad_body")
	wantError(t, h.do("POST", "/v1/orgs/2/stop", `{`), http.StatusBadRequest, "bad_body")
	wantError(t, h.do("POST", "/v1/orgs/2/clear", `[]`), http.StatusBadRequest, "bad_body")
	wantError(t, h.do("POST", "/v1/orgs/2/logout", `{} {}`), http.StatusBadRequest, "bad_body")
	wantError(t, h.do("POST", "/v1/orgs/2/pair-phone", `{"phone":5730012345}`), http.StatusBadRequest, "bad_body")
	if calls := h.fleet.Calls(); len(calls) != 0 {
		t.Fatalf("fleet saw %q", calls)
	}
}

func TestCooldown(t *testing.T) {
	h := newHarness(t, testKey)
	until := time.Now().Add(90*time.Second + 500*time.Millisecond)
	h.fleet.err = fmt.Errorf("start: %w", &lifecycle.HoldError{Org: "2", Until: until, Why: "a logout"})
	rec := h.do("POST", "/v1/orgs/2/start", "")
	e := wantError(t, rec, http.StatusConflict, "cooldown")
	if ra := rec.Header().Get("Retry-After"); ra != "91" {
		t.Fatalf("Retry-After = %q, want 91 (rounded up)", ra)
	}
	if !strings.Contains(e.Error, until.UTC().Format(time.RFC3339)) {
		t.Fatalf("message %q does not say until when", e.Error)
	}

	h.fleet.err = &lifecycle.HoldError{Org: "2", Until: time.Now().Add(-time.Second), Why: "a logout"}
	if ra := h.do("POST", "/v1/orgs/2/clear", "").Header().Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After for an elapsed cooldown = %q, want 1", ra)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{
		0: 1, -time.Hour: 1, time.Millisecond: 1, time.Second: 1, time.Second + 1: 2, 5 * time.Minute: 300,
	} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestInternalErrorsAreLoggedNotLeaked(t *testing.T) {
	h := newHarness(t, testKey)
	h.fleet.err = errors.New("open /var/lib/wa-sidecar/auth_sessions/2/store.db: permission denied")
	e := wantError(t, h.do("POST", "/v1/orgs/2/stop", ""), http.StatusInternalServerError, "internal")
	if strings.Contains(e.Error, "/var/lib") {
		t.Fatalf("answer leaks the error: %q", e.Error)
	}
	if !strings.Contains(h.logs.String(), "permission denied") {
		t.Fatalf("error not logged: %s", h.logs)
	}
}

func TestUnroutedAnswersJSON(t *testing.T) {
	h := newHarness(t, testKey)
	wantError(t, h.do("GET", "/nope", ""), http.StatusNotFound, "not_found")
	wantError(t, h.do("GET", "/", ""), http.StatusNotFound, "not_found")
	wantError(t, h.do("GET", "/v1/orgs/2/bogus", ""), http.StatusNotFound, "not_found")
	// Message routes arrive with the outbox.
	wantError(t, h.do("POST", "/v1/orgs/2/messages", `{"to":"573001234567","text":"hi"}`), http.StatusNotFound, "not_found")
	wantError(t, h.do("GET", "/v1/orgs/2/messages/abc", ""), http.StatusNotFound, "not_found")

	rec := h.do("GET", "/v1/orgs/2/start", "")
	wantError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
	if allow := rec.Header().Get("Allow"); allow != "POST" {
		t.Fatalf("Allow = %q", allow)
	}
	rec = h.do("PUT", "/v1/orgs/2", "")
	wantError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
	if allow := rec.Header().Get("Allow"); allow != "GET, DELETE, HEAD" {
		t.Fatalf("Allow = %q", allow)
	}
	rec = h.do("POST", "/healthz", "", "x-api-key", "")
	wantError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
	if calls := h.fleet.Calls(); len(calls) != 0 {
		t.Fatalf("fleet saw %q", calls)
	}
}

func TestSeedClearCorruptedSession(t *testing.T) {
	h := newHarness(t, testKey)
	for _, body := range []string{`{"organization_id":"2"}`, `{"organization_id":2}`, `{"organization_id": 2 }`} {
		rec := h.do("POST", "/api/clear-corrupted-session", body)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status = %d; %s", body, rec.Code, rec.Body)
		}
		got := decodeAs[ClearCorruptedSessionResponse](t, rec)
		if !got.Success || got.OrganizationID != "2" || got.Status != state.Queued ||
			got.Session.OrganizationID != "2" || got.Message == "" {
			t.Fatalf("%s: body = %+v", body, got)
		}
	}
	if calls := h.fleet.Calls(); len(calls) != 3 || calls[0] != "clear 2" || calls[1] != "clear 2" || calls[2] != "clear 2" {
		t.Fatalf("calls = %q", calls)
	}

	wantError(t, h.do("POST", "/api/clear-corrupted-session", ""), http.StatusBadRequest, "bad_body")
	wantError(t, h.do("POST", "/api/clear-corrupted-session", `{}`), http.StatusBadRequest, "bad_body")
	wantError(t, h.do("POST", "/api/clear-corrupted-session", `{"organization_id":"../x"}`), http.StatusBadRequest, "bad_id")
	// Only a string or a digits-only integer is an ID; other JSON values are
	// refused as a bad body naming the field, never turned into an ID.
	for _, v := range []string{`true`, `false`, `1e3`, `-5`, `1.5`, `2.0`, `2E0`, `-0`, `{}`, `[2]`} {
		e := wantError(t, h.do("POST", "/api/clear-corrupted-session", `{"organization_id":`+v+`}`), http.StatusBadRequest, "bad_body")
		if !strings.Contains(e.Error, "organization_id") {
			t.Fatalf("%s: message %q does not name organization_id", v, e.Error)
		}
	}
	wantError(t, h.do("POST", "/api/clear-corrupted-session", `{"organization_id":null}`), http.StatusBadRequest, "bad_body")
	wantError(t, h.do("POST", "/api/clear-corrupted-session", `{"organization_id":""}`), http.StatusBadRequest, "bad_id")
	wantError(t, h.do("POST", "/api/clear-corrupted-session", `{"organization_id":"2","x":1}`), http.StatusBadRequest, "bad_body")
	e := wantError(t, h.do("POST", "/api/clear-corrupted-session", `{"organization_id":"404"}`), http.StatusNotFound, "unknown_org")
	if !strings.Contains(e.Error, "404") {
		t.Fatalf("message %q does not name the organization", e.Error)
	}
	wantError(t, h.do("POST", "/api/clear-corrupted-session", `{"organization_id":"2"}`, "x-api-key", ""),
		http.StatusUnauthorized, "unauthorized")
	wantError(t, h.do("GET", "/api/clear-corrupted-session", ""), http.StatusMethodNotAllowed, "method_not_allowed")
}

func TestRequestLog(t *testing.T) {
	h := newHarness(t, testKey)
	h.do("POST", "/v1/orgs/2/stop", "")
	h.do("POST", "/api/clear-corrupted-session", `{"organization_id":"68e3f605f2d61bb5556b7b20"}`)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("log = %s", h.logs)
	}
	want := []map[string]any{
		{"level": "DEBUG", "method": "POST", "path": "/v1/orgs/2/stop", "status": float64(200), "org": "2"},
		{"level": "DEBUG", "method": "POST", "path": "/api/clear-corrupted-session", "status": float64(200), "org": "68e3f605f2d61bb5556b7b20"},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("log line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
	}
}

// Before the state is loaded only the probes answer: a start racing the
// boot must not register over a saved hold.
func TestBootingGate(t *testing.T) {
	h := newHarness(t, testKey)
	h.fleet.setReady(fleet.ErrBooting)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/orgs"}, {"GET", "/v1/orgs/2"}, {"POST", "/v1/orgs/2/start"}, {"DELETE", "/v1/orgs/2"},
		{"POST", "/api/clear-corrupted-session"}, {"GET", "/nope"},
	} {
		rec := h.do(c.method, c.path, "")
		wantError(t, rec, http.StatusServiceUnavailable, "booting")
		if rec.Header().Get("Retry-After") != "1" {
			t.Fatalf("%s %s: Retry-After %q", c.method, c.path, rec.Header().Get("Retry-After"))
		}
	}
	if calls := h.fleet.Calls(); len(calls) != 0 {
		t.Fatalf("the fleet was called while booting: %v", calls)
	}
	if rec := h.do("GET", "/healthz", "", "x-api-key", ""); rec.Code != http.StatusOK {
		t.Fatalf("healthz while booting: %d", rec.Code)
	}
	wantError(t, h.do("GET", "/readyz", "", "x-api-key", ""), http.StatusServiceUnavailable, "booting")

	h.fleet.setReady(nil)
	rec := h.do("GET", "/readyz", "", "x-api-key", "")
	if rec.Code != http.StatusOK || decodeAs[map[string]string](t, rec)["status"] != "ready" {
		t.Fatalf("readyz when ready: %d", rec.Code)
	}
	h.fleet.setReady(fmt.Errorf("saving state fails for 1 organizations: %w", fleet.ErrNotSaved))
	wantError(t, h.do("GET", "/readyz", ""), http.StatusServiceUnavailable, "persist_failed")
	// A failing disk does not stop reads.
	if rec := h.do("GET", "/v1/orgs/2", ""); rec.Code != http.StatusOK {
		t.Fatalf("get while commits fail: %d", rec.Code)
	}
}

func TestStartBody(t *testing.T) {
	h := newHarness(t, testKey)
	if rec := h.do("POST", "/v1/orgs/9/start", `{"force":true}`); rec.Code != http.StatusAccepted {
		t.Fatalf("start with force: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("POST", "/v1/orgs/9/start", `{}`); rec.Code != http.StatusAccepted {
		t.Fatalf("start with an empty object: %d %s", rec.Code, rec.Body)
	}
	if calls := h.fleet.Calls(); !slices.Equal(calls, []string{"start 9 force", "start 9"}) {
		t.Fatalf("calls %v", calls)
	}
	wantError(t, h.do("POST", "/v1/orgs/9/start", `{"force":"yes"}`), http.StatusBadRequest, "bad_body")
}

func TestNotSavedIs503(t *testing.T) {
	h := newHarness(t, testKey)
	h.fleet.err = fleet.ErrNotSaved
	rec := h.do("POST", "/v1/orgs/2/stop", "")
	e := wantError(t, rec, http.StatusServiceUnavailable, "persist_failed")
	if rec.Header().Get("Retry-After") == "" || !strings.Contains(e.Error, "retried") {
		t.Fatalf("answer %+v, Retry-After %q", e, rec.Header().Get("Retry-After"))
	}
}

// A proxy no start could use is refused at the API with one sentence
// naming what is wrong, and never reaches the fleet (it used to answer 202
// and then crash-loop the organization).
func TestStartRefusesImpossibleProxies(t *testing.T) {
	h := newHarness(t, testKey)
	long := strings.Repeat(strings.Repeat("a", 60)+".", 5) + "com"
	for proxyURL, want := range map[string]string{
		"socks5://u:s3cret@h:99999":                           `port "99999" is not a number from 1 to 65535`,
		"socks5://u:s3cret@h:0":                               `port "0" is not a number from 1 to 65535`,
		"http://u:s3cret@h:70000":                             `port "70000" is not a number from 1 to 65535`,
		"socks5://u:s3cret@:1080":                             "needs a host and a port",
		"socks5://u:s3cret@" + long + ":1080":                 "host name is 308 characters long: at most 253",
		"socks5://u:s3cret@" + strings.Repeat("b", 64) + ":1": "label of 64 characters: at most 63",
	} {
		body, _ := json.Marshal(map[string]string{"proxy": proxyURL})
		e := wantError(t, h.do("POST", "/v1/orgs/9/start", string(body)), http.StatusBadRequest, "bad_body")
		if !strings.Contains(e.Error, "proxy: ") || !strings.Contains(e.Error, want) || strings.Contains(e.Error, "s3cret") {
			t.Errorf("%s: answered %q, want a sentence saying %q without the password", proxyURL, e.Error, want)
		}
	}
	if calls := h.fleet.Calls(); len(calls) != 0 {
		t.Fatalf("refused proxies reached the fleet: %v", calls)
	}
}
