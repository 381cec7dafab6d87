package emulator

import (
	"net/http"
	"testing"

	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TestHistorySyncAtLink: a newly linked whatsmeow client with default
// settings gets a history notification from its phone, downloads the blob
// from the media host once and decodes the conversations in it; the
// emulator records the download, the hist_sync receipt and the device
// props of the registration. With history off, the next link gets none.
func TestHistorySyncAtLink(t *testing.T) {
	h := newHarness(t)
	var state HistoryState
	h.control(http.MethodPut, "/control/history", map[string]int{"bytes": 256 << 10}, http.StatusOK, &state)
	if state.Bytes != 256<<10 || len(state.Sent) != 0 {
		t.Fatalf("PUT /control/history answered %+v", state)
	}

	_, el, jid := h.pair("573007915270")
	hist, _ := waitFor(t, el, 0, func(*events.HistorySync) bool { return true })
	msgs := 0
	for _, c := range hist.Data.GetConversations() {
		msgs += len(c.GetMessages())
	}
	if msgs == 0 || proto.Size(hist.Data) < 255<<10 {
		t.Errorf("decoded history has %d messages in %d bytes, want about 256 KiB of them", msgs, proto.Size(hist.Data))
	}
	poll(t, func() bool {
		s := h.srv.History()
		return len(s.Sent) == 1 && s.Sent[0].Receipt && s.Sent[0].Downloads > 0
	}, "the history receipt and download")
	sent := h.srv.History().Sent[0]
	if sent.Device != jid.String() || sent.Downloads != 1 || sent.DownloadedBytes != int64(sent.BlobBytes) || sent.Bytes != proto.Size(hist.Data) || sent.BlobBytes >= sent.Bytes {
		t.Errorf("history sent %+v, want one download of the whole (compressed) blob to %s", sent, jid)
	}

	var devices []DeviceInfo
	h.control(http.MethodGet, "/control/devices", nil, http.StatusOK, &devices)
	if len(devices) != 1 || len(devices[0].DeviceProps) == 0 {
		t.Fatalf("devices = %+v, want the device props of the registration", devices)
	}
	var props waCompanionReg.DeviceProps
	if err := protojson.Unmarshal(devices[0].DeviceProps, &props); err != nil {
		t.Fatalf("device_props %s: %v", devices[0].DeviceProps, err)
	}
	if !proto.Equal(&props, store.DeviceProps) {
		t.Errorf("recorded device props %v, the client sent %v", &props, store.DeviceProps)
	}

	h.control(http.MethodPut, "/control/history", map[string]int{"bytes": 0}, http.StatusOK, &state)
	h.pair("573007915271")
	if s := h.srv.History(); len(s.Sent) != 1 {
		t.Errorf("with history off a link was sent history: %+v", s.Sent)
	}
	var e struct{ Error string }
	for _, body := range []any{map[string]int{"bytes": -1}, map[string]int{"bytes": maxHistoryBytes + 1}, map[string]string{}} {
		h.control(http.MethodPut, "/control/history", body, http.StatusBadRequest, &e)
		if e.Error == "" {
			t.Errorf("PUT %v: 400 without an error sentence", body)
		}
	}
	h.control(http.MethodPost, "/control/history", nil, http.StatusMethodNotAllowed, &e)
}
