package move

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/transfer"
)

// Fleet is what a move needs of this node's organizations;
// *fleet.Fleet implements it.
type Fleet interface {
	StopForMove(ctx context.Context, id string) (bool, error)
	Unfence(id string)
	Evict(ctx context.Context, id string) error
	Adopt(ctx context.Context, rec lifecycle.Record) (state.Snapshot, error)
	Start(ctx context.Context, id string, opts fleet.StartOptions) (state.Snapshot, error)
	Get(id string) (state.Snapshot, error)
	List() []state.Snapshot
}

// Store is what a move needs of state.db; *store.Store implements it.
type Store interface {
	transfer.Store
	ImportPending(ctx context.Context, org string) (bool, error)
	PendingImports(ctx context.Context) ([]string, error)
	ActivateImport(ctx context.Context, org string, at time.Time) (lifecycle.Record, error)
	LoadOrgs(ctx context.Context) ([]lifecycle.Record, error)
}

// Outbox reloads an organization's sending memory; *outbox.Outbox
// implements it.
type Outbox interface {
	Reload(ctx context.Context, org string) error
}

// Local is this node as either end of a move: the Source of the moves it
// makes, and what the internal routes do when another node moves an
// organization here.
type Local struct {
	Fleet  Fleet
	Store  Store
	Outbox Outbox
	Dirs   transfer.Dirs
	Clock  clock.Clock
	Log    *slog.Logger
	// MaxOrgs is workers.max_orgs: an import that would pass it is
	// refused before the flip, not at the activation after it.
	MaxOrgs int
	// Self is this node's name; Owners reads who owns an organization,
	// so that the target never starts one it does not own.
	Self   string
	Owners Owners
	// Claimer records, where the cluster keeps it, that this node owns a
	// moved-in organization (the owned list a node restarted without etcd
	// trusts); nil: nothing to record.
	Claimer Claimer
}

// Claimer confirms an owner; *cluster.Cluster implements it (a claim of
// an organization that has an owner changes nothing in etcd and returns
// it, and notes it locally when it is this node).
type Claimer interface {
	Claim(ctx context.Context, org, node string) (string, error)
}

// noteOwned tells the Claimer that this node owns org.
func (l *Local) noteOwned(ctx context.Context, org string) error {
	if l.Claimer == nil {
		return nil
	}
	owner, err := l.Claimer.Claim(ctx, org, l.Self)
	if err != nil {
		return err
	}
	if owner != l.Self {
		return fmt.Errorf("note %s as owned: the owner is %q: %w", org, owner, ErrNotOwnedHere)
	}
	return nil
}

// Stop implements Source.
func (l *Local) Stop(ctx context.Context, org string) (bool, error) {
	return l.Fleet.StopForMove(ctx, org)
}

// Export implements Source.
func (l *Local) Export(ctx context.Context, org string) (transfer.Bundle, error) {
	return transfer.Export(ctx, l.Store, l.Dirs, org)
}

// Restore implements Source: the organization takes inputs again and
// starts if it ran. A hold that began meanwhile keeps it stopped, as it
// would any start.
func (l *Local) Restore(ctx context.Context, org string, run bool) error {
	l.Fleet.Unfence(org)
	if !run {
		return nil
	}
	_, err := l.Fleet.Start(ctx, org, fleet.StartOptions{})
	var hold *lifecycle.HoldError
	if errors.As(err, &hold) {
		l.Log.Warn("the organization stays on this node, stopped: a hold keeps it from starting", "org", org, "err", err)
		return nil
	}
	return err
}

// Forget implements Source: the fleet lets go of the organization, then
// its rows go and its auth directory is archived.
func (l *Local) Forget(ctx context.Context, org string) error {
	if err := l.Fleet.Evict(ctx, org); err != nil {
		return err
	}
	if err := transfer.Forget(ctx, l.Store, l.Dirs, org, l.Clock.Now()); err != nil {
		return err
	}
	return l.Outbox.Reload(ctx, org)
}

