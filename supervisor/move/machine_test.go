package move

import (
	"reflect"
	"strings"
	"testing"
)

var (
	ok        = Input{}
	fail      = Input{Outcome: Err, Cause: "boom"}
	ambiguous = Input{Outcome: Ambiguous, Cause: "etcd timeout"}
	ran       = Input{WasRunning: true}
	ranFail   = Input{Outcome: Err, Cause: "boom", WasRunning: true}
	toTarget  = Input{OwnerIsTarget: true}
	toSource  = Input{OwnerIsTarget: false}
)

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inputs  []Input
		steps   []Step // visited, from stop, ending with done
		result  Result
		running bool // WasRunning at the end: what the restore or activation starts
		flipped bool
		cause   string
	}{
		{
			name:   "a running organization moves",
			inputs: []Input{ran, ok, ok, ok, ok, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepForget, StepActivate, StepDone},
			result: Moved, running: true, flipped: true,
		},
		{
			name:   "a stopped organization moves and stays stopped",
			inputs: []Input{ok, ok, ok, ok, ok, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepForget, StepActivate, StepDone},
			result: Moved, flipped: true,
		},
		{
			name:   "the stop fails: back on the source as it was",
			inputs: []Input{ranFail, ok},
			steps:  []Step{StepStop, StepRestore, StepDone},
			result: Failed, running: true, cause: "stop: boom",
		},
		{
			name:   "the export fails: restored, not running since it did not run",
			inputs: []Input{ok, fail, ok},
			steps:  []Step{StepStop, StepExport, StepRestore, StepDone},
			result: Failed, cause: "export: boom",
		},
		{
			name:   "the import fails (target killed): its copy is discarded, the source restarts",
			inputs: []Input{ran, ok, fail, ok, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepDiscard, StepRestore, StepDone},
			result: Failed, running: true, cause: "import: boom",
		},
		{
			name:   "a discard that fails does not keep the source from restarting",
			inputs: []Input{ran, ok, fail, fail, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepDiscard, StepRestore, StepDone},
			result: Failed, running: true, cause: "import: boom",
		},
		{
			name:   "the swap is refused: nothing flipped, the source takes it back",
			inputs: []Input{ran, ok, ok, ambiguous, toSource, ok, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepCheckOwner, StepDiscard, StepRestore, StepDone},
			result: Failed, running: true, cause: "flip: etcd timeout",
		},
		{
			name:   "the swap's answer is lost but it happened: forward",
			inputs: []Input{ran, ok, ok, ambiguous, toTarget, ok, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepCheckOwner, StepForget, StepActivate, StepDone},
			result: Moved, running: true, flipped: true, cause: "flip: etcd timeout",
		},
		{
			name:   "the owner cannot be read: neither node starts it",
			inputs: []Input{ran, ok, ok, ambiguous, fail, fail, fail},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepCheckOwner, StepCheckOwner, StepCheckOwner, StepDone},
			result: Unknown, running: true, cause: "flip: etcd timeout",
		},
		{
			name:   "the owner is read on the second try",
			inputs: []Input{ran, ok, ok, ambiguous, fail, toSource, ok, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepCheckOwner, StepCheckOwner, StepDiscard, StepRestore, StepDone},
			result: Failed, running: true, cause: "flip: etcd timeout",
		},
		{
			name:   "after the flip a failed archive does not stop the activation",
			inputs: []Input{ran, ok, ok, ok, fail, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepForget, StepActivate, StepDone},
			result: Moved, running: true, flipped: true, cause: "forget: boom",
		},
		{
			name:   "the activation is retried, then left to an operator; never back to the source",
			inputs: []Input{ran, ok, ok, ok, ok, fail, fail, fail},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepForget, StepActivate, StepActivate, StepActivate, StepDone},
			result: Unfinished, running: true, flipped: true, cause: "activate: boom",
		},
		{
			name:   "the activation succeeds on a retry",
			inputs: []Input{ran, ok, ok, ok, ok, fail, ok},
			steps:  []Step{StepStop, StepExport, StepImport, StepFlip, StepForget, StepActivate, StepActivate, StepDone},
			result: Moved, running: true, flipped: true, cause: "activate: boom",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Begin()
			steps := []Step{s.Step}
			for i, in := range tc.inputs {
				if s.Step == StepDone {
					t.Fatalf("done after %d inputs of %d", i, len(tc.inputs))
				}
				s = Next(s, in)
				steps = append(steps, s.Step)
				// The invariant of a move: the source gets the
				// organization back only while the target does not own it.
				if s.Step == StepRestore && s.Flipped {
					t.Fatalf("restore on the source after the flip: %+v", s)
				}
				if s.Step == StepFlip && !s.Imported {
					t.Fatalf("flip before the target committed: %+v", s)
				}
			}
			if !reflect.DeepEqual(steps, tc.steps) {
				t.Errorf("steps %v, want %v", steps, tc.steps)
			}
			if s.Result != tc.result || s.WasRunning != tc.running || s.Flipped != tc.flipped {
				t.Errorf("ended %+v, want result %s running %v flipped %v", s, tc.result, tc.running, tc.flipped)
			}
			if !strings.HasPrefix(s.Cause, tc.cause) || (tc.cause == "") != (s.Cause == "") {
				t.Errorf("cause %q, want %q", s.Cause, tc.cause)
			}
		})
	}
}
