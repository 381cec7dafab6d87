package session

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mau.fi/libsignal/signalerror"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
)

var fixedNow = time.UnixMilli(1_760_000_000_000)

func newTranslator() (*translator, *badmac.Detector) {
	d := badmac.New()
	return &translator{
		now:      func() time.Time { return fixedNow },
		ownJID:   func() string { return "573007915262:12@s.whatsapp.net" },
		detector: d,
	}, d
}

func TestTranslate(t *testing.T) {
	phone := types.NewJID("573007915262", types.DefaultUserServer)
	phone.Device = 12
	peer := types.NewJID("573001112222", types.DefaultUserServer)
	lid := types.NewJID("99887766", types.HiddenUserServer)
	group := types.NewJID("120363000000000001", types.GroupServer)
	at := fixedNow.UnixMilli()
	cases := []struct {
		name string
		in   any
		want *pb.Event
	}{
		{"pair success", &events.PairSuccess{ID: phone, Platform: "android"},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_PairSuccess{PairSuccess: &pb.PairSuccess{Jid: "573007915262:12@s.whatsapp.net", Platform: "android"}}}},
		{"connected", &events.Connected{},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_Connected{Connected: &pb.Connected{Jid: "573007915262:12@s.whatsapp.net"}}}},
		{"disconnected", &events.Disconnected{},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_Disconnected{Disconnected: &pb.Disconnected{}}}},
		{"logged out by stream error", &events.LoggedOut{OnConnect: false, Reason: events.ConnectFailureLoggedOut},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_LoggedOut{LoggedOut: &pb.LoggedOut{OnConnect: false, Reason: "device_removed"}}}},
		{"logged out on connect", &events.LoggedOut{OnConnect: true, Reason: events.ConnectFailureMainDeviceGone},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_LoggedOut{LoggedOut: &pb.LoggedOut{OnConnect: true, Reason: "403: primary device was logged out"}}}},
		{"replaced", &events.StreamReplaced{},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_StreamReplaced{StreamReplaced: &pb.StreamReplaced{}}}},
		{"temporary ban", &events.TemporaryBan{Code: events.TempBanSentToTooManyPeople, Expire: time.Hour},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_TemporaryBan{TemporaryBan: &pb.TemporaryBan{Code: "101", ExpiresAtUnixMs: at + time.Hour.Milliseconds()}}}},
		{"temporary ban without expiry", &events.TemporaryBan{Code: events.TempBanBlockedByUsers},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_TemporaryBan{TemporaryBan: &pb.TemporaryBan{Code: "102"}}}},
		{"connect failure", &events.ConnectFailure{Reason: events.ConnectFailureBadUserAgent, Message: "bad ua"},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_ConnectFailure{ConnectFailure: &pb.ConnectFailure{Reason: "409", Message: "bad ua"}}}},
		{"message", &events.Message{Info: types.MessageInfo{ID: "3EB0A1", MessageSource: types.MessageSource{Sender: peer, Chat: peer}}},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_MessageReceived{MessageReceived: &pb.MessageReceived{MessageId: "3EB0A1", Sender: "573001112222@s.whatsapp.net", Chat: "573001112222@s.whatsapp.net"}}}},
		{"message from a LID with its number", &events.Message{Info: types.MessageInfo{ID: "3EB0A2", MessageSource: types.MessageSource{
			Sender: lid, SenderAlt: peer, Chat: lid}}},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_MessageReceived{MessageReceived: &pb.MessageReceived{MessageId: "3EB0A2", Sender: "573001112222@s.whatsapp.net", Chat: "99887766@lid"}}}},
		{"message in a group", &events.Message{Info: types.MessageInfo{ID: "3EB0A3", MessageSource: types.MessageSource{Sender: peer, Chat: group, IsGroup: true}}},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_MessageReceived{MessageReceived: &pb.MessageReceived{MessageId: "3EB0A3", Sender: "573001112222@s.whatsapp.net", Chat: "120363000000000001@g.us"}}}},
		{"unavailable", &events.UndecryptableMessage{Info: types.MessageInfo{ID: "U1", MessageSource: types.MessageSource{Sender: peer}}, IsUnavailable: true},
			&pb.Event{AtUnixMs: at, Kind: &pb.Event_DecryptFailure{DecryptFailure: &pb.DecryptFailure{MessageId: "U1", Sender: "573001112222@s.whatsapp.net", Reason: "unavailable"}}}},
	}
	for _, c := range cases {
		tr, _ := newTranslator()
		if got := tr.translate(c.in); !proto.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// Receipts from a recipient move the supervisor's messages to delivered and
// read; the message IDs are the ones the supervisor fixed.
func TestTranslateReceipts(t *testing.T) {
	tr, _ := newTranslator()
	peer := types.NewJID("573001112222", types.DefaultUserServer)
	at := time.Unix(1760000100, 0)
	for typ, want := range map[types.ReceiptType]string{types.ReceiptTypeDelivered: "delivered", types.ReceiptTypeRead: "read"} {
		got := tr.translate(&events.Receipt{MessageSource: types.MessageSource{Chat: peer, Sender: peer}, Type: typ,
			MessageIDs: []types.MessageID{"3EB0A", "3EB0B"}, Timestamp: at}).GetReceipt()
		if got.GetType() != want || len(got.GetMessageIds()) != 2 || got.GetMessageIds()[1] != "3EB0B" ||
			got.GetAtUnixMs() != at.UnixMilli() || got.GetChat() != peer.String() {
			t.Errorf("%q receipt: %v", typ, got)
		}
	}
}

func TestTranslateClientOutdated(t *testing.T) {
	tr, _ := newTranslator()
	got := tr.translate(&events.ClientOutdated{}).GetConnectFailure()
	if got.GetReason() != "405" || got.GetMessage() == "" {
		t.Fatalf("got %v, want a 405 connect failure with a message", got)
	}
}

func TestTranslateIgnoresOthers(t *testing.T) {
	tr, _ := newTranslator()
	retry := &events.Receipt{Type: types.ReceiptTypeRetry, MessageIDs: []types.MessageID{"X"}}
	own := &events.Receipt{MessageSource: types.MessageSource{IsFromMe: true}, Type: types.ReceiptTypeRead, MessageIDs: []types.MessageID{"X"}}
	// The phone's history notification is a message of its own to this
	// device, not one that anybody wrote.
	history := &events.Message{Info: types.MessageInfo{ID: "H1", MessageSource: types.MessageSource{IsFromMe: true}},
		Message: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
			Type:                    waE2E.ProtocolMessage_HISTORY_SYNC_NOTIFICATION.Enum(),
			HistorySyncNotification: &waE2E.HistorySyncNotification{FileLength: proto.Uint64(1 << 20)},
		}}}
	for _, evt := range []any{&events.QR{Codes: []string{"x"}}, &events.Receipt{}, retry, own, &events.KeepAliveTimeout{}, &events.OfflineSyncCompleted{}, history} {
		if got := tr.translate(evt); got != nil {
			t.Errorf("%T: got %v, want nil", evt, got)
		}
	}
}

