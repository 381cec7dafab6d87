package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// noWhatsApp is the error a worker reports on a host that cannot resolve
// WhatsApp's address, as a fresh `make run` in a sandbox gets it.
const noWhatsApp = `start session: start 2: connect for QR pairing: failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "https://web.whatsapp.com/ws/chat": dial tcp: lookup web.whatsapp.com on 10.255.255.53:53: no such host`

func TestStatusTable(t *testing.T) {
	now := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	cases := []struct {
		name  string
		snaps []state.Snapshot
		want  string
	}{{
		name: "connected for minutes, with trips and an outbox",
		snaps: []state.Snapshot{{
			OrganizationID: "2", Status: state.Connected, JID: "573001234567@s.whatsapp.net",
			ConnectedSince: at(-3*time.Minute - 12*time.Second - 400*time.Millisecond),
			BadMAC:         state.BadMAC{Count: 2, Trips: 1},
			Outbox:         state.Outbox{Queued: 3, SentToday: 120, FailedToday: 1},
		}},
		want: `
ORG  STATUS     SINCE  JID                          BAD MAC  COOLDOWN  OUTBOX                        REASON
2    connected  3m12s  573001234567@s.whatsapp.net  2/1      -         3 queued, 120 sent, 1 failed  -
`,
	}, {
		name: "only a connection is dated; a cooldown counts down, rounded up",
		snaps: []state.Snapshot{
			{OrganizationID: "a", Status: state.Cooldown, CooldownUntil: at(4*time.Minute + 29*time.Second + 100*time.Millisecond)},
			// connected_since stays while disconnected, but it does not
			// date the disconnection.
			{OrganizationID: "b", Status: state.Disconnected, ConnectedSince: at(-time.Hour)},
			{OrganizationID: "c", Status: state.Banned, CooldownUntil: at(26*time.Hour + 30*time.Minute)},
			{OrganizationID: "d", Status: state.QRRequired, CooldownUntil: at(-time.Second)},
		},
		want: `
ORG  STATUS        SINCE  JID  BAD MAC  COOLDOWN  OUTBOX                      REASON
a    cooldown      -      -    0/0      4m30s     0 queued, 0 sent, 0 failed  -
b    disconnected  -      -    0/0      -         0 queued, 0 sent, 0 failed  -
c    banned        -      -    0/0      1d2h      0 queued, 0 sent, 0 failed  -
d    qr_required   -      -    0/0      -         0 queued, 0 sent, 0 failed  -
`,
	}, {
		name: "numeric IDs in numeric order, ahead of the others",
		snaps: []state.Snapshot{
			{OrganizationID: "b1", Status: state.Stopped},
			{OrganizationID: "10", Status: state.Connected, ConnectedSince: at(-2*time.Hour - 5*time.Minute - 59*time.Second)},
			{OrganizationID: "1a", Status: state.Queued},
			{OrganizationID: "2", Status: state.Connected, ConnectedSince: at(-45 * time.Second)},
		},
		want: `
ORG  STATUS     SINCE  JID  BAD MAC  COOLDOWN  OUTBOX                      REASON
2    connected  45s    -    0/0      -         0 queued, 0 sent, 0 failed  -
10   connected  2h5m   -    0/0      -         0 queued, 0 sent, 0 failed  -
1a   queued     -      -    0/0      -         0 queued, 0 sent, 0 failed  -
b1   stopped    -      -    0/0      -         0 queued, 0 sent, 0 failed  -
`,
	}, {
		name: "a daily limit reached waits for the next local day",
		snaps: []state.Snapshot{
			{OrganizationID: "2", Status: state.Connected, ConnectedSince: at(-time.Minute),
				Outbox:  state.Outbox{Queued: 4, SentToday: 30},
				Sending: state.Sending{LimitToday: 30, SentToday: 30, NextWindow: at(5*time.Hour + 10*time.Minute)}},
			{OrganizationID: "3", Status: state.Connected, ConnectedSince: at(-time.Minute),
				Sending: state.Sending{LimitToday: 1000, SentToday: 7}},
		},
		want: `
ORG  STATUS     SINCE  JID  BAD MAC  COOLDOWN  OUTBOX                                                       REASON
2    connected  1m0s   -    0/0      -         4 queued, 30 sent, 0 failed; limit 30/30 today, waits 5h10m  -
3    connected  1m0s   -    0/0      -         0 queued, 0 sent, 0 failed; limit 7/1000 today               -
`,
	}, {
		name:  "a clock that stepped back",
		snaps: []state.Snapshot{{OrganizationID: "2", Status: state.Connected, ConnectedSince: at(time.Minute)}},
		want: `
ORG  STATUS     SINCE  JID  BAD MAC  COOLDOWN  OUTBOX                      REASON
2    connected  0s     -    0/0      -         0 queued, 0 sent, 0 failed  -
`,
	}, {
		// A new user saw "queued" for 25 s and then "failed" with no word
		// of why; the table now says it, and an error got past is history.
		name: "why an organization is not working",
		snaps: []state.Snapshot{
			{OrganizationID: "1", Status: state.Queued, RetryCount: 2, LastEvent: "start_failed", LastError: noWhatsApp},
			{OrganizationID: "2", Status: state.Failed, RetryCount: 5, LastEvent: "start_failed", LastError: noWhatsApp},
			{OrganizationID: "3", Status: state.Failed, LastEvent: "proxy_unresolved", LastError: "lookup px.invalid: no such host"},
			{OrganizationID: "4", Status: state.LoggedOut, LastEvent: "device_removed", LastError: noWhatsApp},
			{OrganizationID: "5", Status: state.Connected, ConnectedSince: at(-time.Minute), LastError: noWhatsApp},
			{OrganizationID: "6", Status: state.Queued, WaitingFor: "max_live"},
			{OrganizationID: "7", Status: state.Queued, RetryCount: 1, LastError: noWhatsApp, WaitingFor: "turn"},
			{OrganizationID: "8", Status: state.Queued, WaitingFor: "start_gap"},
		},
		want: `
ORG  STATUS      SINCE  JID  BAD MAC  COOLDOWN  OUTBOX                      REASON
1    queued      -      -    0/0      -         0 queued, 0 sent, 0 failed  failed 2 times: cannot reach WhatsApp: DNS lookup of web.whatsapp.com failed (no such host)
2    failed      -      -    0/0      -         0 queued, 0 sent, 0 failed  failed 5 times: cannot reach WhatsApp: DNS lookup of web.whatsapp.com failed (no such host)
3    failed      -      -    0/0      -         0 queued, 0 sent, 0 failed  DNS lookup of px.invalid failed (no such host)
4    logged_out  -      -    0/0      -         0 queued, 0 sent, 0 failed  device_removed
5    connected   1m0s   -    0/0      -         0 queued, 0 sent, 0 failed  -
6    queued      -      -    0/0      -         0 queued, 0 sent, 0 failed  waiting for a slot: workers.max_live workers are live
7    queued      -      -    0/0      -         0 queued, 0 sent, 0 failed  failed once: cannot reach WhatsApp: DNS lookup of web.whatsapp.com failed (no such host); waiting its turn: workers start one at a time, workers.start_gap apart
8    queued      -      -    0/0      -         0 queued, 0 sent, 0 failed  -
`,
	}, {
		name: "a cluster names each organization's node",
		snaps: []state.Snapshot{
			{OrganizationID: "2", Status: state.Connected, ConnectedSince: at(-time.Minute), Node: "vps-1"},
			{OrganizationID: "3", Status: state.QRRequired, Node: "vps-2"},
		},
		want: `
ORG  NODE   STATUS       SINCE  JID  BAD MAC  COOLDOWN  OUTBOX                      REASON
2    vps-1  connected    1m0s   -    0/0      -         0 queued, 0 sent, 0 failed  -
3    vps-2  qr_required  -      -    0/0      -         0 queued, 0 sent, 0 failed  -
`,
	}, {
		name: "no organizations",
		want: `
ORG  STATUS  SINCE  JID  BAD MAC  COOLDOWN  OUTBOX  REASON
`,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printTable(&out, c.snaps, now); err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(c.want, "\n"); out.String() != want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), want)
			}
		})
	}
}

