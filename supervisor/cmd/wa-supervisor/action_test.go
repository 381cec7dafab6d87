package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// checkedAt is when the fake API says a number was checked.
var checkedAt = clocktest.Origin().Truncate(time.Second)

// fakeAPI answers the routes the action commands call, as the status API
// does, and keeps the recipients of the broadcast it was asked for.
type fakeAPI struct {
	mu         sync.Mutex
	recipients []string
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	snap := func(s state.Snapshot) { s.OrganizationID = "2"; json.NewEncoder(w).Encode(s) }
	bc := statusapi.BroadcastBody{ID: "bc_1", Status: "sending", Total: 3, Pending: 3}
	switch r.Method + " " + r.URL.Path {
	case "POST /v1/orgs/2/start":
		snap(state.Snapshot{Status: state.Queued, LastEvent: "start"})
	case "POST /v1/orgs/2/stop":
		snap(state.Snapshot{Status: state.Stopped, LastEvent: "stop"})
	case "POST /v1/orgs/2/logout":
		snap(state.Snapshot{Status: state.LoggedOut, LastEvent: "logout"})
	case "POST /v1/orgs/2/clear":
		until := time.Now().Add(2*time.Minute + 30*time.Second)
		snap(state.Snapshot{Status: state.Cooldown, LastEvent: "session_cleared", CooldownUntil: &until})
	case "DELETE /v1/orgs/2":
		w.WriteHeader(http.StatusNoContent)
	case "POST /v1/orgs/2/pair-phone":
		json.NewEncoder(w).Encode(map[string]string{"code": "ABCD-EFGH"})
	case "POST /v1/orgs/2/broadcasts/bc_1/cancel":
		bc.Status, bc.Sent, bc.Failed, bc.Pending = "cancelled", 1, 2, 0
		json.NewEncoder(w).Encode(bc)
	case "POST /v1/orgs/2/broadcasts":
		var req statusapi.BroadcastRequest
		json.NewDecoder(r.Body).Decode(&req)
		a.mu.Lock()
		a.recipients = req.Recipients
		a.mu.Unlock()
		json.NewEncoder(w).Encode(bc)
	case "POST /v1/orgs/2/messages":
		json.NewEncoder(w).Encode(statusapi.MessageBody{ID: "msg_1", To: "573001234567", Status: "queued"})
	case "POST /v1/orgs/2/contacts/check":
		json.NewEncoder(w).Encode(statusapi.CheckResponse{Results: []statusapi.CheckResult{
			{Input: "573001234567", OnWhatsApp: true, JID: "573001234567@s.whatsapp.net", CheckedAt: checkedAt}}})
	case "GET /v1/orgs/2/broadcasts/bc_1":
		json.NewEncoder(w).Encode(bc)
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"organization 99 is not registered; POST /v1/orgs/99/start registers it","code":"unknown_org"}`))
	}
}

// fakeConfig starts a fakeAPI and writes a config that points at it.
func fakeConfig(t *testing.T) (*fakeAPI, string) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	cfg := filepath.Join(t.TempDir(), "c.toml")
	body := "state_dir = \"" + t.TempDir() + "\"\n[api]\nlisten = \"" + strings.TrimPrefix(srv.URL, "http://") +
		"\"\n[messages]\ndefault_country = \"CO\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WA_SIDECAR_API_KEY", "")
	return api, cfg
}

// start, stop, clear and the rest print one line each, as send does, with
// the next command where there is one; -json gives the API's object.
func TestActionsPrintOneLine(t *testing.T) {
	_, cfg := fakeConfig(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"start", "2"}, "2 queued (a QR follows: run 'wa-supervisor qr 2')\n"},
		{[]string{"stop", "2"}, "2 stopped ('wa-supervisor start 2' starts it again)\n"},
		{[]string{"logout", "2"}, "2 logged_out ('wa-supervisor start 2' starts it again)\n"},
		{[]string{"clear", "2"}, "2 cooldown: session_cleared (held for 2m30s)\n"},
		{[]string{"delete", "2"}, "2 deleted (its session was archived)\n"},
		{[]string{"pair-phone", "2", "+573001234567"}, "On the phone: WhatsApp > Linked devices > Link with phone number, then enter ABCD-EFGH\n"},
		{[]string{"cancel", "2", "bc_1"}, "broadcast bc_1 cancelled: sent 1/3, failed 2, pending 0\n"},
		{[]string{"send", "2", "573001234567", "hi"}, "msg_1 queued\n"},
		{[]string{"check", "2", "573001234567"}, "573001234567 on_whatsapp 573001234567@s.whatsapp.net " + checkedAt.Format(time.RFC3339) + "\n"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := dispatch(append(c.args, "-config", cfg), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, errb.String())
		}
		// The cooldown counts down from the fake's clock: allow a second.
		if got := out.String(); got != c.want && got != strings.Replace(c.want, "2m30s", "2m29s", 1) {
			t.Errorf("%v:\n got %q\nwant %q", c.args, got, c.want)
		}
		out.Reset()
		if code := dispatch(append(c.args, "-json", "-config", cfg), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%v -json: exit %d: %s", c.args, code, errb.String())
		}
		var obj map[string]any
		if err := json.Unmarshal(out.Bytes(), &obj); err != nil || len(obj) == 0 {
			t.Errorf("%v -json: not one JSON object: %v\n%s", c.args, err, out.String())
		}
	}
}

// A refusal that named an HTTP route names the CLI command instead.
func TestHintsAreCLICommands(t *testing.T) {
	_, cfg := fakeConfig(t)
	for _, args := range [][]string{{"status", "99"}, {"stop", "99"}, {"qr", "99"}, {"cancel", "99", "bc_1"}} {
		var out, errb bytes.Buffer
		code := dispatch(append(args, "-config", cfg), strings.NewReader(""), &out, &errb)
		want := "organization 99 is not registered; run 'wa-supervisor start 99' to register it"
		if code != 1 || !strings.Contains(errb.String(), want) || strings.Contains(errb.String(), "POST") {
			t.Errorf("%v: exit %d, stderr %q; want %q", args, code, errb.String(), want)
		}
	}
}

func TestActionLine(t *testing.T) {
	now := clocktest.Origin()
	cases := []struct {
		cmd  string
		s    state.Snapshot
		want string
	}{
		{"start", state.Snapshot{Status: state.Starting}, "2 starting (a QR follows: run 'wa-supervisor qr 2')"},
		{"start", state.Snapshot{Status: state.QRRequired}, "2 qr_required (run 'wa-supervisor qr 2')"},
		{"start", state.Snapshot{Status: state.Connected, JID: "57300@s.whatsapp.net"}, "2 connected as 57300@s.whatsapp.net"},
		{"start", state.Snapshot{Status: state.Restoring, JID: "57300@s.whatsapp.net"}, "2 restoring (resuming its linked session)"},
		{"start", state.Snapshot{Status: state.Queued, JID: "57300@s.whatsapp.net"}, "2 queued"},
		{"start", state.Snapshot{Status: state.Failed, RetryCount: 1, LastError: "dial tcp 127.0.0.1:1080: connect: connection refused"},
			"2 failed: failed once: connection to 127.0.0.1:1080 failed (connection refused) (fix the cause, then 'wa-supervisor start 2')"},
	}
	for _, c := range cases {
		c.s.OrganizationID = "2"
		if got := actionLine(c.cmd, c.s, now); got != c.want {
			t.Errorf("%s %s:\n got %q\nwant %q", c.cmd, c.s.Status, got, c.want)
		}
	}
}

func TestBrief(t *testing.T) {
	cases := map[string]string{
		noWhatsApp: "cannot reach WhatsApp: DNS lookup of web.whatsapp.com failed (no such host)",
		`connect for QR pairing: failed to dial whatsapp web websocket: Get "https://web.whatsapp.com/ws/chat": dial tcp 157.240.1.1:443: i/o timeout`: "cannot reach WhatsApp: connection to 157.240.1.1:443 failed (i/o timeout)",
		"socks connect tcp 127.0.0.1:9->web.whatsapp.com:443: dial tcp 127.0.0.1:9: connect: connection refused":                                       "cannot reach WhatsApp: connection to 127.0.0.1:9 failed (connection refused)",
		"worker exited: signal: killed": "worker exited: signal: killed",
	}
	for in, want := range cases {
		if got := brief(in); got != want {
			t.Errorf("brief(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

// A number given twice, in one spelling or two, is named with its lines
// on standard error; the whole list still goes to the API, which sends
// each number once.
func TestBroadcastReportsDuplicates(t *testing.T) {
	api, cfg := fakeConfig(t)
	list := "# customers\n573001290001\n\n(300) 129-0002\n+57 300 129 0001\n573001290001\n3001290002\n"
	var errb bytes.Buffer
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- dispatch([]string{"broadcast", "2", "-", "news", "-config", cfg}, strings.NewReader(list), pw, &syncWriter{w: &errb})
		pw.Close()
	}()
	// The fake's job never ends: read to the first progress line, then
	// interrupt as an operator's Ctrl-C does.
	sc := bufio.NewScanner(pr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "sending:") {
			break
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	var code int
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("broadcast still following after Ctrl-C")
	}
	if code != 130 {
		t.Errorf("exit %d after Ctrl-C, want 130", code)
	}
	if want := []string{"broadcast bc_1: 3 recipients", "sending: sent 0/3, failed 0, pending 3"}; strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout %q", lines)
	}
	wantErr := "-: line 5: +57 300 129 0001 is 573001290001 of line 2 (+573001290001); it is sent once\n" +
		"-: line 6: 573001290001 repeats line 2; it is sent once\n" +
		"-: line 7: 3001290002 is (300) 129-0002 of line 4 (+573001290002); it is sent once\n" +
		"stopped following bc_1; the broadcast goes on ('wa-supervisor cancel 2 bc_1' stops it)\n"
	if got := errb.String(); got != wantErr {
		t.Errorf("stderr\n%s\nwant\n%s", got, wantErr)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.recipients) != 5 {
		t.Errorf("the API got %q, want the 5 numbers as written", api.recipients)
	}
}

// syncWriter lets the test read what a command writes from another goroutine.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