// TestTranslateUndecryptable drives the translator the way whatsmeow and
// libsignal do: log lines first, then the event.
func TestTranslateUndecryptable(t *testing.T) {
	tr, d := newTranslator()
	wa := d.WhatsmeowLogger(discardLog())
	var sl = installSignal(t, d)
	peer := types.NewJID("573001112222", types.DefaultUserServer)
	evt := func(id string) *events.UndecryptableMessage {
		return &events.UndecryptableMessage{Info: types.MessageInfo{ID: id, MessageSource: types.MessageSource{Sender: peer}}}
	}

	wa.Debugf("Decrypting message from %s", peer)
	sl("Unable to verify ciphertext mac: ", signalerror.ErrBadMAC)
	sl("Unable to verify ciphertext mac: ", signalerror.ErrBadMAC)
	wa.Warnf("Error decrypting message %s from %s: %v", "BAD1", peer, fmt.Errorf("failed to decrypt normal message: %w", signalerror.ErrNoValidSessions))
	want := &pb.Event{AtUnixMs: fixedNow.UnixMilli(), Kind: &pb.Event_BadMac{BadMac: &pb.BadMAC{MessageId: "BAD1", Sender: "573001112222@s.whatsapp.net"}}}
	if got := tr.translate(evt("BAD1")); !proto.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	wa.Debugf("Decrypting message from %s", peer)
	wa.Warnf("Error decrypting message %s from %s: %v", "BUSY1", peer, errors.New("failed to decrypt normal message: database is locked (5) (SQLITE_BUSY)"))
	if got := tr.translate(evt("BUSY1")).GetDecryptFailure(); got.GetReason() != badmac.ReasonStoreBusy {
		t.Fatalf("got %v, want a store_busy decrypt failure", got)
	}
}
