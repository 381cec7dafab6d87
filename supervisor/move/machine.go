// Package move carries an organization from the node that owns it to
// another node of the cluster, without ever letting it run on two: the
// source stops its worker and exports it, the target imports and commits
// it, the owner in etcd flips by compare-and-swap only once the target has
// committed, the source archives its copy, and the target starts the
// worker on the same linked device.
//
// The order and what each failure means are the pure state machine of
// this file (Next); Run carries it out against a Source, a Target and the
// cluster's ownership, which are I/O.
package move

// Step is what a move does next.
type Step string

const (
	// StepStop: the source stops the worker and keeps it from starting
	// again while the move lasts; it remembers whether it ran.
	StepStop Step = "stop"
	// StepExport: the source reads the organization into a bundle.
	StepExport Step = "export"
	// StepImport: the target writes the bundle in one transaction,
	// stopped and pending.
	StepImport Step = "import"
	// StepFlip: the owner changes from source to target by compare-and-
	// swap, only ever after the target has committed.
	StepFlip Step = "flip"
	// StepCheckOwner reads the owner after a flip whose answer was lost:
	// the swap may or may not have happened.
	StepCheckOwner Step = "check_owner"
	// StepDiscard: the target drops a pending copy that will not be used
	// (best effort: a pending copy never starts by itself, and the next
	// import replaces it).
	StepDiscard Step = "discard"
	// StepRestore: the source takes the organization back, running again
	// if it ran before the move.
	StepRestore Step = "restore"
	// StepForget: the source removes its rows and archives its auth
	// directory; the target is the owner now.
	StepForget Step = "forget"
	// StepActivate: the target ends the pending import and starts the
	// worker if the organization ran on the source.
	StepActivate Step = "activate"
	// StepDone: nothing left to do; State.Result says how it ended.
	StepDone Step = "done"
)

// Result is how a move ended, the label of cluster_moves_total.
type Result string

const (
	// Moved: the target owns the organization and has taken it over.
	Moved Result = "ok"
	// Failed: the move stopped before the flip; the organization is on
	// the source, running or not as before.
	Failed Result = "failed"
	// Unfinished: the target owns the organization but did not activate
	// it; it is stopped there until started (or the move is retried).
	Unfinished Result = "unfinished"
	// Unknown: whether the owner flipped could not be read (etcd lost
	// meanwhile); the organization stays stopped on both nodes until the
	// owner can be read, and neither starts it.
	Unknown Result = "unknown"
)

// Outcome is what carrying out a step gave.
type Outcome int

const (
	OK Outcome = iota
	Err
	// Ambiguous: only for a flip whose answer was lost.
	Ambiguous
)

// maxActivate and maxCheckOwner bound the retries of the steps that may
// not give up at the first error because the org is already the target's.
const (
	maxActivate   = 3
	maxCheckOwner = 3
)

// State is a move in progress.
type State struct {
	Step Step
	// WasRunning: the organization had a worker (or wanted one) before
	// the move; set by the stop.
	WasRunning bool
	// Imported: the target committed the bundle.
	Imported bool
	// Flipped: the target is the owner.
	Flipped bool
	// Attempts counts the tries of the current step.
	Attempts int
	// Cause is the first failure, kept for the caller's answer.
	Cause string
	// ForgetFailed: the source could not archive its copy; it stays
	// stopped there (the source no longer owns it) for an operator.
	ForgetFailed bool
	Result       Result
}

// Begin is a move before its first step.
func Begin() State { return State{Step: StepStop} }

// Input is the outcome of the step State.Step, with what it learnt.
type Input struct {
	Outcome Outcome
	// Cause describes an Err or Ambiguous outcome.
	Cause string
	// WasRunning comes with the stop's outcome, OK or not.
	WasRunning bool
	// OwnerIsTarget comes with check_owner's OK: the owner read is the
	// target (false: still the source).
	OwnerIsTarget bool
}

// Next is the pure transition: the step after s given the outcome of s's
// step. Before the flip every failure leads back to the source (restore);
// after it, only forward.
func Next(s State, in Input) State {
	if in.Outcome != OK && s.Cause == "" {
		s.Cause = string(s.Step) + ": " + in.Cause
	}
	step := s.Step
	s.Attempts++
	advance := func(to Step) State {
		s.Step, s.Attempts = to, 0
		return s
	}
	switch step {
	case StepStop:
		// Read before the stop, so known also when the stop failed
		// (and may have stopped it anyway): the restore starts it again
		// if it ran, and leaves it alone otherwise.
		s.WasRunning = in.WasRunning
		if in.Outcome != OK {
			return advance(StepRestore)
		}
		return advance(StepExport)
	case StepExport:
		if in.Outcome != OK {
			return advance(StepRestore)
		}
		return advance(StepImport)
	case StepImport:
		if in.Outcome != OK {
			// The target may have committed before its answer was
			// lost: its pending copy goes.
			return advance(StepDiscard)
		}
		s.Imported = true
		return advance(StepFlip)
	case StepFlip:
		switch in.Outcome {
		case OK:
			s.Flipped = true
			return advance(StepForget)
		case Ambiguous:
			return advance(StepCheckOwner)
		}
		return advance(StepDiscard)
	case StepCheckOwner:
		if in.Outcome != OK {
			if s.Attempts < maxCheckOwner {
				return s
			}
			s.Result = Unknown
			return advance(StepDone)
		}
		if in.OwnerIsTarget {
			s.Flipped = true
			return advance(StepForget)
		}
		return advance(StepDiscard)
	case StepDiscard:
		// Best effort: a pending copy never starts by itself.
		return advance(StepRestore)
	case StepRestore:
		// A restore that fails leaves the organization on the source,
		// stopped; the API answer says so.
		s.Result = Failed
		return advance(StepDone)
	case StepForget:
		if in.Outcome != OK {
			s.ForgetFailed = true
		}
		return advance(StepActivate)
	case StepActivate:
		if in.Outcome != OK {
			if s.Attempts < maxActivate {
				return s
			}
			s.Result = Unfinished
			return advance(StepDone)
		}
		s.Result = Moved
		return advance(StepDone)
	}
	return s
}
