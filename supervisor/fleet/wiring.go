package fleet

// What a Fleet is wired to (its processes, store, archiver, metrics and
// listener), its options, and the errors and options of its calls.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/contract"
	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// Worker is a running worker process as the fleet sees it.
type Worker interface {
	contract.Worker
	PID() int
	// Kill ends the process (gracefully first) and returns once it has
	// been reaped; calling it twice is safe.
	Kill()
}

// LaunchFunc starts a worker process for org. On an error no process of it
// may be left: it never forked or it has been reaped.
type LaunchFunc func(ctx context.Context, org string) (Worker, error)

// Store is where the organizations' records are committed.
type Store interface {
	// SaveOrg commits a record with the webhook events of its change, at
	// at. A tombstone fails the organization's queued messages in the same
	// transaction: no crash between the two leaves one to send.
	SaveOrg(ctx context.Context, r lifecycle.Record, events []webhook.Event, at time.Time) error
	DeleteOrg(ctx context.Context, id string) error
}

// Archiver moves an organization's auth directory aside and prunes old
// archives; the archive package provides the real one.
type Archiver interface {
	Move(org, reason string, now time.Time) (string, error)
	Prune(org string, keep int) ([]string, error)
}

// Metrics is what the fleet reports; *metrics.Metrics implements it.
type Metrics interface {
	SetStatus(org string, s state.Status)
	Forget(org string)
	SetLive(byEgress map[string]int)
	SetQueueDepth(n int)
	BadMACError(org string)
	BadMACTrip(org string)
	SessionCleared(org, reason string)
	Logout(org, reason string)
	WorkerRestart(org, reason string)
	SetRSS(org string, bytes int64)
	QRCode(org string)
	ObserveStart(d time.Duration)
	DecryptFailure(org, reason string)
	PersistError()
}

// Listener hears what the organizations do beyond their lifecycle: the
// outbox sends while an organization is connected, and learns of receipts
// and of who wrote in. Its methods must not block for long: they run on
// the organizations' runners and event streams.
type Listener interface {
	OrgStatus(org string, connected bool, jid string)
	OrgDeleted(org string)
	Receipt(org string, waIDs []string, typ string, at time.Time)
	Heard(org, sender, chat, id, text string)
}

// Options wires a Fleet.
type Options struct {
	Config  config.Config
	Store   Store
	Launch  LaunchFunc
	Archive Archiver
	Metrics Metrics
	Clock   clock.Clock
	Log     *slog.Logger
	// Jitter picks the random delay before a start; nil = uniform.
	Jitter func(min, max time.Duration) time.Duration
	// Intn picks fingerprints; nil = math/rand/v2.
	Intn func(n int) int
	// Lookup resolves a proxy's host name for its egress key; nil =
	// net.DefaultResolver.
	Lookup proxy.LookupFunc
	// Listener, when set, hears statuses, receipts and senders.
	Listener Listener
	// Decorate, when set, adds to every status object (the outbox counts).
	Decorate func(*state.Snapshot)
	// Webhooks makes every transition commit its webhook events.
	Webhooks bool
	// Purged, when set, hears each deleted organization once its
	// tombstone is gone from the store (its holds have ended); in cluster
	// mode it releases the organization's place in etcd. It runs on the
	// organization's own goroutine, before that goroutine takes anything
	// else about it.
	Purged func(org string)
}

// ErrBooting refuses calls before Boot has loaded the state.
var ErrBooting = errors.New("the supervisor is still loading its state")

// ErrNotSaved answers a change that could not be committed in time: the
// state store refuses writes. The change stays invisible and is retried; it
// takes effect once the store accepts it.
var ErrNotSaved = errors.New("the change could not be saved yet (the state store refuses writes; see the log); it is retried and takes effect once saved")

// ErrBinaryChanged marks a launch refused because the worker binary is not
// the one checked at boot: no organization can start until the supervisor
// restarts, so it is not a crash of the organization's.
var ErrBinaryChanged = errors.New("worker binary changed")

// BinaryChanged marks err, a launcher's refusal, as ErrBinaryChanged.
func BinaryChanged(err error) error { return binaryChanged{err} }

type binaryChanged struct{ error }

func (binaryChanged) Is(target error) bool { return target == ErrBinaryChanged }
func (b binaryChanged) Unwrap() error      { return b.error }

// ErrTooManyOrgs refuses to register an organization beyond workers.max_orgs.
var ErrTooManyOrgs = errors.New("workers.max_orgs organizations are registered already")

// StartOptions is the optional body of a start.
type StartOptions struct {
	// Force closes a live worker so that a new one starts (and skips a
	// crash backoff); it never shortens a hold.
	Force bool
	// Proxy, when set, replaces the organization's proxy ("" = direct),
	// from its next start on.
	Proxy *string
}
