package move

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
)

// Cluster is what the public move needs of the cluster;
// *cluster.Cluster implements it.
type Cluster interface {
	Owners
	Caller
	Self() string
	NodeURL(node string) (url string, live bool)
	Members() []cluster.Member
	Ownership(ctx context.Context) (map[string]string, error)
	CountMove(result string)
}

// Error is a move refused or failed, with the answer the API gives.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// moveTime bounds a whole move, stop to activation: a bundle of hundreds
// of MiB and a worker's stop fit well within it.
const moveTime = 15 * time.Minute

// resolveTime and resolveEvery bound and pace the wait for etcd after a
// move whose flip could not be read back.
const (
	resolveTime  = 24 * time.Hour
	resolveEvery = 5 * time.Second
)

// Service answers POST /v1/orgs/{id}/move on the organization's owner
// (the status API routes the request there).
type Service struct {
	Local *Local
	// Cluster is nil on a single host: there is nowhere to move to.
	Cluster Cluster
}

// Move moves org from this node to the node `to` ("" lets the placement
// choose among the other live nodes, as a drain does), and returns its
// status on the target.
func (s *Service) Move(ctx context.Context, org, to string) (state.Snapshot, error) {
	if err := orgid.Validate(org); err != nil {
		return state.Snapshot{}, &Error{Status: http.StatusBadRequest, Code: "bad_id", Msg: err.Error()}
	}
	if s.Cluster == nil {
		return state.Snapshot{}, &Error{Status: http.StatusConflict, Code: "not_clustered",
			Msg: "this supervisor runs alone (no [cluster] etcd): there is no other node to move an organization to"}
	}
	self := s.Cluster.Self()
	if _, err := s.Local.Fleet.Get(org); err != nil {
		return state.Snapshot{}, err
	}
	owner, found, err := s.Cluster.Owner(ctx, org)
	if err != nil {
		return state.Snapshot{}, err
	}
	if !found || owner != self {
		return state.Snapshot{}, &cluster.MisdirectedError{Owner: owner}
	}
	if to == "" {
		if to, err = s.pick(ctx, org); err != nil {
			return state.Snapshot{}, err
		}
	}
	if err := s.checkTarget(org, to); err != nil {
		return state.Snapshot{}, err
	}
	m := Mover{Source: s.Local, Target: Remote{Caller: s.Cluster}, Owners: s.Cluster, Log: s.Local.Log}
	// Its own context: a caller that hangs up must not leave the move
	// half done; the failure path needs time too.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), moveTime)
	defer cancel()
	req := Request{Org: org, From: self, To: to}
	st, snap := m.Run(mctx, req)
	s.Cluster.CountMove(string(st.Result))
	if st.Result == Unknown {
		// Neither node may run it until etcd says whose it is; then the
		// move goes on, forward or back, without anyone asking again.
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), resolveTime)
			defer cancel()
			final, _ := m.Resolve(rctx, req, st, resolveEvery)
			s.Cluster.CountMove(string(final.Result))
		}()
	}
	return snap, resultError(org, self, to, st)
}

// checkTarget refuses a target that is this node, unknown or down.
func (s *Service) checkTarget(org, to string) error {
	self := s.Cluster.Self()
	if to == self {
		return &Error{Status: http.StatusBadRequest, Code: "bad_body",
			Msg: fmt.Sprintf("to: organization %s is on node %s already", org, to)}
	}
	url, live := s.Cluster.NodeURL(to)
	switch {
	case url == "" && !live:
		known := []string{}
		for _, m := range s.Cluster.Members() {
			known = append(known, m.Node)
		}
		return &Error{Status: http.StatusBadRequest, Code: "unknown_node",
			Msg: fmt.Sprintf("to: node %q is not a member of the cluster (members: %v)", to, known)}
	case !live:
		return &Error{Status: http.StatusServiceUnavailable, Code: "cluster_unavailable",
			Msg: fmt.Sprintf("node %s holds no lease in etcd (down or cut off); move to a live node", to)}
	}
	return nil
}

// pick chooses a target for org among the live nodes but this one, by the
// placement new organizations get.
func (s *Service) pick(ctx context.Context, org string) (string, error) {
	owners, err := s.Cluster.Ownership(ctx)
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	for _, n := range owners {
		count[n]++
	}
	others := slices.DeleteFunc(s.Cluster.Members(), func(m cluster.Member) bool { return m.Node == s.Cluster.Self() })
	node, err := cluster.Place(org, others, count)
	if errors.Is(err, cluster.ErrFull) {
		return "", &Error{Status: http.StatusConflict, Code: "no_capacity",
			Msg: "no other live node has capacity left for the organization; raise cluster.capacity or add a node"}
	}
	return node, err
}

// resultError turns how a move ended into the API's answer.
func resultError(org, from, to string, st State) error {
	switch st.Result {
	case Moved:
		return nil
	case Failed:
		was := "stopped"
		if st.WasRunning {
			was = "running"
		}
		return &Error{Status: http.StatusBadGateway, Code: "move_failed",
			Msg: fmt.Sprintf("the move of organization %s to node %s failed (%s); it stays on node %s, %s as before", org, to, st.Cause, from, was)}
	case Unfinished:
		return &Error{Status: http.StatusBadGateway, Code: "move_unfinished",
			Msg: fmt.Sprintf("organization %s is on node %s now but was not started there (%s); POST /v1/orgs/%[1]s/start starts it", org, to, st.Cause)}
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: "cluster_unavailable",
		Msg: fmt.Sprintf("whether organization %s moved to node %s cannot be told while etcd is out of reach (%s); it stays stopped on both nodes until etcd answers, then the move finishes or goes back by itself", org, to, st.Cause)}
}

var _ Caller = (*cluster.Cluster)(nil)
