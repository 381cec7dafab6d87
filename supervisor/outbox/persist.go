package outbox

import (
	"errors"
	"sync/atomic"
)

// ErrNotSaved answers a message or broadcast that state.db could not commit
// because the disk refused the write (full, or an I/O error): nothing was
// queued, and the same request may be sent again once space is back.
var ErrNotSaved = errors.New("the message could not be saved: the state store refuses writes (disk full or I/O error; see the log); nothing was queued, retry later")

// SQLite's primary result codes for a write the disk refused.
// modernc.org/sqlite's *sqlite.Error reports them with Code(); an extended
// code (SQLITE_IOERR_WRITE, ...) keeps the primary one in its low byte.
const (
	sqliteIOErr = 10
	sqliteFull  = 13
)

// persistFailed reports whether err is state.db refusing a write for want
// of disk, as opposed to a bad request or a bug: the first is the
// operator's to fix and the caller's to retry (503), the others are not.
func persistFailed(err error) bool {
	var c interface{ Code() int }
	if !errors.As(err, &c) {
		return false
	}
	switch c.Code() & 0xff {
	case sqliteIOErr, sqliteFull:
		return true
	}
	return false
}

// notSaved is a write the disk refused: it reads as ErrNotSaved (the API
// shows that sentence, not the driver's) and keeps the cause for the log.
type notSaved struct{ err error }

func (e notSaved) Error() string        { return ErrNotSaved.Error() }
func (e notSaved) Is(target error) bool { return target == ErrNotSaved }
func (e notSaved) Unwrap() error        { return e.err }

// persistState remembers whether the last message write failed for want
// of disk.
type persistState struct{ failing atomic.Bool }

// wrote notes the outcome of a message write and returns err, marked
// ErrNotSaved when the disk refused it: /readyz then fails until a write
// succeeds again, as it does for the organizations' commits.
func (o *Outbox) wrote(org string, err error) error {
	if err == nil {
		if o.persist.failing.Swap(false) {
			o.log.Info("messages are saved again", "org", org)
		}
		return nil
	}
	if !persistFailed(err) {
		return err
	}
	o.persist.failing.Store(true)
	o.metrics.PersistError()
	o.log.Error("saving a message failed: state.db refuses writes (disk full or I/O error); /readyz fails until a write succeeds",
		"org", org, "err", err)
	return notSaved{err}
}

// Ready is nil while message writes go through; after the disk refused
// one it wraps ErrNotSaved until a write succeeds again.
func (o *Outbox) Ready() error {
	if o.persist.failing.Load() {
		return ErrNotSaved
	}
	return nil
}
