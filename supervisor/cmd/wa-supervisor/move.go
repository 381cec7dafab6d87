package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// moveTimeout bounds one move as the CLI waits for it: the daemon bounds
// the move itself, this only keeps a lost answer from hanging the shell.
const moveTimeout = 20 * time.Minute

// mover is what move and drain need of the status API.
type mover interface {
	ListCluster(ctx context.Context) ([]state.Snapshot, []string, error)
	Move(ctx context.Context, id, to string) (state.Snapshot, error)
}

// moveOrg moves one organization and prints its status on the target.
func moveOrg(ctx context.Context, c mover, org, node string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, moveTimeout)
	defer cancel()
	snap, err := c.Move(ctx, org, node)
	if err != nil {
		return err
	}
	return printJSON(out, snap)
}

// drain moves every organization off node, one at a time, each to the
// node the placement picks, with one line per organization. It goes on
// past a failure (that organization stays where it was) and fails at the
// end if any did not move. A node that does not answer is refused: the
// list cannot show what it owns.
func drain(ctx context.Context, c mover, node string, out io.Writer) error {
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	all, unreachable, err := c.ListCluster(lctx)
	cancel()
	if err != nil {
		return err
	}
	// A node that does not answer is missing from the list: its
	// organizations would read as none, and only the owner carries a move
	// out.
	if slices.Contains(unreachable, node) {
		return fmt.Errorf("node %s does not answer: its organizations cannot be moved until it is back", node)
	}
	var orgs []string
	for _, s := range all {
		if s.Node == node {
			orgs = append(orgs, s.OrganizationID)
		}
	}
	if len(orgs) == 0 {
		_, err := fmt.Fprintf(out, "node %s owns no organizations\n", node)
		return err
	}
	failed := 0
	for _, org := range orgs {
		mctx, cancel := context.WithTimeout(ctx, moveTimeout)
		snap, err := c.Move(mctx, org, "")
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(out, "%s\tnot moved\t%v\n", org, err)
			continue
		}
		fmt.Fprintf(out, "%s\tmoved to %s\t%s\n", org, snap.Node, snap.Status)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d organizations stay on node %s", failed, len(orgs), node)
	}
	return nil
}