// Scripts parse `status -json`: it stays the status objects exactly as the
// API sends them, a list without ORG and one object with it, while the
// plain command shows the table.
func TestStatusJSONForScripts(t *testing.T) {
	since := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	list := []state.Snapshot{{OrganizationID: "2", Status: state.Connected, JID: "57300@s.whatsapp.net",
		ConnectedSince: &since, BadMAC: state.BadMAC{Count: 1, Trips: 1}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/orgs":
			json.NewEncoder(w).Encode(list)
		case "/v1/orgs/2":
			json.NewEncoder(w).Encode(list[0])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cfg := filepath.Join(t.TempDir(), "c.toml")
	body := "state_dir = \"" + t.TempDir() + "\"\n[api]\nlisten = \"" + strings.TrimPrefix(srv.URL, "http://") + "\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WA_SIDECAR_API_KEY", "")
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := dispatch(append(args, "-config", cfg), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	indented := func(v any) string {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	if got, want := run("status", "-json"), indented(list); got != want {
		t.Errorf("status -json:\n%s\nwant\n%s", got, want)
	}
	if got, want := run("status", "2", "-json"), indented(list[0]); got != want {
		t.Errorf("status 2 -json:\n%s\nwant\n%s", got, want)
	}
	for _, args := range [][]string{{"status"}, {"status", "2"}} {
		got := run(args...)
		if lines := strings.Split(strings.TrimSpace(got), "\n"); len(lines) != 2 ||
			!strings.HasPrefix(lines[0], "ORG ") || !strings.Contains(lines[1], "57300@s.whatsapp.net  1/1") {
			t.Errorf("%v: want a header and one row, got\n%s", args, got)
		}
	}
}
