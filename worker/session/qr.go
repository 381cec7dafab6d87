package session

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/skip2/go-qrcode"
	"go.mau.fi/whatsmeow"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// defaultQRGiveUp applies when the supervisor sends no limit: a worker that
// offers codes forever would hold one of the host's five slots forever.
const defaultQRGiveUp = 10 * time.Minute

// qrPNGSize is the side of the QR image in pixels; large enough for a phone
// camera pointed at a laptop screen.
const qrPNGSize = 256

// New QR rounds back off when connecting fails or a round ends early (the
// server dropping the socket at once): a network hiccup must not end
// pairing, and a client reconnecting in a tight loop looks like automation.
// A normal round lasts 160 s (60 s + 5 x 20 s) and is followed at once.
const (
	qrRetryMin   = 2 * time.Second
	qrRetryMax   = 30 * time.Second
	qrShortRound = 20 * time.Second
)

// qrRound asks whatsmeow for a QR channel and connects: the channel must
// exist before Connect or the first batch of codes is missed. WhatsApp sends
// six codes per connection (60 s, then 20 s each); after that the client
// disconnects and a new connection brings a new batch.
func qrRound(ctx context.Context, cli *whatsmeow.Client) (<-chan whatsmeow.QRChannelItem, error) {
	ch, err := cli.GetQRChannel(ctx)
	if err != nil {
		return nil, fmt.Errorf("open QR channel: %w", err)
	}
	// Connect, not ConnectContext(ctx): the client's context must outlive
	// the QR loop (see Session.Start).
	if err := cli.Connect(); err != nil {
		return nil, fmt.Errorf("connect for QR pairing: %w", err)
	}
	return ch, nil
}

// qrLoop relays codes from ch and opens new rounds until the phone scans a
// code, ctx ends, or giveUpAfter has passed since start.
func (s *Session) qrLoop(ctx context.Context, cli *whatsmeow.Client, ch <-chan whatsmeow.QRChannelItem, start time.Time, giveUpAfter time.Duration) {
	deadline := time.NewTimer(giveUpAfter - s.now().Sub(start))
	defer deadline.Stop()
	roundStart := s.now()
	pause := time.Duration(0)
	for {
		item, ok, expired := s.nextQRItem(ctx, ch, deadline.C)
		switch {
		case ctx.Err() != nil:
			return
		case expired:
			s.giveUpQR(cli, giveUpAfter)
			return
		case ok && item.Event == whatsmeow.QRChannelEventCode:
			s.publishQR(item)
			continue
		case ok && item == whatsmeow.QRChannelSuccess:
			s.log.Info("QR scanned, pairing succeeded")
			return
		case ok && item == whatsmeow.QRChannelScannedWithoutMultidevice:
			// The same code stays valid; the channel goes on.
			s.log.Warn("QR scanned by a phone without multi-device enabled")
			continue
		case ok && (item == whatsmeow.QRChannelErrUnexpectedEvent || item == whatsmeow.QRChannelClientOutdated):
			// The connection event itself reaches the supervisor through the
			// event handler; pairing is over either way.
			s.log.Warn("QR pairing ended", "reason", item.Event)
			return
		case ok && item.Event == whatsmeow.QRChannelEventError:
			s.log.Warn("pairing failed, offering new codes", "error", item.Error)
		case ok:
			// "timeout": the codes ran out or the server dropped the socket.
			s.log.Info("QR round ended, offering new codes", "reason", item.Event)
		}
		// The round ended (timeout, pair error or a closed channel): a new
		// connection brings new codes.
		if s.now().Sub(roundStart) < qrShortRound {
			pause = min(max(2*pause, qrRetryMin), qrRetryMax)
		} else {
			pause = 0
		}
		next, expired := s.reopenQR(ctx, cli, deadline.C, pause)
		roundStart = s.now()
		if expired {
			s.giveUpQR(cli, giveUpAfter)
			return
		}
		if next == nil {
			return
		}
		ch = next
	}
}

// nextQRItem waits for the next channel item, the deadline or ctx.
func (s *Session) nextQRItem(ctx context.Context, ch <-chan whatsmeow.QRChannelItem, deadline <-chan time.Time) (item whatsmeow.QRChannelItem, ok, expired bool) {
	select {
	case <-ctx.Done():
		return item, false, false
	case <-deadline:
		return item, false, true
	case item, ok = <-ch:
		return item, ok, false
	}
}

// reopenQR disconnects, waits pause, and starts a new round, retrying with
// backoff. It returns nil when ctx ends, expired when the deadline passes
// first.
func (s *Session) reopenQR(ctx context.Context, cli *whatsmeow.Client, deadline <-chan time.Time, pause time.Duration) (<-chan whatsmeow.QRChannelItem, bool) {
	cli.Disconnect() // GetQRChannel refuses a connected client
	if pause > 0 {
		s.log.Info("QR round ended early, pausing before the next", "pause", pause.String())
	}
	wait := qrRetryMin
	for {
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, false
			case <-deadline:
				t.Stop()
				return nil, true
			case <-t.C:
			}
		}
		ch, err := qrRound(ctx, cli)
		if err == nil {
			return ch, false
		}
		s.log.Warn("new QR round failed, retrying", "error", err, "retry_in", wait.String())
		cli.Disconnect()
		pause, wait = wait, min(2*wait, qrRetryMax)
	}
}

func (s *Session) giveUpQR(cli *whatsmeow.Client, after time.Duration) {
	s.log.Info("no QR scanned in time, giving up", "after", after.String())
	s.publish(&pb.Event{AtUnixMs: s.now().UnixMilli(), Kind: &pb.Event_QrGaveUp{QrGaveUp: &pb.QRGaveUp{}}})
	cli.Disconnect()
}

func (s *Session) publishQR(item whatsmeow.QRChannelItem) {
	now := s.now()
	png, err := qrcode.Encode(item.Code, qrcode.Medium, qrPNGSize)
	dataURL := ""
	if err != nil {
		// The raw code still lets the operator CLI draw it in a terminal.
		s.log.Error("render QR code as PNG", "error", err)
	} else {
		dataURL = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
	}
	s.log.Info("QR code offered", "expires_in", item.Timeout.String())
	s.publish(&pb.Event{AtUnixMs: now.UnixMilli(), Kind: &pb.Event_Qr{Qr: &pb.QR{
		Code:            item.Code,
		PngDataUrl:      dataURL,
		ExpiresAtUnixMs: now.Add(item.Timeout).UnixMilli(),
	}}})
}
