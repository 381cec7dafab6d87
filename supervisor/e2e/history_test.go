package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/store"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wa-sidecar/wa-sidecar/bench/oneproc"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
)

// TestWorkersAskForNoHistory: a worker linked through the supervisor
// registers asking the phone for no history and never downloads the
// history blob that the phone sends anyway; a whatsmeow client with
// default settings, linked afterwards in this process, asks for
// whatsmeow's default history and downloads its blob.
func TestWorkersAskForNoHistory(t *testing.T) {
	e := newEnv(t, "")
	e.control(http.MethodPut, "/control/history", map[string]int{"bytes": 1 << 20}, nil)
	const workerPhone, plainPhone = "573007915280", "573007915281"
	e.link("history", workerPhone)
	workerJID := e.deviceOf(workerPhone).JID

	// whatsmeow answers the notification with its receipt whether it
	// downloads or not: from then on a download would be under way.
	worker := e.historyTo(workerJID, func(h emulator.HistorySent) bool { return h.Receipt })
	if worker.Downloads != 0 {
		t.Fatalf("the worker downloaded its history blob: %+v", worker)
	}

	// The control, which also gives a download by the worker all the time
	// a whole link takes to show up.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sessions, err := oneproc.Link(ctx, e.emuURL, t.TempDir(), []string{plainPhone})
	if err != nil {
		t.Fatal(err)
	}
	defer sessions.Close()
	plainJID := e.deviceOf(plainPhone).JID
	plain := e.historyTo(plainJID, func(h emulator.HistorySent) bool { return h.Downloads > 0 })
	if plain.DownloadedBytes != int64(plain.BlobBytes) {
		t.Errorf("the default client's download %+v, want its whole blob", plain)
	}
	worker = e.historyTo(workerJID, func(emulator.HistorySent) bool { return true })
	if worker.Downloads != 0 || worker.DownloadedBytes != 0 {
		t.Errorf("the worker downloaded its history blob: %+v", worker)
	}

	asked := e.devicePropsOf(workerPhone).GetHistorySyncConfig()
	if props := e.devicePropsOf(workerPhone); props.GetRequireFullSync() || asked.GetStorageQuotaMb() != 1 ||
		asked.GetFullSyncDaysLimit() != 1 || asked.GetRecentSyncDaysLimit() != 1 || asked.GetInlineInitialPayloadInE2EeMsg() {
		t.Errorf("the worker registered asking for history: %v", props)
	}
	// This process never changed whatsmeow's defaults.
	if got, want := e.devicePropsOf(plainPhone).GetHistorySyncConfig().GetStorageQuotaMb(), store.DeviceProps.GetHistorySyncConfig().GetStorageQuotaMb(); got != want || got == 1 {
		t.Errorf("the default client registered a storage quota of %d MB, want whatsmeow's %d", got, want)
	}
}

// deviceOf is phone's linked device as the emulator lists it.
func (e *env) deviceOf(phone string) emulator.DeviceInfo {
	e.t.Helper()
	for _, d := range e.emu.Devices() {
		if d.Phone == phone {
			return d
		}
	}
	e.t.Fatalf("the emulator lists no device of %s: %+v", phone, e.emu.Devices())
	return emulator.DeviceInfo{}
}

// devicePropsOf is what phone's linked device announced when it registered.
func (e *env) devicePropsOf(phone string) *waCompanionReg.DeviceProps {
	e.t.Helper()
	d := e.deviceOf(phone)
	var props waCompanionReg.DeviceProps
	if err := protojson.Unmarshal(d.DeviceProps, &props); err != nil {
		e.t.Fatalf("device props of %s %s: %v", d.JID, d.DeviceProps, err)
	}
	return &props
}

// historyTo polls the emulator until the history notification sent to jid
// satisfies cond, and returns it.
func (e *env) historyTo(jid string, cond func(emulator.HistorySent) bool) emulator.HistorySent {
	e.t.Helper()
	var found emulator.HistorySent
	e.eventually(30*time.Second, "the history notification to "+jid, func() error {
		sent := e.emu.History().Sent
		for _, h := range sent {
			if h.Device == jid && cond(h) {
				found = h
				return nil
			}
		}
		return fmt.Errorf("history sent: %+v", sent)
	})
	return found
}
