package session

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wa-sidecar/wa-sidecar/bench/oneproc"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
	"github.com/wa-sidecar/wa-sidecar/worker/emulatorlink"
)

// TestWorkerAsksForNoHistory: a linked worker tells the phone it wants no
// history and never downloads the history blob the phone sends anyway,
// while a whatsmeow client with default settings, linked afterwards to the
// same emulator, downloads its blob.
func TestWorkerAsksForNoHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	srv, base := startEmulator(t)
	ctl := control{t: t, base: base, hc: emulatorlink.HTTPClient(strings.TrimPrefix(base, "http://"))}
	var state emulator.HistoryState
	ctl.put("/control/history", map[string]int{"bytes": 512 << 10}, &state)

	det := badmac.New()
	det.InstallSignalLogger(testLog(t))
	sess := New(Options{Log: testLog(t), Detector: det})
	ctx := context.Background()
	if _, err := sess.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "nohistory",
		AuthDir: filepath.Join(t.TempDir(), "nohistory"), EmulatorUrl: base}); err != nil {
		t.Fatal(err)
	}
	defer sess.Stop(ctx)
	rec := &recorder{}
	go func() { _ = sess.Events(ctx, rec.sink) }()
	pair(t, rec, ctl)
	jid := sess.linkedJID().String()

	// whatsmeow answers the notification with its receipt whether it
	// downloads or not: from then on a download would be under way.
	worker := waitHistory(t, srv, jid, func(h emulator.HistorySent) bool { return h.Receipt })
	if worker.Downloads != 0 {
		t.Fatalf("the worker downloaded its history blob: %+v", worker)
	}

	// The control, which also gives a download by the worker all the time
	// a whole link takes to show up.
	sessions, err := oneproc.Link(ctx, base, t.TempDir(), []string{emuPeer})
	if err != nil {
		t.Fatal(err)
	}
	defer sessions.Close()
	var plainJID string
	for _, d := range srv.Devices() {
		if d.Phone == emuPeer {
			plainJID = d.JID
		}
	}
	plain := waitHistory(t, srv, plainJID, func(h emulator.HistorySent) bool { return h.Downloads > 0 })
	if plain.DownloadedBytes != int64(plain.BlobBytes) || plain.Bytes < 500<<10 {
		t.Errorf("the default client's download %+v, want its whole blob of about 512 KiB of history", plain)
	}
	worker = waitHistory(t, srv, jid, func(emulator.HistorySent) bool { return true })
	if worker.Downloads != 0 || worker.DownloadedBytes != 0 {
		t.Errorf("the worker downloaded its history blob: %+v", worker)
	}
	if n := count(rec.snapshot(), func(e *pb.Event) bool { return e.GetMessageReceived() != nil }); n != 0 {
		t.Errorf("the history notification reached the supervisor as %d received message(s)", n)
	}

	props := devicePropsOf(t, srv, jid)
	cfg := props.GetHistorySyncConfig()
	if props.GetRequireFullSync() || cfg.GetStorageQuotaMb() != 1 || cfg.GetFullSyncDaysLimit() != 1 ||
		cfg.GetFullSyncSizeMbLimit() != 1 || cfg.GetRecentSyncDaysLimit() != 1 || cfg.GetInlineInitialPayloadInE2EeMsg() {
		t.Errorf("the worker registered asking for history: %v", props)
	}
}

// waitHistory polls the emulator until the history notification sent to
// jid satisfies cond, and returns it.
func waitHistory(t *testing.T, srv *emulator.Server, jid string, cond func(emulator.HistorySent) bool) emulator.HistorySent {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		for _, h := range srv.History().Sent {
			if h.Device == jid && cond(h) {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the history notification to %s: %+v", jid, srv.History().Sent)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// devicePropsOf is what the linked device jid announced when it registered.
func devicePropsOf(t *testing.T, srv *emulator.Server, jid string) *waCompanionReg.DeviceProps {
	t.Helper()
	for _, d := range srv.Devices() {
		if d.JID == jid {
			var props waCompanionReg.DeviceProps
			if err := protojson.Unmarshal(d.DeviceProps, &props); err != nil {
				t.Fatalf("device props of %s %s: %v", jid, d.DeviceProps, err)
			}
			return &props
		}
	}
	t.Fatalf("the emulator lists no device %s: %+v", jid, srv.Devices())
	return nil
}
