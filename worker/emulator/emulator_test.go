package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/libsignal/logger"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/proto"

	"github.com/wa-sidecar/wa-sidecar/worker/emulatorlink"
)

const waitTimeout = 30 * time.Second

// signalLog captures libsignal's process-global logger, where the Bad MAC
// shows itself ("mismatching MAC in signal message").
var signalLog = &lineRecorder{}

func TestMain(m *testing.M) {
	var l logger.Loggable = signalLog
	logger.Setup(&l)
	// Keepalives every few dozen milliseconds let every test exercise the
	// w:p iq; set before any client exists, as the client reads them unlocked.
	whatsmeow.KeepAliveIntervalMin = 50 * time.Millisecond
	whatsmeow.KeepAliveIntervalMax = 100 * time.Millisecond
	// A proxy from the environment must not catch the emulator traffic
	// (HTTPClient builds its own Transport): point it at a dead port.
	for _, name := range []string{"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"} {
		os.Setenv(name, "http://127.0.0.1:9")
	}
	os.Unsetenv("NO_PROXY")
	os.Unsetenv("no_proxy")
	os.Exit(m.Run())
}

type lineRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *lineRecorder) add(level, caller, msg string) {
	r.mu.Lock()
	r.lines = append(r.lines, level+" "+caller+": "+msg)
	r.mu.Unlock()
}
func (r *lineRecorder) Debug(string, string)       {}
func (r *lineRecorder) Info(string, string)        {}
func (r *lineRecorder) Warning(caller, msg string) { r.add("WARN", caller, msg) }
func (r *lineRecorder) Error(caller, msg string)   { r.add("ERROR", caller, msg) }
func (r *lineRecorder) Configure(string)           {}

// clientLogger records a whatsmeow client's warnings and errors (and prints
// everything with -v).
type clientLogger struct {
	rec    *lineRecorder
	module string
}

func (l clientLogger) logf(level, msg string, args []any) {
	line := fmt.Sprintf(msg, args...)
	if level == "WARN" || level == "ERROR" {
		l.rec.add(level, l.module, line)
	}
	if testing.Verbose() && level != "DEBUG" {
		fmt.Fprintf(os.Stderr, "%s [%s %s] %s\n", time.Now().Format("15:04:05.000"), l.module, level, line)
	}
}

func (l clientLogger) Warnf(msg string, args ...any)  { l.logf("WARN", msg, args) }
func (l clientLogger) Errorf(msg string, args ...any) { l.logf("ERROR", msg, args) }
func (l clientLogger) Infof(msg string, args ...any)  { l.logf("INFO", msg, args) }
func (l clientLogger) Debugf(msg string, args ...any) { l.logf("DEBUG", msg, args) }
func (l clientLogger) Sub(module string) waLog.Logger {
	return clientLogger{rec: l.rec, module: l.module + "/" + module}
}

func (r *lineRecorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// eventLog records a client's events without ever blocking its dispatcher.
type eventLog struct {
	mu     sync.Mutex
	events []any
	notify chan struct{}
}

func newEventLog(cli *whatsmeow.Client) *eventLog {
	el := &eventLog{notify: make(chan struct{}, 1)}
	cli.AddEventHandler(func(evt any) {
		el.mu.Lock()
		el.events = append(el.events, evt)
		el.mu.Unlock()
		select {
		case el.notify <- struct{}{}:
		default:
		}
	})
	return el
}

// waitFor returns the first event (from index from on) matching match, and
// the index after it.
func waitFor[T any](t *testing.T, el *eventLog, from int, match func(T) bool) (T, int) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		el.mu.Lock()
		for i := from; i < len(el.events); i++ {
			if evt, ok := el.events[i].(T); ok && (match == nil || match(evt)) {
				el.mu.Unlock()
				return evt, i + 1
			}
		}
		el.mu.Unlock()
		select {
		case <-el.notify:
		case <-deadline:
			var zero T
			t.Fatalf("no %T event within %s; got %s", zero, waitTimeout, el.summary())
			return zero, 0
		}
	}
}

func (el *eventLog) len() int {
	el.mu.Lock()
	defer el.mu.Unlock()
	return len(el.events)
}

func (el *eventLog) summary() string {
	el.mu.Lock()
	defer el.mu.Unlock()
	names := make([]string, len(el.events))
	for i, e := range el.events {
		names[i] = fmt.Sprintf("%T", e)
	}
	return strings.Join(names, ", ")
}

