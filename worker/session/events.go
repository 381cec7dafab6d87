package session

import (
	"strconv"
	"time"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
)

// translator turns whatsmeow events into contract events. It holds no
// client so that tests can feed it event structs directly.
type translator struct {
	now      func() time.Time
	ownJID   func() string // the linked device's JID, read when Connected arrives
	detector *badmac.Detector
}

// translate returns the contract event for evt, or nil for the many
// whatsmeow events the supervisor has no use for.
func (t *translator) translate(evt any) *pb.Event {
	ev := &pb.Event{AtUnixMs: t.now().UnixMilli()}
	switch e := evt.(type) {
	case *events.PairSuccess:
		ev.Kind = &pb.Event_PairSuccess{PairSuccess: &pb.PairSuccess{Jid: e.ID.String(), Platform: e.Platform}}
	case *events.Connected:
		ev.Kind = &pb.Event_Connected{Connected: &pb.Connected{Jid: t.ownJID()}}
	case *events.Disconnected:
		ev.Kind = &pb.Event_Disconnected{Disconnected: &pb.Disconnected{}}
	case *events.LoggedOut:
		ev.Kind = &pb.Event_LoggedOut{LoggedOut: &pb.LoggedOut{OnConnect: e.OnConnect, Reason: logoutReason(e)}}
	case *events.StreamReplaced:
		ev.Kind = &pb.Event_StreamReplaced{StreamReplaced: &pb.StreamReplaced{}}
	case *events.TemporaryBan:
		ban := &pb.TemporaryBan{Code: strconv.Itoa(int(e.Code))}
		if e.Expire > 0 {
			ban.ExpiresAtUnixMs = t.now().Add(e.Expire).UnixMilli()
		}
		ev.Kind = &pb.Event_TemporaryBan{TemporaryBan: ban}
	case *events.ConnectFailure:
		ev.Kind = &pb.Event_ConnectFailure{ConnectFailure: &pb.ConnectFailure{Reason: e.Reason.NumberString(), Message: e.Message}}
	case *events.ClientOutdated:
		// whatsmeow turns the 405 failure into its own event; the supervisor
		// only needs to know the connect failed and why.
		ev.Kind = &pb.Event_ConnectFailure{ConnectFailure: &pb.ConnectFailure{
			Reason:  events.ConnectFailureClientOutdated.NumberString(),
			Message: "client outdated: the pinned whatsmeow version is too old for WhatsApp",
		}}
	case *events.Message:
		if historyNotification(e) != nil {
			// The phone's pointer to chat history, not a message anyone wrote.
			return nil
		}
		ev.Kind = &pb.Event_MessageReceived{MessageReceived: &pb.MessageReceived{
			MessageId: e.Info.ID, Sender: phoneJID(e.Info.Sender, e.Info.SenderAlt).String(),
			Chat: e.Info.Chat.String(), Text: textOf(e),
		}}
	case *events.Receipt:
		typ, ok := receiptTypes[e.Type]
		if !ok || e.IsFromMe || len(e.MessageIDs) == 0 {
			// Retry receipts, our own other devices' reads and the like
			// say nothing about a recipient.
			return nil
		}
		ids := make([]string, len(e.MessageIDs))
		for i, id := range e.MessageIDs {
			ids[i] = string(id)
		}
		ev.Kind = &pb.Event_Receipt{Receipt: &pb.Receipt{MessageIds: ids, Type: typ,
			AtUnixMs: e.Timestamp.UnixMilli(), Chat: e.Chat.String()}}
	case *events.UndecryptableMessage:
		id, sender := e.Info.ID, e.Info.Sender.String()
		if v := t.detector.Classify(e); v.Kind == badmac.BadMAC {
			ev.Kind = &pb.Event_BadMac{BadMac: &pb.BadMAC{MessageId: id, Sender: sender}}
		} else {
			ev.Kind = &pb.Event_DecryptFailure{DecryptFailure: &pb.DecryptFailure{MessageId: id, Sender: sender, Reason: v.Reason}}
		}
	default:
		return nil
	}
	return ev
}

// historyNotification is the history sync notification e carries, if any.
func historyNotification(e *events.Message) *waE2E.HistorySyncNotification {
	return e.Message.GetProtocolMessage().GetHistorySyncNotification()
}

// receiptTypes maps the receipts that report on a recipient to the
// contract's words.
var receiptTypes = map[types.ReceiptType]string{
	types.ReceiptTypeDelivered: "delivered",
	types.ReceiptTypeRead:      "read",
	types.ReceiptTypePlayed:    "played",
}

// textOf is the text of a plain or extended text message, "" otherwise.
func textOf(e *events.Message) string {
	if e.Message == nil {
		return ""
	}
	if t := e.Message.GetConversation(); t != "" {
		return t
	}
	return e.Message.GetExtendedTextMessage().GetText()
}

// logoutReason keeps the reason a short, bounded string: it ends up in a
// metric label upstream.
func logoutReason(e *events.LoggedOut) string {
	if !e.OnConnect {
		// stream:error 401 <conflict type="device_removed"/>: unlinked from the phone.
		return "device_removed"
	}
	return e.Reason.String()
}

// phoneJID prefers a sender's phone-number JID: WhatsApp addresses many
// senders by LID now and gives the number as the alternative, and the
// supervisor knows contacts by number.
func phoneJID(sender, alt types.JID) types.JID {
	if sender.Server == types.HiddenUserServer && alt.Server == types.DefaultUserServer {
		return alt
	}
	return sender
}
