package session

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/store"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/fingerprint"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
	"github.com/wa-sidecar/wa-sidecar/worker/emulatorlink"
)

const (
	emuPhone = "573007915262"
	emuPeer  = "573001112222"
	waitFor  = 30 * time.Second
)

// recorder collects the session's event stream for polling.
type recorder struct {
	mu     sync.Mutex
	events []*pb.Event
}

func (r *recorder) sink(ev *pb.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) snapshot() []*pb.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pb.Event(nil), r.events...)
}

// waitUntil polls the recorded events until cond holds or the deadline passes.
func (r *recorder) waitUntil(t *testing.T, what string, cond func([]*pb.Event) bool) []*pb.Event {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		evs := r.snapshot()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; events so far: %v", what, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(evs []*pb.Event, match func(*pb.Event) bool) int {
	n := 0
	for _, ev := range evs {
		if match(ev) {
			n++
		}
	}
	return n
}

func isBadMAC(ev *pb.Event) bool { return ev.GetBadMac() != nil }

type control struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func (c control) post(path string, body any, out any) {
	c.t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := c.hc.Post(c.base+path, "application/json", bytes.NewReader(raw))
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&e)
		c.t.Fatalf("POST %s: %s %v", path, resp.Status, e)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			c.t.Fatalf("POST %s: decode: %v", path, err)
		}
	}
}

func (c control) put(path string, body any, out any) {
	c.t.Helper()
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPut, c.base+path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("PUT %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("PUT %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		c.t.Fatalf("PUT %s: decode: %v", path, err)
	}
}

func (c control) get(path string, out any) {
	c.t.Helper()
	resp, err := c.hc.Get(c.base + path)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		c.t.Fatalf("GET %s: decode: %v", path, err)
	}
}