type harness struct {
	t         *testing.T
	srv       *Server
	base      string
	db        *sqlstore.Container
	clientLog *lineRecorder
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("EMULATOR_TRACE") != "" {
		level = slog.LevelDebug // every node, prekey uploads included
	} else if testing.Verbose() {
		level = slog.LevelInfo
	}
	srv, err := New(Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if unknown := srv.UnknownIQs(); len(unknown) > 0 {
			t.Errorf("emulator saw unknown iqs: %q", unknown)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	dsn := "file:" + filepath.Join(t.TempDir(), "client.db") +
		"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	db, err := sqlstore.New(context.Background(), "sqlite", dsn, waLog.Noop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &harness{t: t, srv: srv, base: "http://" + ln.Addr().String(), db: db, clientLog: &lineRecorder{}}
}

// client is a real whatsmeow client on a new store device, pointed at the emulator.
func (h *harness) client(dev *store.Device) (*whatsmeow.Client, *eventLog) {
	h.t.Helper()
	cli := whatsmeow.NewClient(dev, clientLogger{rec: h.clientLog, module: "client"})
	if err := emulatorlink.Configure(cli, h.base, ""); err != nil {
		h.t.Fatal(err)
	}
	el := newEventLog(cli)
	h.t.Cleanup(func() {
		cli.Disconnect()
		el.mu.Lock()
		defer el.mu.Unlock()
		for _, evt := range el.events {
			if timeout, ok := evt.(*events.KeepAliveTimeout); ok {
				h.t.Errorf("keepalive timed out: %+v", timeout)
			}
		}
	})
	return cli, el
}

// pair links a fresh client to phone through the QR flow and waits until it
// is logged in.
func (h *harness) pair(phone string) (*whatsmeow.Client, *eventLog, types.JID) {
	h.t.Helper()
	cli, el := h.client(h.db.NewDevice())
	qrs, err := cli.GetQRChannel(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	codes := make(chan string, 1)
	go func() {
		for item := range qrs {
			if item.Event == whatsmeow.QRChannelEventCode {
				select {
				case codes <- item.Code:
				default:
				}
			}
		}
	}()
	if err := cli.Connect(); err != nil {
		h.t.Fatal(err)
	}
	var code string
	select {
	case code = <-codes:
	case <-time.After(waitTimeout):
		h.t.Fatal("no QR code from the client")
	}
	if !strings.HasPrefix(code, "2@") {
		h.t.Fatalf("QR code %q does not start with a 2@ ref", code)
	}
	var scanned struct{ JID string }
	h.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": code, "phone": phone}, http.StatusOK, &scanned)
	success, next := waitFor(h.t, el, 0, func(*events.PairSuccess) bool { return true })
	if success.ID.String() != scanned.JID {
		h.t.Fatalf("PairSuccess for %s, scan answered %s", success.ID, scanned.JID)
	}
	waitFor(h.t, el, next, func(*events.Connected) bool { return true })
	h.awaitHistory(cli, el, next)
	return cli, el, success.ID
}

// awaitHistory waits, when the emulator sends history, for the phone's
// history notification that follows a client's first login and, unless
// the client leaves history to be downloaded by hand, for the download's
// HistorySync: both arrive in the background, and tests that wait for the
// next message or for no more events start after them.
func (h *harness) awaitHistory(cli *whatsmeow.Client, el *eventLog, from int) {
	h.t.Helper()
	if h.srv.History().Bytes == 0 {
		return
	}
	waitFor(h.t, el, from, isHistoryNotification)
	if !cli.ManualHistorySyncDownload {
		waitFor(h.t, el, from, func(*events.HistorySync) bool { return true })
	}
}

func isHistoryNotification(m *events.Message) bool {
	return m.Message.GetProtocolMessage().GetHistorySyncNotification() != nil
}

// control calls the control API and decodes the answer into out (if not nil).
func (h *harness) control(method, path string, body any, wantStatus int, out any) {
	h.t.Helper()
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.base+path, reader)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := emulatorlink.HTTPClient(strings.TrimPrefix(h.base, "http://")).Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

func TestPairingAndGoodMessage(t *testing.T) {
	h := newHarness(t)
	_, el, jid := h.pair("573007915262")
	if jid.User != "573007915262" || jid.Device != 1 {
		t.Fatalf("paired as %s, want 573007915262:1", jid)
	}
	waitFor(t, el, 0, func(*events.OfflineSyncCompleted) bool { return true })
	var devices []DeviceInfo
	h.control(http.MethodGet, "/control/devices", nil, http.StatusOK, &devices)
	if len(devices) != 1 || devices[0].JID != jid.String() || !devices[0].Connected {
		t.Fatalf("devices = %+v", devices)
	}

	from := el.len()
	for _, text := range []string{"hola", "segundo"} {
		var sent struct{ ID string }
		h.control(http.MethodPost, "/control/devices/573007915262/message",
			map[string]string{"from": "573001112222", "text": text}, http.StatusOK, &sent)
		msg, next := waitFor(t, el, from, func(*events.Message) bool { return true })
		from = next
		if msg.Info.ID != sent.ID || msg.Message.GetConversation() != text || msg.Info.Sender.User != "573001112222" {
			t.Fatalf("got message %s %q from %s, want %s %q", msg.Info.ID, msg.Message.GetConversation(), msg.Info.Sender, sent.ID, text)
		}
	}
}

// TestBadMAC corrupts first prekey messages (the peer has not heard back
// yet), then, once the client has answered, normal messages.
func TestBadMAC(t *testing.T) {
	h := newHarness(t)
	cli, el, _ := h.pair("573007915263")
	from := h.expectBadMACs("573007915263", el, 0, 3, "failed to decrypt prekey message: no valid sessions")

	// The session survives corrupted messages: a good one still decrypts.
	h.control(http.MethodPost, "/control/devices/573007915263/message",
		map[string]string{"from": defaultBadMACSender, "text": "fine again"}, http.StatusOK, nil)
	msg, from := waitFor(t, el, from, func(*events.Message) bool { return true })
	if msg.Message.GetConversation() != "fine again" {
		t.Fatalf("got %q after bad MACs", msg.Message.GetConversation())
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := cli.SendMessage(ctx, types.NewJID(defaultBadMACSender, types.DefaultUserServer),
		&waE2E.Message{Conversation: proto.String("reply")}); err != nil {
		t.Fatal(err)
	}
	h.expectBadMACs("573007915263", el, from, 2, "failed to decrypt normal message: no valid sessions")
}

// expectBadMACs asks for count corrupted messages and checks that each one
// fails the real MAC check: libsignal logs the mismatch and whatsmeow emits
// UndecryptableMessage{IsUnavailable: false} after logging clientError.
func (h *harness) expectBadMACs(phone string, el *eventLog, from, count int, clientError string) int {
	h.t.Helper()
	macLines := signalLog.count("mismatching MAC")
	clientLines := h.clientLog.count(clientError)
	var resp struct{ IDs []string }
	h.control(http.MethodPost, "/control/devices/"+phone+"/badmac", map[string]int{"count": count}, http.StatusOK, &resp)
	if len(resp.IDs) != count {
		h.t.Fatalf("badmac answered %d ids", len(resp.IDs))
	}
	for i := range count {
		var evt *events.UndecryptableMessage
		evt, from = waitFor(h.t, el, from, func(*events.UndecryptableMessage) bool { return true })
		if evt.IsUnavailable || evt.Info.ID != resp.IDs[i] {
			h.t.Fatalf("undecryptable %d: %+v, want id %s and IsUnavailable=false", i, evt.Info, resp.IDs[i])
		}
	}
	if got := signalLog.count("mismatching MAC") - macLines; got < count {
		h.t.Fatalf("libsignal logged %d MAC mismatches, want at least %d", got, count)
	}
	if got := h.clientLog.count(clientError) - clientLines; got != count {
		h.t.Fatalf("client logged %q %d times, want %d", clientError, got, count)
	}
	for _, id := range resp.IDs {
		poll(h.t, func() bool { return h.srv.RetryReceipts(id) == 1 }, "one retry receipt for "+id)
	}
	return from
}

// poll waits until cond holds, checking every few milliseconds.
func poll(t *testing.T, cond func() bool, what string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestSendIsDecryptedByRecipient(t *testing.T) {
	h := newHarness(t)
	cli, el, _ := h.pair("573007915264")
	peer := types.NewJID("573009998888", types.DefaultUserServer)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	onWA, err := cli.IsOnWhatsApp(ctx, []string{"+" + peer.User})
	if err != nil {
		t.Fatal(err)
	}
	if len(onWA) != 1 || !onWA[0].IsIn || onWA[0].JID != peer {
		t.Fatalf("IsOnWhatsApp = %+v", onWA)
	}
	first, err := cli.SendMessage(ctx, peer, &waE2E.Message{Conversation: proto.String("first")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, el, 0, func(r *events.Receipt) bool { return len(r.MessageIDs) > 0 && r.MessageIDs[0] == first.ID })
	// The peer answers, then the client replies on the established session.
	h.control(http.MethodPost, "/control/devices/573007915264/message",
		map[string]string{"from": peer.User, "text": "answer"}, http.StatusOK, nil)
	waitFor(t, el, 0, func(*events.Message) bool { return true })
	second, err := cli.SendMessage(ctx, peer, &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("second")}})
	if err != nil {
		t.Fatal(err)
	}
	var sent []Delivery
	h.control(http.MethodGet, "/control/devices/573007915264/sent", nil, http.StatusOK, &sent)
	if len(sent) != 2 || sent[0].ID != first.ID || sent[0].Text != "first" || sent[1].ID != second.ID ||
		sent[1].Text != "second" || sent[1].To != peer.User || sent[1].Device != cli.Store.GetJID().String() {
		t.Fatalf("sent = %+v", sent)
	}
}

// The controls a sender's tests need: a send refused with an error code, a
// resend of one ID shown once (and twice with raw), a read receipt.
func TestSendErrorsRawDeliveriesAndReceipts(t *testing.T) {
	h := newHarness(t)
	cli, el, _ := h.pair("573007915266")
	ctx := context.Background()
	peer := types.NewJID("573001113333", types.DefaultUserServer)
	h.control(http.MethodPost, "/control/devices/573007915266/send-error",
		map[string]any{"code": 463, "count": 1, "to": peer.User}, http.StatusOK, nil)
	_, err := cli.SendMessage(ctx, peer, &waE2E.Message{Conversation: proto.String("refused")})
	if !errors.Is(err, whatsmeow.ErrServerReturnedError) || !strings.HasSuffix(err.Error(), " 463") {
		t.Fatalf("armed refusal: %v", err)
	}
	id := cli.GenerateMessageID()
	for range 2 {
		if _, err := cli.SendMessage(ctx, peer, &waE2E.Message{Conversation: proto.String("once")}, whatsmeow.SendRequestExtra{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	var shown, raw []Delivery
	h.control(http.MethodGet, "/control/devices/573007915266/sent", nil, http.StatusOK, &shown)
	h.control(http.MethodGet, "/control/devices/573007915266/sent?raw=1", nil, http.StatusOK, &raw)
	if len(shown) != 1 || shown[0].ID != id || shown[0].Text != "once" || len(raw) != 2 || raw[1].ID != id {
		t.Fatalf("shown %+v, raw %+v", shown, raw)
	}
	h.control(http.MethodPost, "/control/devices/573007915266/receipts", map[string]string{"id": id, "type": "read"}, http.StatusOK, nil)
	waitFor(t, el, 0, func(r *events.Receipt) bool {
		return r.Type == types.ReceiptTypeRead && len(r.MessageIDs) == 1 && r.MessageIDs[0] == id
	})
	h.control(http.MethodPost, "/control/devices/573007915266/receipts", map[string]string{"id": "nope"}, http.StatusNotFound, nil)
	h.control(http.MethodPost, "/control/devices/573007915266/send-error", map[string]any{"code": 200}, http.StatusBadRequest, nil)
}

func TestLogoutThenPairAgainGetsNewDeviceID(t *testing.T) {
	h := newHarness(t)
	cli, el, jid := h.pair("573007915265")
	accountKey := bytes.Clone(cli.Store.Account.GetAccountSignatureKey())
	h.control(http.MethodPost, "/control/devices/573007915265/logout", nil, http.StatusOK, nil)
	out, _ := waitFor(t, el, 0, func(*events.LoggedOut) bool { return true })
	if out.OnConnect || out.Reason != events.ConnectFailureLoggedOut {
		t.Fatalf("LoggedOut = %+v, want OnConnect=false reason 401", out)
	}
	var devices []DeviceInfo
	h.control(http.MethodGet, "/control/devices", nil, http.StatusOK, &devices)
	if len(devices) != 0 {
		t.Fatalf("devices after logout = %+v", devices)
	}

	again, _, jid2 := h.pair("573007915265")
	if jid2.User != jid.User || jid2.Device != jid.Device+1 {
		t.Fatalf("second pairing is %s, want %s:%d", jid2, jid.User, jid.Device+1)
	}
	if !bytes.Equal(again.Store.Account.GetAccountSignatureKey(), accountKey) {
		t.Fatal("the phone's identity key changed between pairings")
	}
}

func TestClientLogout(t *testing.T) {
	h := newHarness(t)
	cli, _, _ := h.pair("573007915268")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := cli.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	var devices []DeviceInfo
	h.control(http.MethodGet, "/control/devices", nil, http.StatusOK, &devices)
	if len(devices) != 0 {
		t.Fatalf("devices after the client unlinked itself = %+v", devices)
	}
}

func TestRejectLogin(t *testing.T) {
	h := newHarness(t)
	_, el, _ := h.pair("573007915266")
	from := el.len()
	h.control(http.MethodPost, "/control/devices/573007915266/reject-login", nil, http.StatusOK, nil)
	out, _ := waitFor(t, el, from, func(*events.LoggedOut) bool { return true })
	if !out.OnConnect || out.Reason != events.ConnectFailureLoggedOut {
		t.Fatalf("LoggedOut = %+v, want OnConnect=true reason 401", out)
	}
}

// TestReplace checks that a replaced client stops (the server closes the
// socket after it handled the conflict) but stays linked: it can log in again.
func TestReplace(t *testing.T) {
	h := newHarness(t)
	cli, el, _ := h.pair("573007915267")
	from := el.len()
	h.control(http.MethodPost, "/control/devices/573007915267/replace", nil, http.StatusOK, nil)
	_, from = waitFor(t, el, from, func(*events.StreamReplaced) bool { return true })
	h.waitConnected("573007915267", false)
	if n := el.len(); n != from {
		t.Fatalf("events after StreamReplaced: %s", el.summary())
	}
	if err := cli.Connect(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, el, from, func(*events.Connected) bool { return true })
	h.waitConnected("573007915267", true)
}

// waitConnected polls the device list until phone's device has the wanted state.
func (h *harness) waitConnected(phone string, want bool) {
	h.t.Helper()
	poll(h.t, func() bool {
		var devices []DeviceInfo
		h.control(http.MethodGet, "/control/devices", nil, http.StatusOK, &devices)
		for _, d := range devices {
			if d.Phone == phone && d.Connected == want {
				return true
			}
		}
		return false
	}, fmt.Sprintf("device of %s to be connected=%v", phone, want))
}

func TestControlErrors(t *testing.T) {
	h := newHarness(t)
	var e struct{ Error string }
	h.control(http.MethodPost, "/control/devices/573000000000/logout", nil, http.StatusNotFound, &e)
	if e.Error == "" {
		t.Fatal("404 without an error sentence")
	}
	h.control(http.MethodGet, "/control/scan", nil, http.StatusMethodNotAllowed, &e)
	h.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": "2@x,AAAA,AAAA,AAAA", "phone": "57300"}, http.StatusNotFound, &e)
	h.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": "2@x,a,b,c", "phone": "57300"}, http.StatusBadRequest, &e)
	h.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": "x", "phone": "not a phone"}, http.StatusBadRequest, &e)
	h.control(http.MethodPost, "/control/scan", map[string]string{"qr": "x"}, http.StatusBadRequest, &e)
	h.control(http.MethodGet, "/control/nothing", nil, http.StatusNotFound, &e)
}

// startCodePairing connects a fresh client and has it ask for a pairing
// code for phone, as PairPhone's documentation says: after the first QR.
func (h *harness) startCodePairing(phone string) (*whatsmeow.Client, *eventLog, string) {
	h.t.Helper()
	cli, el := h.client(h.db.NewDevice())
	h.connectForQR(cli)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	code, err := cli.PairPhone(ctx, phone, true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		h.t.Fatal(err)
	}
	if len(code) != 9 || code[4] != '-' {
		h.t.Fatalf("pairing code %q is not of the form XXXX-XXXX", code)
	}
	return cli, el, code
}

// connectForQR connects an unpaired client and returns once it showed its
// first QR code.
func (h *harness) connectForQR(cli *whatsmeow.Client) {
	h.t.Helper()
	qrs, err := cli.GetQRChannel(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if err := cli.Connect(); err != nil {
		h.t.Fatal(err)
	}
	select {
	case <-qrs:
	case <-time.After(waitTimeout):
		h.t.Fatal("no QR code from the client")
	}
	go func() {
		for range qrs {
		}
	}()
}

// wrongCode changes one character of code to another of the alphabet.
func wrongCode(code string) string {
	c := code[0]
	for i := range len(linkCodeAlphabet) {
		if linkCodeAlphabet[i] == c {
			return string(linkCodeAlphabet[(i+1)%len(linkCodeAlphabet)]) + code[1:]
		}
	}
	panic("code outside the alphabet: " + code)
}

// TestPairByCode checks refusals first (a malformed code, another phone, a
// wrong code: none may link anything), then that the right code links the
// same waiting client, which then logs in and receives a message.
func TestPairByCode(t *testing.T) {
	h := newHarness(t)
	const phone = "573007915270"
	cli, el, code := h.startCodePairing(phone)

	var e struct{ Error string }
	h.control(http.MethodPost, "/control/pair-code", map[string]string{"phone": phone, "code": "ABC0-EFGH"}, http.StatusBadRequest, &e)
	h.control(http.MethodPost, "/control/pair-code", map[string]string{"phone": "573007915271", "code": code}, http.StatusNotFound, &e)
	if !strings.Contains(e.Error, "573007915271") {
		t.Fatalf("another phone's refusal does not name it: %q", e.Error)
	}
	h.control(http.MethodPost, "/control/pair-code", map[string]string{"phone": phone, "code": wrongCode(code)}, http.StatusConflict, &e)
	if !strings.Contains(e.Error, "does not match") {
		t.Fatalf("wrong code refused with %q", e.Error)
	}
	var devices []DeviceInfo
	h.control(http.MethodGet, "/control/devices", nil, http.StatusOK, &devices)
	if len(devices) != 0 {
		t.Fatalf("devices after refused codes = %+v", devices)
	}
	el.mu.Lock()
	for _, evt := range el.events {
		switch evt.(type) {
		case *events.PairSuccess, *events.PairError, *events.Connected:
			t.Errorf("event %T after refused codes", evt)
		}
	}
	el.mu.Unlock()

	// The phone's user types it again, correctly, without dash and in lower case.
	var paired struct{ JID string }
	typed := strings.ToLower(strings.ReplaceAll(code, "-", ""))
	h.control(http.MethodPost, "/control/pair-code", map[string]string{"phone": "+" + phone, "code": typed}, http.StatusOK, &paired)
	success, next := waitFor(t, el, 0, func(*events.PairSuccess) bool { return true })
	if success.ID.String() != paired.JID || success.ID.User != phone || success.ID.Device != 1 {
		t.Fatalf("PairSuccess for %s, pair-code answered %s", success.ID, paired.JID)
	}
	waitFor(t, el, next, func(*events.Connected) bool { return true })
	h.waitConnected(phone, true)
	h.awaitHistory(cli, el, next)

	h.control(http.MethodPost, "/control/devices/"+phone+"/message",
		map[string]string{"from": "573001112222", "text": "linked by code"}, http.StatusOK, nil)
	msg, _ := waitFor(t, el, next, func(m *events.Message) bool { return !isHistoryNotification(m) })
	if msg.Message.GetConversation() != "linked by code" {
		t.Fatalf("got %q", msg.Message.GetConversation())
	}
	// The code was used up with the pairing.
	h.control(http.MethodPost, "/control/pair-code", map[string]string{"phone": phone, "code": code}, http.StatusNotFound, &e)
}

// TestPairPhoneRefusesBadDisplayName: WhatsApp answers 400 to a display name
// not of the form "Browser (OS)", and so does the emulator.
func TestPairPhoneRefusesBadDisplayName(t *testing.T) {
	h := newHarness(t)
	cli, _ := h.client(h.db.NewDevice())
	h.connectForQR(cli)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := cli.PairPhone(ctx, "573007915272", true, whatsmeow.PairClientChrome, "Chrome"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("PairPhone with display name %q: %v, want a 400", "Chrome", err)
	}
	var e struct{ Error string }
	h.control(http.MethodPost, "/control/pair-code", map[string]string{"phone": "573007915272", "code": "ABCD-EFGH"}, http.StatusNotFound, &e)
}

// TestTemporaryBan: a ban disconnects the online device, whose reconnect
// gets whatsmeow's TemporaryBan with the code and expiry asked for; logins
// during the ban get it too, the store is kept (a ban is no logout), and the
// first login after the expiry connects the same device again.
func TestTemporaryBan(t *testing.T) {
	h := newHarness(t)
	const phone, seconds = "573007915273", 3
	cli, el, jid := h.pair(phone)
	from := el.len()
	banned := time.Now()
	var resp struct {
		JID       string
		Connected bool
		Seconds   int
		Code      int
	}
	h.control(http.MethodPost, "/control/devices/"+phone+"/ban",
		map[string]int{"seconds": seconds, "code": 104}, http.StatusOK, &resp)
	if resp.JID != jid.String() || !resp.Connected || resp.Seconds != seconds || resp.Code != 104 {
		t.Fatalf("ban answered %+v", resp)
	}
	ban, next := waitFor(t, el, from, func(*events.TemporaryBan) bool { return true })
	if ban.Code != events.TempBanSentTooManySameMessage || ban.Expire != seconds*time.Second {
		t.Fatalf("TemporaryBan = %+v, want code 104 expiring in %ds", ban, seconds)
	}

	// Log in again until it works, paced like a client's backoff: each try
	// before the expiry is banned again, with what remains of the ban. The
	// client is disconnected by hand as an application would after a ban
	// (polling Client.IsConnected instead races inside whatsmeow's
	// FrameSocket).
	pace := time.NewTicker(200 * time.Millisecond)
	defer pace.Stop()
	retries := 0
	for {
		cli.Disconnect()
		<-pace.C
		if err := cli.Connect(); err != nil {
			t.Fatal(err)
		}
		var evt any
		evt, next = waitFor(t, el, next, func(evt any) bool {
			switch evt.(type) {
			case *events.TemporaryBan, *events.Connected:
				return true
			}
			return false
		})
		again, ok := evt.(*events.TemporaryBan)
		if !ok {
			break
		}
		retries++
		if again.Code != ban.Code || again.Expire <= 0 || again.Expire > ban.Expire {
			t.Fatalf("TemporaryBan on retry %d = %+v, want code %d and at most %s", retries, again, ban.Code, ban.Expire)
		}
	}
	if took := time.Since(banned); took < seconds*time.Second || retries == 0 {
		t.Fatalf("connected %s after a %ds ban, %d login(s) refused on the way", took, seconds, retries)
	}
	if cli.Store.ID == nil || *cli.Store.ID != jid {
		t.Fatalf("store device after the ban: %v, want %s", cli.Store.ID, jid)
	}
	el.mu.Lock()
	loggedOut := slices.ContainsFunc(el.events[from:], func(evt any) bool { _, ok := evt.(*events.LoggedOut); return ok })
	el.mu.Unlock()
	if loggedOut {
		t.Fatalf("a ban logged the device out: %s", el.summary())
	}
	h.waitConnected(phone, true)

	// A device that is offline when banned meets the ban at its next login.
	cli.Disconnect()
	h.waitConnected(phone, false)
	from = el.len()
	h.control(http.MethodPost, "/control/devices/"+phone+"/ban", nil, http.StatusOK, &resp)
	if resp.Connected || resp.Seconds != defaultBanSeconds || resp.Code != defaultBanCode {
		t.Fatalf("ban of an offline device with defaults answered %+v", resp)
	}
	if err := cli.Connect(); err != nil {
		t.Fatal(err)
	}
	ban, _ = waitFor(t, el, from, func(*events.TemporaryBan) bool { return true })
	if ban.Code != events.TempBanSentToTooManyPeople || ban.Expire != defaultBanSeconds*time.Second {
		t.Fatalf("TemporaryBan with defaults = %+v", ban)
	}
}

func TestBanRefusesBadRequests(t *testing.T) {
	h := newHarness(t)
	h.pair("573007915274")
	for _, body := range []any{
		map[string]int{"seconds": 0},
		map[string]int{"seconds": maxBanSeconds + 1},
		map[string]int{"code": -1},
		map[string]string{"until": "tomorrow"},
	} {
		h.control(http.MethodPost, "/control/devices/573007915274/ban", body, http.StatusBadRequest, nil)
	}
	h.control(http.MethodPost, "/control/devices/573000000000/ban", nil, http.StatusNotFound, nil)
	h.waitConnected("573007915274", true)
}
