package move

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/transfer"
)

// Source is the node that owns the organization, this one.
type Source interface {
	// Stop reports whether the organization ran (wanted a worker), then
	// stops it, waits until its worker process is gone, and keeps it
	// from starting until Restore or Forget. wasRunning is meaningful
	// also with an error.
	Stop(ctx context.Context, org string) (wasRunning bool, err error)
	Export(ctx context.Context, org string) (transfer.Bundle, error)
	// Restore lets the organization start again, and starts it if run.
	Restore(ctx context.Context, org string, run bool) error
	// Forget removes the organization from this node: rows gone, auth
	// directory archived, never deleted.
	Forget(ctx context.Context, org string) error
}

// Target is the node the organization goes to, reached over the network.
type Target interface {
	Import(ctx context.Context, node string, b transfer.Bundle) error
	Discard(ctx context.Context, node, org string) error
	// Activate ends the pending import on node, starts the organization
	// if run, and returns its status there.
	Activate(ctx context.Context, node, org string, run bool) (state.Snapshot, error)
}

// Owners is the cluster's ownership of organizations (etcd).
type Owners interface {
	// SwapOwner sets org's owner to `to` if it is `from`.
	SwapOwner(ctx context.Context, org, from, to string) error
	Owner(ctx context.Context, org string) (node string, found bool, err error)
}

// Request is one move.
type Request struct {
	Org, From, To string
}

// Mover carries moves out; one per node.
type Mover struct {
	Source Source
	Target Target
	Owners Owners
	Log    *slog.Logger
}

// Run carries the move out step by step as Next decides, and returns the
// final state with the organization's status on the target when it moved.
// ctx should not be a caller's request: a move cut off midway is finished
// by its failure path, which needs time too.
func (m Mover) Run(ctx context.Context, req Request) (State, state.Snapshot) {
	return m.runFrom(ctx, req, Begin())
}

// Resolve finishes a move that ended Unknown (etcd lost during the flip):
// the source stays fenced and the target's copy pending until the owner
// can be read, then the move goes on from there, forward or back, as
// Next decides. It polls every `every` until ctx ends.
func (m Mover) Resolve(ctx context.Context, req Request, last State, every time.Duration) (State, state.Snapshot) {
	for {
		s, snap := m.runFrom(ctx, req, State{Step: StepCheckOwner, WasRunning: last.WasRunning, Imported: true})
		if s.Result != Unknown || ctx.Err() != nil {
			return s, snap
		}
		select {
		case <-ctx.Done():
			return s, snap
		case <-time.After(every):
		}
	}
}

func (m Mover) runFrom(ctx context.Context, req Request, s State) (State, state.Snapshot) {
	log := m.Log.With("org", req.Org, "from", req.From, "to", req.To)
	var (
		bundle transfer.Bundle
		snap   state.Snapshot
	)
	for s.Step != StepDone {
		var in Input
		switch s.Step {
		case StepStop:
			ran, err := m.Source.Stop(ctx, req.Org)
			in = outcome(err)
			in.WasRunning = ran
		case StepExport:
			var err error
			bundle, err = m.Source.Export(ctx, req.Org)
			bundle.Run = s.WasRunning
			in = outcome(err)
		case StepImport:
			in = outcome(m.Target.Import(ctx, req.To, bundle))
		case StepFlip:
			if err := m.Owners.SwapOwner(ctx, req.Org, req.From, req.To); err != nil {
				// Any error may come after etcd applied the swap: the
				// owner read next decides.
				in = Input{Outcome: Ambiguous, Cause: err.Error()}
			}
		case StepCheckOwner:
			owner, found, err := m.Owners.Owner(ctx, req.Org)
			switch {
			case err != nil:
				in = outcome(err)
			case !found:
				in = outcome(errors.New("the organization has no owner in etcd"))
			case owner != req.To && owner != req.From:
				in = outcome(fmt.Errorf("the owner is %s, neither source nor target", owner))
			default:
				in.OwnerIsTarget = owner == req.To
			}
		case StepDiscard:
			in = outcome(m.Target.Discard(ctx, req.To, req.Org))
		case StepRestore:
			in = outcome(m.Source.Restore(ctx, req.Org, s.WasRunning))
		case StepForget:
			in = outcome(m.Source.Forget(ctx, req.Org))
		case StepActivate:
			var err error
			snap, err = m.Target.Activate(ctx, req.To, req.Org, s.WasRunning)
			in = outcome(err)
		}
		if in.Outcome != OK {
			log.Warn("move step failed", "step", string(s.Step), "attempt", s.Attempts+1, "err", in.Cause)
		}
		s = Next(s, in)
	}
	switch {
	case s.Result == Moved && s.ForgetFailed:
		log.Error("moved, but the copy on this node could not be archived; it stays stopped here, archive it by hand", "result", string(s.Result))
	case s.Result == Moved:
		log.Info("organization moved", "result", string(s.Result), "was_running", s.WasRunning)
	default:
		log.Warn("move did not complete", "result", string(s.Result), "cause", s.Cause)
	}
	return s, snap
}

func outcome(err error) Input {
	if err != nil {
		return Input{Outcome: Err, Cause: err.Error()}
	}
	return Input{}
}
