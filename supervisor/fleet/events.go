package fleet

import (
	"context"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
)

// follow streams worker gen's events into the runner until the stream ends;
// an end the lifecycle did not ask for is a crash.
func (r *runner) follow(gen int, proc Worker) {
	go func() {
		err := proc.Events(context.Background(), func(ev *pb.Event) error {
			if in := translate(gen, ev); in != nil {
				r.post(envelope{in: in})
			}
			return nil
		})
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		r.post(envelope{in: lifecycle.StreamEnded{Gen: gen, Err: msg}})
	}()
}

// translate turns a worker event into a lifecycle input; nil for events the
// lifecycle has no use for.
func translate(gen int, ev *pb.Event) lifecycle.Input {
	switch k := ev.Kind.(type) {
	case *pb.Event_Qr:
		return lifecycle.QRShown{Gen: gen, Code: k.Qr.Code, PNG: k.Qr.PngDataUrl, ExpiresAt: time.UnixMilli(k.Qr.ExpiresAtUnixMs)}
	case *pb.Event_PairSuccess:
		return lifecycle.Paired{Gen: gen, JID: k.PairSuccess.Jid}
	case *pb.Event_Connected:
		return lifecycle.Connected{Gen: gen, JID: k.Connected.Jid}
	case *pb.Event_Disconnected:
		return lifecycle.Disconnected{Gen: gen}
	case *pb.Event_LoggedOut:
		return lifecycle.LoggedOut{Gen: gen, Reason: k.LoggedOut.Reason}
	case *pb.Event_StreamReplaced:
		return lifecycle.Replaced{Gen: gen}
	case *pb.Event_TemporaryBan:
		var until time.Time
		if ms := k.TemporaryBan.ExpiresAtUnixMs; ms > 0 {
			until = time.UnixMilli(ms)
		}
		return lifecycle.Banned{Gen: gen, Code: k.TemporaryBan.Code, Until: until}
	case *pb.Event_ConnectFailure:
		return lifecycle.ConnectFailed{Gen: gen, Reason: k.ConnectFailure.Reason, Message: k.ConnectFailure.Message}
	case *pb.Event_BadMac:
		return lifecycle.BadMAC{Gen: gen, MessageID: k.BadMac.MessageId, Sender: k.BadMac.Sender}
	case *pb.Event_DecryptFailure:
		return lifecycle.DecryptFailed{Gen: gen, Reason: k.DecryptFailure.Reason}
	case *pb.Event_QrGaveUp:
		return lifecycle.QRGaveUp{Gen: gen}
	case *pb.Event_MessageReceived:
		return lifecycle.MessageReceived{Gen: gen}
	}
	return nil
}