// TestAgainstEmulator runs the real session, whatsmeow and libsignal
// against the local WhatsApp emulator: QR pairing, genuine Bad MACs, a good
// message, a send, and a remote logout.
func TestAgainstEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	log := testLog(t)
	srv, base := startEmulator(t)
	ctl := control{t: t, base: base, hc: emulatorlink.HTTPClient(strings.TrimPrefix(base, "http://"))}

	det := badmac.New()
	det.InstallSignalLogger(log)
	sess := New(Options{Log: log, Detector: det})
	rec := &recorder{}
	streamDone := make(chan error, 1)
	// Subscribe late on purpose: the first QR must have been kept.
	ctx := context.Background()
	authDir := filepath.Join(t.TempDir(), "emu-org")
	resp, err := sess.Start(ctx, &pb.StartRequest{
		Sandbox:         "off", // in-process: the test binary must stay free
		OrganizationId:  "emu-org",
		AuthDir:         authDir,
		QrGiveUpAfterMs: (5 * time.Minute).Milliseconds(),
		EmulatorUrl:     base,
		Fingerprint:     "Opera/Linux/6.6.30",
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Restoring {
		t.Fatal("fresh auth dir reported as restoring")
	}
	if os, platform := store.DeviceProps.GetOs(), store.DeviceProps.GetPlatformType(); os != "Linux" || platform != waCompanionReg.DeviceProps_OPERA {
		t.Errorf("registering as %v on %q, want the requested fingerprint's OPERA on Linux", platform, os)
	}
	go func() { streamDone <- sess.Events(ctx, rec.sink) }()
	t.Cleanup(func() {
		if err := sess.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if iqs := srv.UnknownIQs(); len(iqs) > 0 {
			t.Errorf("emulator saw iqs it does not know (whatsmeow changed?): %v", iqs)
		}
	})

	pair(t, rec, ctl)
	if p, err := sess.Ping(ctx); err != nil || !p.Connected {
		t.Errorf("Ping after Connected = %v, %v", p, err)
	}

	ctl.post(fmt.Sprintf("/control/devices/%s/badmac", emuPhone), map[string]int{"count": 5}, nil)
	rec.waitUntil(t, "5 Bad MACs", func(evs []*pb.Event) bool { return count(evs, isBadMAC) >= 5 })

	// whatsmeow handles messages in order, so once the good message is in,
	// every Bad MAC event that will ever come has come.
	var sent struct{ ID string }
	ctl.post(fmt.Sprintf("/control/devices/%s/message", emuPhone), map[string]string{"from": emuPeer, "text": "hi"}, &sent)
	evs := rec.waitUntil(t, "the good message", func(evs []*pb.Event) bool {
		return count(evs, func(e *pb.Event) bool { return e.GetMessageReceived().GetMessageId() == sent.ID }) == 1
	})
	if n := count(evs, isBadMAC); n != 5 {
		t.Errorf("got %d Bad MAC events, want exactly 5", n)
	}
	if n := count(evs, func(e *pb.Event) bool { return e.GetDecryptFailure() != nil }); n != 0 {
		t.Errorf("got %d other decrypt failures, want 0: %v", n, evs)
	}

	out, err := sess.SendText(ctx, &pb.SendTextRequest{To: emuPeer, Text: "hello from the worker", Id: "3EB0WORKERTEST01"})
	if err != nil {
		t.Fatalf("SendText: %v", err)
	}
	if out.Id != "3EB0WORKERTEST01" || out.ServerTimestampUnixMs == 0 {
		t.Errorf("SendText = %v", out)
	}
	var delivered []struct{ ID, To, Text string }
	ctl.get(fmt.Sprintf("/control/devices/%s/sent", emuPhone), &delivered)
	if len(delivered) != 1 || delivered[0].Text != "hello from the worker" || delivered[0].ID != out.Id {
		t.Errorf("emulated recipient decrypted %v", delivered)
	}
	sendMediaToEmulator(t, sess, ctl)

	ctl.post(fmt.Sprintf("/control/devices/%s/logout", emuPhone), struct{}{}, nil)
	evs = rec.waitUntil(t, "LoggedOut", func(evs []*pb.Event) bool {
		return count(evs, func(e *pb.Event) bool { return e.GetLoggedOut() != nil }) > 0
	})
	for _, e := range evs {
		if lo := e.GetLoggedOut(); lo != nil && (lo.OnConnect || lo.Reason != "device_removed") {
			t.Errorf("LoggedOut = %v, want a device_removed stream error", lo)
		}
	}

	// The supervisor stops a logged-out worker at once; the store it leaves
	// must not restore the removed device.
	if err := sess.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := <-streamDone; err != nil {
		t.Errorf("event stream ended with %v, want nil", err)
	}
	again := New(Options{Log: log, Detector: det})
	resp, err = again.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "emu-org", AuthDir: authDir, EmulatorUrl: base, Fingerprint: "Opera/Linux/6.6.30"})
	if err != nil {
		t.Fatalf("start after logout: %v", err)
	}
	defer again.Stop(ctx)
	if resp.Restoring {
		t.Error("the store still holds the logged-out device")
	}
}

// startEmulator serves a fresh emulator on 127.0.0.1:0 for one test.
func startEmulator(t *testing.T) (*emulator.Server, string) {
	return startEmulatorAt(t, "127.0.0.1:0")
}

func startEmulatorAt(t *testing.T, addr string) (*emulator.Server, string) {
	t.Helper()
	srv, err := emulator.New(emulator.Options{Logger: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("emulator serve: %v", err)
		}
	})
	return srv, "http://" + ln.Addr().String()
}

func TestQRGivesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	_, base := startEmulator(t)
	det := badmac.New()
	det.InstallSignalLogger(testLog(t))
	sess := New(Options{Log: testLog(t), Detector: det})
	ctx := context.Background()
	_, err := sess.Start(ctx, &pb.StartRequest{
		Sandbox:         "off",
		OrganizationId:  "giveup",
		AuthDir:         filepath.Join(t.TempDir(), "giveup"),
		QrGiveUpAfterMs: 1500,
		EmulatorUrl:     base,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Stop(ctx)
	if want := fingerprint.Legacy("giveup"); store.DeviceProps.GetOs() != want.OS || store.BaseClientPayload.GetUserAgent().GetOsVersion() != fmt.Sprintf("%d.%d.%d", want.Version[0], want.Version[1], want.Version[2]) {
		t.Errorf("without a fingerprint the device registers as %q %s, want the legacy %v", store.DeviceProps.GetOs(), store.BaseClientPayload.GetUserAgent().GetOsVersion(), want)
	}
	rec := &recorder{}
	go func() { _ = sess.Events(ctx, rec.sink) }()
	evs := rec.waitUntil(t, "QRGaveUp", func(evs []*pb.Event) bool {
		return count(evs, func(e *pb.Event) bool { return e.GetQrGaveUp() != nil }) == 1
	})
	if evs[0].GetQr() == nil {
		t.Errorf("first event %v, want the QR offered before giving up", evs[0])
	}
	deadline := time.Now().Add(waitFor)
	for sess.client().IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("still connected to the server after giving up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pair scans the session's first QR with the emulated phone and waits for
// Connected, checking the events on the way.
func pair(t *testing.T, rec *recorder, ctl control) []*pb.Event {
	t.Helper()
	evs := rec.waitUntil(t, "a QR code", func(evs []*pb.Event) bool { return count(evs, func(e *pb.Event) bool { return e.GetQr() != nil }) > 0 })
	var qr *pb.QR
	for _, e := range evs {
		if e.GetQr() != nil {
			qr = e.GetQr()
			break
		}
	}
	if qr.PngDataUrl == "" || qr.ExpiresAtUnixMs <= time.Now().UnixMilli() {
		t.Fatalf("QR event incomplete: png %d bytes, expires %d", len(qr.PngDataUrl), qr.ExpiresAtUnixMs)
	}

	var scanned struct{ JID string }
	ctl.post("/control/scan", map[string]string{"qr_code": qr.Code, "phone": emuPhone}, &scanned)
	evs = rec.waitUntil(t, "Connected", func(evs []*pb.Event) bool {
		return count(evs, func(e *pb.Event) bool { return e.GetConnected() != nil }) > 0
	})
	for _, e := range evs {
		if c := e.GetConnected(); c != nil && c.Jid != scanned.JID {
			t.Errorf("Connected jid %q, emulator paired %q", c.Jid, scanned.JID)
		}
	}
	if count(evs, func(e *pb.Event) bool { return e.GetPairSuccess() != nil }) != 1 {
		t.Errorf("want one PairSuccess before Connected: %v", evs)
	}
	return evs
}

func TestLogoutRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	srv, base := startEmulator(t)
	ctl := control{t: t, base: base, hc: emulatorlink.HTTPClient(strings.TrimPrefix(base, "http://"))}
	det := badmac.New()
	det.InstallSignalLogger(testLog(t))
	sess := New(Options{Log: testLog(t), Detector: det})
	ctx := context.Background()
	authDir := filepath.Join(t.TempDir(), "logout")
	if _, err := sess.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "logout", AuthDir: authDir, EmulatorUrl: base}); err != nil {
		t.Fatal(err)
	}
	defer sess.Stop(ctx)
	rec := &recorder{}
	go func() { _ = sess.Events(ctx, rec.sink) }()
	pair(t, rec, ctl)

	if _, err := sess.PairPhone(ctx, emuPhone); err == nil || !strings.Contains(err.Error(), "already linked") {
		t.Errorf("PairPhone on a linked device: %v", err)
	}
	if err := sess.Logout(ctx); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if devs := srv.Devices(); len(devs) != 0 {
		t.Errorf("emulator still lists linked devices after Logout: %v", devs)
	}
	if err := sess.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	again := New(Options{Log: testLog(t), Detector: det})
	resp, err := again.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "logout", AuthDir: authDir, EmulatorUrl: base})
	if err != nil {
		t.Fatalf("start after Logout: %v", err)
	}
	defer again.Stop(ctx)
	if resp.Restoring {
		t.Error("the store still holds the device after Logout")
	}
}

