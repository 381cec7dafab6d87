// Package badmac tells a Bad MAC apart from other decrypt failures.
//
// In Go the two halves of the signal never meet in one error value:
// go.mau.fi/libsignal logs "mismatching MAC in signal message" through its
// package logger (SessionCipher.go:260 and :316) without a message id, tries
// older session states and returns ErrNoValidSessions; whatsmeow then logs
// "Error decrypting message <id> from <jid>: <err>" (message.go:386) and
// dispatches events.UndecryptableMessage{IsUnavailable: false}. A Detector
// sits in both loggers and joins them, so that the supervisor can count Bad
// MACs per organization and nothing else.
//
// Why one pending mark rather than a counter or per-goroutine state:
// whatsmeow handles incoming nodes one at a time (client.go
// handlerQueueLoop waits for each node handler before taking the next), and
// within one <message> node decryptMessages logs "Decrypting message from",
// runs libsignal, logs the error and dispatches UndecryptableMessage
// synchronously, then returns. So the MAC lines of a message always sit
// between that message's "Decrypting message from" line and its error line,
// and no other message's lines interleave. A counter would be wrong because
// libsignal logs one line per session state it tries (a corrupted message
// can produce many lines); goroutine identity is not available in Go without
// parsing stacks. The only way messages overlap is whatsmeow's "continuing
// handling in background" after a handler has taken five minutes, which
// does not happen to a decrypt.
package badmac

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.mau.fi/libsignal/signalerror"
	"go.mau.fi/whatsmeow/types/events"
)

// Kind is what an undecryptable message was.
type Kind int

const (
	// DecryptFailure is any failure that is not a Bad MAC; Verdict.Reason says which.
	DecryptFailure Kind = iota
	// BadMAC is a message whose MAC did not verify with any session state.
	BadMAC
)

// Reasons of a DecryptFailure. They become metric labels upstream, so the
// set is small and fixed.
const (
	ReasonUnavailable       = "unavailable"        // the sender sent no ciphertext for this device
	ReasonStoreBusy         = "store_busy"         // SQLite was locked: our fault, never the keys'
	ReasonNoSession         = "no_session"         // no Signal session with the sender
	ReasonNoSenderKey       = "no_sender_key"      // group message before the sender key arrived
	ReasonUntrustedIdentity = "untrusted_identity" // the sender's identity key changed
	ReasonNoValidSession    = "no_valid_session"   // every session state failed, none on a MAC
	ReasonOther             = "decrypt_error"      // any other decrypt error whatsmeow logged
	ReasonUnknown           = "unknown"            // whatsmeow dispatched the event without logging why
)

// Verdict is the classification of one undecryptable message.
type Verdict struct {
	Kind   Kind
	Reason string // empty for BadMAC
}

// macText is what libsignal's log lines carry for a Bad MAC; taken from
// the library's own error so that a reworded error still matches.
var macText = signalerror.ErrBadMAC.Error()

// Detector joins libsignal's MAC log lines with whatsmeow's per-message
// decrypt errors and events. It is safe for concurrent use.
type Detector struct {
	mu sync.Mutex
	// macPending: libsignal reported a MAC mismatch since the current
	// message's decryption began.
	macPending bool
	// last is the verdict of the most recent decrypt error, waiting for the
	// UndecryptableMessage that whatsmeow dispatches right after logging it.
	// One slot is enough because messages are handled one at a time.
	last *pending
}

type pending struct {
	id      string
	verdict Verdict
}

// New returns a Detector with nothing pending.
func New() *Detector { return &Detector{} }

// decryptStarted is called when whatsmeow starts decrypting a new message: a
// MAC mismatch seen before belongs to an earlier message that an older
// session state then decrypted after all, so it must not be charged to this
// one.
func (d *Detector) decryptStarted() {
	d.mu.Lock()
	d.macPending = false
	d.mu.Unlock()
}

// macMismatch records a MAC mismatch reported by libsignal. It sets a flag,
// not a count: one message can log it once per session state tried.
func (d *Detector) macMismatch() {
	d.mu.Lock()
	d.macPending = true
	d.mu.Unlock()
}

// decryptFailed records whatsmeow's decrypt error for message id and
// decides what it was, consuming any pending MAC mark.
func (d *Detector) decryptFailed(id string, err error, text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := classifyError(err, text, d.macPending)
	d.macPending = false
	d.last = &pending{id: id, verdict: v}
}

// classifyError: a busy store wins over everything, because a locked
// database can surface after a MAC mismatch on an old state and the keys
// are fine; a MAC mismatch counts only when libsignal ran out of states.
func classifyError(err error, text string, macSeen bool) Verdict {
	switch {
	case isStoreBusy(text):
		return Verdict{Kind: DecryptFailure, Reason: ReasonStoreBusy}
	case macSeen && (errors.Is(err, signalerror.ErrNoValidSessions) || strings.Contains(text, signalerror.ErrNoValidSessions.Error())):
		return Verdict{Kind: BadMAC}
	case errors.Is(err, signalerror.ErrNoSessionForUser) || strings.Contains(text, signalerror.ErrNoSessionForUser.Error()):
		return Verdict{Kind: DecryptFailure, Reason: ReasonNoSession}
	case errors.Is(err, signalerror.ErrNoSenderKeyForUser) || strings.Contains(text, signalerror.ErrNoSenderKeyForUser.Error()):
		return Verdict{Kind: DecryptFailure, Reason: ReasonNoSenderKey}
	case errors.Is(err, signalerror.ErrUntrustedIdentity) || strings.Contains(text, signalerror.ErrUntrustedIdentity.Error()):
		return Verdict{Kind: DecryptFailure, Reason: ReasonUntrustedIdentity}
	case errors.Is(err, signalerror.ErrNoValidSessions) || strings.Contains(text, signalerror.ErrNoValidSessions.Error()):
		return Verdict{Kind: DecryptFailure, Reason: ReasonNoValidSession}
	default:
		return Verdict{Kind: DecryptFailure, Reason: ReasonOther}
	}
}

// isStoreBusy matches modernc.org/sqlite's busy and locked errors by text:
// libsignal's store interfaces do not promise to keep the error chain, and
// the design measured "database is locked (SQLITE_BUSY)" in exactly this path.
func isStoreBusy(text string) bool {
	return strings.Contains(text, "database is locked") ||
		strings.Contains(text, "SQLITE_BUSY") ||
		strings.Contains(text, "SQLITE_LOCKED") ||
		strings.Contains(text, "database table is locked")
}

// Classify decides what an UndecryptableMessage was. Call it once per event,
// from the whatsmeow event handler.
func (d *Detector) Classify(evt *events.UndecryptableMessage) Verdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	last := d.last
	d.last = nil
	if evt.IsUnavailable {
		// whatsmeow takes this path without decrypting anything.
		d.macPending = false
		return Verdict{Kind: DecryptFailure, Reason: ReasonUnavailable}
	}
	if last != nil && last.id == evt.Info.ID {
		return last.verdict
	}
	// whatsmeow dispatched without the error line we know: fall back on the
	// MAC mark alone, which is what the design describes as the minimum.
	mac := d.macPending
	d.macPending = false
	if mac {
		return Verdict{Kind: BadMAC}
	}
	return Verdict{Kind: DecryptFailure, Reason: ReasonUnknown}
}

// String makes verdicts readable in logs and test failures.
func (v Verdict) String() string {
	if v.Kind == BadMAC {
		return "bad_mac"
	}
	return fmt.Sprintf("decrypt_failure(%s)", v.Reason)
}