// Import writes a bundle another node sent: stopped and pending until
// Activate.
func (l *Local) Import(ctx context.Context, b transfer.Bundle) error {
	if n := len(l.Fleet.List()); l.MaxOrgs > 0 && n >= l.MaxOrgs {
		return fmt.Errorf("import %s: %d organizations are registered: %w", b.Org, n, fleet.ErrTooManyOrgs)
	}
	return transfer.Import(ctx, l.Store, l.Dirs, b, l.Clock.Now())
}

// ErrNotPending refuses to discard an organization that is not a pending
// import: a registered one is never dropped by a move.
var ErrNotPending = errors.New("no pending import of the organization on this node")

// Discard drops a pending import that a failed move left (its rows, and
// its auth directory archived).
func (l *Local) Discard(ctx context.Context, org string) error {
	pending, err := l.Store.ImportPending(ctx, org)
	if err != nil {
		return err
	}
	if !pending {
		return fmt.Errorf("discard %s: %w", org, ErrNotPending)
	}
	return transfer.Forget(ctx, l.Store, l.Dirs, org, l.Clock.Now())
}

// ErrNotOwnedHere refuses to activate an organization that etcd does not
// say this node owns.
var ErrNotOwnedHere = errors.New("this node does not own the organization")

// Activate ends a pending import once this node owns the organization
// and hands it to the fleet, which starts it if it ran on the source.
// Asked again (the answer was lost), it answers the organization's status.
func (l *Local) Activate(ctx context.Context, org string) (state.Snapshot, error) {
	owner, found, err := l.Owners.Owner(ctx, org)
	if err != nil {
		return state.Snapshot{}, err
	}
	if !found || owner != l.Self {
		return state.Snapshot{}, fmt.Errorf("activate %s: the owner is %q: %w", org, owner, ErrNotOwnedHere)
	}
	if err := l.noteOwned(ctx, org); err != nil {
		return state.Snapshot{}, err
	}
	pending, err := l.Store.ImportPending(ctx, org)
	if err != nil {
		return state.Snapshot{}, err
	}
	if !pending {
		if snap, err := l.Fleet.Get(org); err == nil {
			return snap, nil
		}
	}
	rec, err := l.activated(ctx, org, pending)
	if err != nil {
		return state.Snapshot{}, err
	}
	if err := l.Outbox.Reload(ctx, org); err != nil {
		return state.Snapshot{}, err
	}
	return l.Fleet.Adopt(ctx, rec)
}

// activated ends the pending import, or, when an earlier activation did
// and the fleet did not take the record in, reads the record.
func (l *Local) activated(ctx context.Context, org string, pending bool) (lifecycle.Record, error) {
	if pending {
		return l.Store.ActivateImport(ctx, org, l.Clock.Now())
	}
	recs, err := l.Store.LoadOrgs(ctx)
	if err != nil {
		return lifecycle.Record{}, err
	}
	for _, r := range recs {
		if r.ID == org && !r.Deleted {
			return r, nil
		}
	}
	return lifecycle.Record{}, fmt.Errorf("activate %s: %w", org, store.ErrNoOrg)
}

// ResumeImports settles, at boot and before the fleet loads the records,
// the imports a restart interrupted: one this node owns is activated (its
// source flipped the owner but could not say so, and the fleet's boot
// then runs it as the source did); one another node owns is a failed
// move's copy and is discarded; with etcd out of reach they wait.
func (l *Local) ResumeImports(ctx context.Context) error {
	pending, err := l.Store.PendingImports(ctx)
	if err != nil {
		return err
	}
	for _, org := range pending {
		owner, found, err := l.Owners.Owner(ctx, org)
		switch {
		case err != nil:
			l.Log.Warn("a moved organization waits: its owner cannot be read", "org", org, "err", err)
		case found && owner == l.Self:
			if err := l.noteOwned(ctx, org); err != nil {
				return err
			}
			if _, err := l.Store.ActivateImport(ctx, org, l.Clock.Now()); err != nil {
				return err
			}
			l.Log.Info("a move interrupted by a restart finished here", "org", org)
		default:
			if err := transfer.Forget(ctx, l.Store, l.Dirs, org, l.Clock.Now()); err != nil {
				return err
			}
			l.Log.Info("the copy of a failed move was discarded", "org", org, "owner", owner)
		}
	}
	return nil
}
