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
			r.hear(ev)
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

// hear passes the events that concern sending, not the lifecycle, to the
// listener: receipts, and who wrote in.
func (r *runner) hear(ev *pb.Event) {
	l := r.f.listener
	if l == nil {
		return
	}
	switch {
	case ev.GetReceipt() != nil:
		rc := ev.GetReceipt()
		l.Receipt(r.id, rc.GetMessageIds(), rc.GetType(), time.UnixMilli(rc.GetAtUnixMs()))
	case ev.GetMessageReceived() != nil:
		m := ev.GetMessageReceived()
		l.Heard(r.id, m.GetSender(), m.GetChat(), m.GetMessageId(), m.GetText())
	}
}

// translate turns a worker event into a lifecycle input; nil for events the
// lifecycle has no use for. The getters keep a malformed event (a kind
// without its message) from crashing the supervisor.
func translate(gen int, ev *pb.Event) lifecycle.Input {
	switch {
	case ev.GetQr() != nil:
		q := ev.GetQr()
		return lifecycle.QRShown{Gen: gen, Code: q.GetCode(), PNG: q.GetPngDataUrl(), ExpiresAt: time.UnixMilli(q.GetExpiresAtUnixMs())}
	case ev.GetPairSuccess() != nil:
		return lifecycle.Paired{Gen: gen, JID: ev.GetPairSuccess().GetJid()}
	case ev.GetConnected() != nil:
		return lifecycle.Connected{Gen: gen, JID: ev.GetConnected().GetJid()}
	case ev.GetDisconnected() != nil:
		return lifecycle.Disconnected{Gen: gen}
	case ev.GetLoggedOut() != nil:
		return lifecycle.LoggedOut{Gen: gen, Reason: ev.GetLoggedOut().GetReason()}
	case ev.GetStreamReplaced() != nil:
		return lifecycle.Replaced{Gen: gen}
	case ev.GetTemporaryBan() != nil:
		b := ev.GetTemporaryBan()
		var until time.Time
		if ms := b.GetExpiresAtUnixMs(); ms > 0 {
			until = time.UnixMilli(ms)
		}
		return lifecycle.Banned{Gen: gen, Code: b.GetCode(), Until: until}
	case ev.GetConnectFailure() != nil:
		c := ev.GetConnectFailure()
		return lifecycle.ConnectFailed{Gen: gen, Reason: c.GetReason(), Message: c.GetMessage()}
	case ev.GetBadMac() != nil:
		return lifecycle.BadMAC{Gen: gen, MessageID: ev.GetBadMac().GetMessageId(), Sender: ev.GetBadMac().GetSender()}
	case ev.GetDecryptFailure() != nil:
		return lifecycle.DecryptFailed{Gen: gen, Reason: ev.GetDecryptFailure().GetReason()}
	case ev.GetQrGaveUp() != nil:
		return lifecycle.QRGaveUp{Gen: gen}
	case ev.GetMessageReceived() != nil:
		return lifecycle.MessageReceived{Gen: gen}
	}
	return nil
}