// TestQRRoundReopens: when the server drops an unlinked client, the QR loop
// opens a new round after a pause, and the supervisor sees new codes rather
// than a "disconnected" status.
func TestQRRoundReopens(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	first, base := startEmulator(t)
	det := badmac.New()
	det.InstallSignalLogger(testLog(t))
	sess := New(Options{Log: testLog(t), Detector: det})
	ctx := context.Background()
	_, err := sess.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "reopen", AuthDir: filepath.Join(t.TempDir(), "reopen"), EmulatorUrl: base})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Stop(ctx)
	rec := &recorder{}
	go func() { _ = sess.Events(ctx, rec.sink) }()
	isQR := func(e *pb.Event) bool { return e.GetQr() != nil }
	rec.waitUntil(t, "the first QR", func(evs []*pb.Event) bool { return count(evs, isQR) == 1 })

	// Same address, same process-wide root key: the client's next round
	// reaches the new server.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	startEmulatorAt(t, strings.TrimPrefix(base, "http://"))
	evs := rec.waitUntil(t, "a QR from a new round", func(evs []*pb.Event) bool { return count(evs, isQR) >= 2 })
	var codes []string
	for _, e := range evs {
		if e.GetQr() != nil {
			codes = append(codes, e.GetQr().Code)
		}
	}
	if codes[0] == codes[1] {
		t.Errorf("new round repeated the code %q", codes[0])
	}
	if n := count(evs, func(e *pb.Event) bool { return e.GetDisconnected() != nil }); n != 0 {
		t.Errorf("published %d Disconnected events for an unlinked session", n)
	}
}

// TestRestoreWithoutDeviceNeverRegisters is issue 15's worker side: a LOGOUT
// deleted the device, the supervisor never saved it (a full disk, a crash)
// and launches the worker to restore. The worker must answer device_missing
// and wait, never connecting: a connect without a device opens a
// registration and the server offers a QR seconds after the LOGOUT.
func TestRestoreWithoutDeviceNeverRegisters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	srv, base := startEmulator(t)
	ctl := control{t: t, base: base, hc: emulatorlink.HTTPClient(strings.TrimPrefix(base, "http://"))}
	det := badmac.New()
	det.InstallSignalLogger(testLog(t))
	ctx := context.Background()
	authDir := filepath.Join(t.TempDir(), "lost")

	// A linked session, then WhatsApp's LOGOUT: whatsmeow empties the store.
	first := New(Options{Log: testLog(t), Detector: det})
	if _, err := first.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "lost", AuthDir: authDir, EmulatorUrl: base}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	go func() { _ = first.Events(ctx, rec.sink) }()
	pair(t, rec, ctl)
	if err := first.Logout(ctx); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	offered := srv.Registrations()

	// The supervisor, which never saved the LOGOUT, restores.
	again := New(Options{Log: testLog(t), Detector: det})
	resp, err := again.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "lost", AuthDir: authDir, EmulatorUrl: base, Restore: true})
	if err != nil {
		t.Fatalf("restore on an empty store: %v", err)
	}
	defer again.Stop(ctx)
	recAgain := &recorder{}
	go func() { _ = again.Events(ctx, recAgain.sink) }()
	// Sampled for a while, as long as a worker left alone would need to
	// connect and show its first code: never a registration, a QR or a
	// connection.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := srv.Registrations(); n != offered {
			t.Fatalf("the emulator opened %d registration(s) for a restore without a device", n-offered)
		}
		if evs := recAgain.snapshot(); len(evs) > 0 {
			t.Fatalf("a restore without a device reported events: %v", evs)
		}
		if cli := again.client(); cli != nil && cli.IsConnected() {
			t.Fatal("a restore without a device connected to the server")
		}
		ping, err := again.Ping(ctx)
		if err != nil || ping.Connected {
			t.Fatalf("ping %+v, %v: want a live, unconnected worker waiting for the supervisor", ping, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !resp.DeviceMissing || resp.Restoring {
		t.Fatalf("start answered %+v, want device_missing", resp)
	}
	if err := again.Stop(ctx); err != nil {
		t.Fatalf("stop the waiting worker: %v", err)
	}
}
