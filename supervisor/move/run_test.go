package move

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/transfer"
)

// world is two nodes and etcd's owner key, as far as one organization
// goes; failAt makes one named call fail (lostSwap: the swap applies but
// its answer is lost).
type world struct {
	t                      *testing.T
	owner                  string
	srcRuns, srcHas        bool
	srcFenced              bool
	dstRuns, dstHas        bool
	dstPending             bool
	failAt                 string
	lostSwap, ownerUnknown bool
}

var errInjected = errors.New("injected")

func (w *world) check() {
	if w.srcRuns && w.dstRuns {
		w.t.Fatalf("the organization runs on both nodes: %+v", w)
	}
	if w.dstRuns && w.owner != "b" || w.srcRuns && w.owner != "a" {
		w.t.Fatalf("the organization runs on a node that does not own it: %+v", w)
	}
}

func (w *world) fail(step string) error {
	defer w.check()
	if w.failAt == step {
		return errInjected
	}
	return nil
}

func (w *world) Stop(context.Context, string) (bool, error) {
	ran := w.srcRuns
	w.srcFenced = true
	if err := w.fail("stop"); err != nil {
		return ran, err
	}
	w.srcRuns = false
	return ran, nil
}

func (w *world) Export(context.Context, string) (transfer.Bundle, error) {
	return transfer.Bundle{Org: "o"}, w.fail("export")
}

func (w *world) Restore(_ context.Context, _ string, run bool) error {
	w.srcFenced, w.srcRuns = false, run
	return w.fail("restore")
}

func (w *world) Forget(context.Context, string) error {
	if err := w.fail("forget"); err != nil {
		return err
	}
	w.srcHas = false
	return nil
}

func (w *world) Import(_ context.Context, node string, b transfer.Bundle) error {
	if node != "b" || b.Org != "o" {
		w.t.Fatalf("import of %q on %s", b.Org, node)
	}
	if w.failAt == "import-after-commit" {
		w.dstHas, w.dstPending = true, true
		return errInjected
	}
	if err := w.fail("import"); err != nil {
		return err
	}
	w.dstHas, w.dstPending = true, true
	return nil
}

func (w *world) Discard(context.Context, string, string) error {
	w.dstHas, w.dstPending = false, false
	return w.fail("discard")
}

func (w *world) Activate(_ context.Context, _, _ string, run bool) (state.Snapshot, error) {
	if err := w.fail("activate"); err != nil {
		return state.Snapshot{}, err
	}
	w.dstPending, w.dstRuns = false, run
	w.check()
	return state.Snapshot{OrganizationID: "o", Status: state.Connected}, nil
}

func (w *world) SwapOwner(_ context.Context, _, from, to string) error {
	if !w.dstHas || w.dstPending != true {
		w.t.Fatalf("swap before the target committed: %+v", w)
	}
	if w.lostSwap {
		w.owner = to
		return errInjected
	}
	if err := w.fail("swap"); err != nil {
		return err
	}
	if w.owner != from {
		return errors.New("compare failed")
	}
	w.owner = to
	return nil
}

func (w *world) Owner(context.Context, string) (string, bool, error) {
	if w.ownerUnknown {
		return "", false, errInjected
	}
	return w.owner, true, nil
}

func TestRunKeepsTheOrganizationOnOneNode(t *testing.T) {
	for _, tc := range []struct {
		name      string
		running   bool
		failAt    string
		lostSwap  bool
		unknown   bool
		result    Result
		wantOwner string
	}{
		{name: "running, moved", running: true, result: Moved, wantOwner: "b"},
		{name: "stopped, moved", result: Moved, wantOwner: "b"},
		{name: "stop fails", running: true, failAt: "stop", result: Failed, wantOwner: "a"},
		{name: "export fails", running: true, failAt: "export", result: Failed, wantOwner: "a"},
		{name: "import fails", running: true, failAt: "import", result: Failed, wantOwner: "a"},
		{name: "import commits, answer lost", running: true, failAt: "import-after-commit", result: Failed, wantOwner: "a"},
		{name: "swap refused", running: true, failAt: "swap", result: Failed, wantOwner: "a"},
		{name: "swap applied, answer lost", running: true, lostSwap: true, result: Moved, wantOwner: "b"},
		{name: "owner unreadable", running: true, failAt: "swap", unknown: true, result: Unknown, wantOwner: "a"},
		{name: "forget fails", running: true, failAt: "forget", result: Moved, wantOwner: "b"},
		{name: "activate fails", running: true, failAt: "activate", result: Unfinished, wantOwner: "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &world{t: t, owner: "a", srcRuns: tc.running, srcHas: true, failAt: tc.failAt, lostSwap: tc.lostSwap, ownerUnknown: tc.unknown}
			m := Mover{Source: w, Target: w, Owners: w, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			s, snap := m.Run(context.Background(), Request{Org: "o", From: "a", To: "b"})
			if s.Result != tc.result || w.owner != tc.wantOwner {
				t.Fatalf("result %s owner %s, want %s %s (%+v)", s.Result, w.owner, tc.result, tc.wantOwner, s)
			}
			switch s.Result {
			case Failed:
				if w.srcRuns != tc.running || w.srcFenced || w.dstHas {
					t.Errorf("after a failed move: %+v", w)
				}
			case Moved:
				if w.dstRuns != tc.running || w.dstPending || snap.OrganizationID != "o" {
					t.Errorf("after a move: %+v, status %+v", w, snap)
				}
				if w.srcHas == (tc.failAt != "forget") {
					t.Errorf("source copy kept = %v: %+v", w.srcHas, w)
				}
			case Unknown, Unfinished:
				// Unknown: still fenced on the source, for Resolve.
				if w.srcRuns || w.dstRuns || (s.Result == Unknown && !w.srcFenced) {
					t.Errorf("runs somewhere while the move is unresolved: %+v", w)
				}
			}
		})
	}
}

// A move left Unknown is resolved once the owner can be read: forward
// when the swap had happened, back to the source when not.
func TestResolveFinishesAnUnknownMove(t *testing.T) {
	for _, swapped := range []bool{true, false} {
		w := &world{t: t, owner: "a", srcRuns: true, srcHas: true, failAt: "swap", ownerUnknown: true, lostSwap: swapped}
		m := Mover{Source: w, Target: w, Owners: w, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		req := Request{Org: "o", From: "a", To: "b"}
		s, _ := m.Run(context.Background(), req)
		if s.Result != Unknown || !w.srcFenced || w.srcRuns || w.dstRuns {
			t.Fatalf("swapped %v: before the resolution %+v %+v", swapped, s, w)
		}
		w.ownerUnknown = false
		s, _ = m.Resolve(context.Background(), req, s, time.Millisecond)
		switch {
		case swapped && (s.Result != Moved || !w.dstRuns || w.srcHas):
			t.Errorf("resolved after a swap: %+v %+v", s, w)
		case !swapped && (s.Result != Failed || !w.srcRuns || w.srcFenced || w.dstHas):
			t.Errorf("resolved without a swap: %+v %+v", s, w)
		}
	}
}
