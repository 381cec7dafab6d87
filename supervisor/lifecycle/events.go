package lifecycle

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// workerEvent applies what a worker reported about its session.
func (s *step) workerEvent(in Input) {
	o := &s.o
	switch in := in.(type) {
	case QRShown:
		if s.live(in.Gen) {
			o.QR = QR{Code: in.Code, PNG: in.PNG, ExpiresAt: in.ExpiresAt}
			o.Session = state.QRRequired
			s.count(MetricQRCode, "")
			s.ev = "qr"
		}
	case Paired:
		if s.ours(in.Gen) {
			s.linked(in.JID)
			o.QR, o.PairingCode = QR{}, ""
			if s.live(in.Gen) {
				// Linked now, logging in with the new auth: what restoring means.
				o.Session = state.Restoring
			}
			s.note(slog.LevelInfo, "paired", "jid", in.JID)
			s.ev = "pair_success"
		}
	case Connected:
		if s.ours(in.Gen) {
			s.linked(in.JID)
			if s.live(in.Gen) {
				o.Session = state.Connected
				o.ConnectedSince = s.now
				o.QR, o.PairingCode = QR{}, ""
			}
			s.ev = "connected"
		}
	case Disconnected:
		if s.live(in.Gen) && o.Session == state.Connected {
			o.Session = state.Disconnected
			s.ev = "disconnected"
		}
	case LoggedOut:
		if s.ours(in.Gen) {
			reason := in.Reason
			if reason == "" {
				reason = "logged_out"
			}
			s.loggedOut(reason)
		}
	case Replaced:
		if s.ours(in.Gen) {
			if o.Run {
				o.Run, o.Restart = false, false
				o.Status = state.Replaced
			}
			s.note(slog.LevelWarn, "another client took the session; no automatic restart")
			s.ev = "stream_replaced"
		}
	case Banned:
		if s.ours(in.Gen) {
			s.banned(in)
		}
	case ConnectFailed:
		if s.live(in.Gen) {
			o.LastError = fmt.Sprintf("connect failure %s: %s", in.Reason, in.Message)
			s.ev = "connect_failure"
		}
	case BadMAC:
		// Errors of a worker already closing belong to the session that
		// tripped, not to the clean one that follows.
		if s.live(in.Gen) {
			s.badMAC(in)
		}
	case DecryptFailed:
		if s.live(in.Gen) {
			s.count(MetricDecryptFailure, in.Reason)
			s.ev = "decrypt_failure"
		}
	case QRGaveUp:
		if s.live(in.Gen) {
			if o.Run {
				o.Run = false
				o.Status = state.Stopped
			}
			s.note(slog.LevelInfo, "no QR scanned in time; worker stopped to free the slot")
			s.ev = "qr_timeout"
		}
	case MessageReceived:
		if s.live(in.Gen) {
			s.ev = "message"
		}
	}
}

// linked records that the store holds a device, unless the store is about
// to be archived: a relink after the archive starts from an empty store, and
// a Linked record would read that as a lost LOGOUT.
func (s *step) linked(jid string) {
	if s.o.ArchivePending == "" {
		s.o.Linked, s.o.JID = true, jid
	}
}

func (s *step) banned(in Banned) {
	o := &s.o
	s.ev = "temporary_ban"
	if in.Until.IsZero() {
		// Without an expiry (WhatsApp may omit it) a relink could only
		// guess, and hammering is what a ban asks us to avoid: stay banned
		// until an operator starts the organization.
		if o.Run {
			o.Run, o.Restart = false, false
			o.Status = state.Banned
		}
		s.note(slog.LevelWarn, "temporarily banned without an expiry; waiting for an operator's start", "code", in.Code)
		return
	}
	o.Hold = o.Hold.extend(in.Until, HoldBan)
	// A ban that already ended still closes this worker: whatsmeow does not
	// log in again by itself after it, a new one does.
	o.Restart = o.Run
	s.note(slog.LevelWarn, "temporarily banned; relinking after the ban", "code", in.Code,
		"until", in.Until.UTC().Format(time.RFC3339))
}

func (s *step) badMAC(in BadMAC) {
	o := &s.o
	counter, out := s.p.BadMAC.Observe(o.BadMAC, in.MessageID, in.Sender, s.now)
	o.BadMAC = counter
	s.ev = "bad_mac"
	if !out.Counted {
		return
	}
	s.count(MetricBadMACError, "")
	if !out.Tripped {
		s.note(slog.LevelWarn, "bad MAC", "count", counter.Count, "limit", s.p.BadMAC.Limit, "message_id", in.MessageID)
		return
	}
	s.count(MetricBadMACTrip, "")
	s.count(MetricSessionCleared, "bad_mac_errors")
	s.note(slog.LevelWarn, "bad MAC limit reached: archiving the session and relinking",
		"trips", counter.TotalTrips, "relink_in", out.Wait.String())
	s.trip(HoldBadMAC, out.Wait, o.Run)
}
