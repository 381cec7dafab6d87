package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// scriptedAPI answers GET /v1/orgs/2 with the next snapshot of a script,
// the last one for ever after, and counts the requests.
type scriptedAPI struct {
	mu       sync.Mutex
	script   []state.Snapshot
	requests int
}

func (a *scriptedAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.URL.Path != "/v1/orgs/2" {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"organization 9 is not registered","code":"unknown_org"}`))
		return
	}
	s := a.script[min(a.requests, len(a.script)-1)]
	a.requests++
	s.OrganizationID = "2"
	json.NewEncoder(w).Encode(s)
}

func (a *scriptedAPI) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

func startScripted(t *testing.T, script ...state.Snapshot) (*scriptedAPI, *apiclient.Client) {
	api := &scriptedAPI{script: script}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, apiclient.New(strings.TrimPrefix(srv.URL, "http://"), "")
}

// rendered is the block printQR draws for code.
func rendered(t *testing.T, code string) string {
	var b bytes.Buffer
	if err := printQR(&b, state.Snapshot{QRCode: code}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A closed tick channel never blocks, so the script alone paces the loop.
func closedTicks() <-chan time.Time {
	ch := make(chan time.Time)
	close(ch)
	return ch
}

// bounded makes a loop that misses its end fail the test rather than hang it.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestQRRedrawsEachRotationUntilConnected(t *testing.T) {
	qr := func(code string) state.Snapshot { return state.Snapshot{Status: state.QRRequired, QRCode: code} }
	script := []state.Snapshot{
		{Status: state.Starting},
		qr("2@first"), qr("2@first"),
		qr("2@second"), qr("2@second"), qr("2@second"),
		{Status: state.Connected, JID: "573001234567@s.whatsapp.net"},
		qr("2@after-the-end"),
	}
	for _, tty := range []bool{true, false} {
		api, c := startScripted(t, script...)
		var out bytes.Buffer
		if err := followQR(bounded(t), c, "2", closedTicks(), &out, view{tty: tty}); err != nil {
			t.Fatalf("tty %v: %v", tty, err)
		}
		got := out.String()
		if api.count() != 7 {
			t.Errorf("tty %v: %d requests, want 7 (it must stop at connected)", tty, api.count())
		}
		first, second := rendered(t, "2@first"), rendered(t, "2@second")
		if strings.Count(got, first) != 1 || strings.Count(got, second) != 1 || strings.Contains(got, rendered(t, "2@after-the-end")) {
			t.Errorf("tty %v: want each code drawn once:\n%s", tty, got)
		}
		wait := "organization 2 is starting; waiting for a QR\n"
		done := "organization 2 is connected as 573001234567@s.whatsapp.net\n"
		if i, j := strings.Index(got, first), strings.Index(got, second); !strings.HasPrefix(got, wait) || i > j || !strings.HasSuffix(got, second+done) {
			t.Errorf("tty %v: out of order:\n%s", tty, got)
		}
		clears, separators := strings.Count(got, clearScreen), strings.Count(got, strings.Repeat("-", 40)+"\n")
		if tty && (clears != 2 || separators != 0) || !tty && (clears != 0 || separators != 1) {
			t.Errorf("tty %v: %d screen clears and %d separators", tty, clears, separators)
		}
	}
}

// A start that keeps failing is retried before it is given up: while
// waiting, qr says why on the first failure (and again when the count
// changes), not only in the refusal after the last one.
func TestQRWaitingSaysWhyStartsFail(t *testing.T) {
	const dns = `start session: start 2: connect for QR pairing: failed to dial whatsapp web websocket: dial tcp: lookup web.whatsapp.com on 10.255.255.53:53: no such host`
	_, c := startScripted(t,
		state.Snapshot{Status: state.Queued},
		state.Snapshot{Status: state.Starting},
		state.Snapshot{Status: state.Queued, RetryCount: 1, LastError: dns},
		state.Snapshot{Status: state.Queued, RetryCount: 1, LastError: dns},
		state.Snapshot{Status: state.Starting, RetryCount: 1, LastError: dns},
		state.Snapshot{Status: state.Queued, RetryCount: 2, LastError: dns},
		state.Snapshot{Status: state.Failed, RetryCount: 3, LastError: dns},
	)
	var out bytes.Buffer
	err := followQR(bounded(t), c, "2", closedTicks(), &out, view{})
	if err == nil || !strings.Contains(err.Error(), "failed 3 times: cannot reach WhatsApp") {
		t.Fatalf("err = %v, want the refusal with the reason", err)
	}
	why := "cannot reach WhatsApp: DNS lookup of web.whatsapp.com failed (no such host)"
	want := "organization 2 is queued; waiting for a QR\n" +
		"organization 2 is starting; waiting for a QR\n" +
		"organization 2 is queued (failed once: " + why + "); waiting for a QR\n" +
		"organization 2 is starting (failed once: " + why + "); waiting for a QR\n" +
		"organization 2 is queued (failed 2 times: " + why + "); waiting for a QR\n"
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestQRGivesUpWhereNoCodeWillCome(t *testing.T) {
	cases := []struct {
		script []state.Snapshot
		want   string
	}{
		{[]state.Snapshot{{Status: state.QRRequired, QRCode: "2@x"}, {Status: state.LoggedOut}},
			"organization 2 is logged_out, so no QR will come: run 'wa-supervisor start 2' first"},
		{[]state.Snapshot{{Status: state.LoggedOut, LastEvent: "device_removed"}},
			"organization 2 is logged_out (device_removed), so no QR will come"},
		// The refusal says why it failed, not only that it did.
		{[]state.Snapshot{{Status: state.Failed, RetryCount: 5, LastEvent: "start_failed",
			LastError: `start session: start 2: connect for QR pairing: failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "https://web.whatsapp.com/ws/chat": dial tcp: lookup web.whatsapp.com on 10.255.255.53:53: no such host`}},
			"organization 2 is failed (failed 5 times: cannot reach WhatsApp: DNS lookup of web.whatsapp.com failed (no such host)), so no QR will come: run 'wa-supervisor start 2' first"},
		{[]state.Snapshot{{Status: state.Stopped}}, "organization 2 is stopped, so no QR will come"},
		{[]state.Snapshot{{Status: state.Banned}}, "organization 2 is banned"},
		{[]state.Snapshot{{Status: state.Replaced}}, "organization 2 is replaced"},
		{[]state.Snapshot{{Status: state.Failed}}, "organization 2 is failed"},
	}
	for _, c := range cases {
		_, client := startScripted(t, c.script...)
		err := followQR(bounded(t), client, "2", closedTicks(), &bytes.Buffer{}, view{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.script[len(c.script)-1].Status, err, c.want)
		}
	}
	_, client := startScripted(t, state.Snapshot{Status: state.QRRequired})
	err := followQR(bounded(t), client, "9", closedTicks(), &bytes.Buffer{}, view{})
	if !apiclient.IsCode(err, "unknown_org") {
		t.Errorf("unknown org: %v", err)
	}
}

// Between ticks the loop waits on the context alone, which is what Ctrl-C
// cancels.
func TestQRStopsWhenCancelled(t *testing.T) {
	api, c := startScripted(t, state.Snapshot{Status: state.QRRequired, QRCode: "2@x"})
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := followQR(ctx, c, "2", nil, pw, view{})
		pw.Close() // a loop that ended early must not leave the reader below blocked
		done <- err
	}()
	// The code's last line read means the loop has moved on to its wait:
	// no tick will ever come, so only the context can end it.
	sc := bufio.NewScanner(pr)
	for sc.Scan() && !strings.Contains(sc.Text(), "Waiting for the link") {
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the context was cancelled")
	}
	if n := api.count(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

// qr -json prints the status object each time the code or the status
// changes, one per line, for a program that draws the code itself.
func TestQRJSONLines(t *testing.T) {
	_, c := startScripted(t,
		state.Snapshot{Status: state.Starting},
		state.Snapshot{Status: state.QRRequired, QRCode: "2@a"},
		state.Snapshot{Status: state.QRRequired, QRCode: "2@a"},
		state.Snapshot{Status: state.QRRequired, QRCode: "2@b"},
		state.Snapshot{Status: state.Connected, JID: "57300@s.whatsapp.net"})
	var out bytes.Buffer
	if err := followQR(bounded(t), c, "2", closedTicks(), &out, view{json: true}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var s state.Snapshot
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, string(s.Status)+" "+s.QRCode)
	}
	if want := "starting |qr_required 2@a|qr_required 2@b|connected "; strings.Join(got, "|") != want {
		t.Errorf("got %q, want %q", strings.Join(got, "|"), want)
	}
}
