package statusapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
)

// Cluster is what the API needs in cluster mode (nil: one host, and
// nothing here runs). *cluster.Router implements it.
type Cluster interface {
	// Self is this node's name, sent in X-Wa-Sidecar-Node and "node".
	Self() string
	// FromNode reports whether the request carries the cluster key: a
	// call from another node, which needs no API key.
	FromNode(r *http.Request) bool
	// Route answers a request about org on its owner when that is another
	// node (true), or leaves it to this node (false).
	Route(w http.ResponseWriter, r *http.Request, org string, registers bool) (bool, error)
	// Others lists the other nodes' organizations and names the nodes
	// that did not answer.
	Others(ctx context.Context) ([]state.Snapshot, []string)
}

// UnreachableHeader names the nodes whose organizations a cluster-wide
// list lacks because they did not answer.
const UnreachableHeader = "X-Wa-Sidecar-Unreachable-Nodes"

// internalPrefix holds the node-to-node routes, which refuse any caller
// without the cluster key, API key or not.
const internalPrefix = "/internal/"

// localList is this node's organizations, each naming the node in cluster mode.
func (s *server) localList() []state.Snapshot {
	snaps := s.fleet.List()
	if snaps == nil {
		snaps = []state.Snapshot{} // `[]`, not `null`, for callers that iterate
	}
	if s.cluster != nil {
		for i := range snaps {
			snaps[i].Node = s.cluster.Self()
		}
	}
	return snaps
}

// clusterList adds the other nodes' organizations to this node's.
func (s *server) clusterList(w http.ResponseWriter, r *http.Request) []state.Snapshot {
	snaps := s.localList()
	others, unreachable := s.cluster.Others(r.Context())
	snaps = append(snaps, others...)
	sortSnapshots(snaps)
	if len(unreachable) > 0 {
		w.Header().Set(UnreachableHeader, strings.Join(unreachable, ","))
	}
	return snaps
}

// routeOrg sends a request about id to its owner when another node owns
// it; true means it was answered (or refused with the error written).
func (s *server) routeOrg(w http.ResponseWriter, r *http.Request, id string) bool {
	if s.cluster == nil {
		return false
	}
	registers := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/start")
	handled, err := s.cluster.Route(w, r, id, registers)
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	return handled
}

// classifyCluster maps the cluster's errors; nil for any other error.
func classifyCluster(r *http.Request, err error) *apiError {
	var (
		unreachable *cluster.UnreachableError
		misdirected *cluster.MisdirectedError
	)
	switch {
	case errors.As(err, &unreachable):
		return &apiError{status: http.StatusBadGateway, code: "owner_unreachable",
			msg: fmt.Sprintf("organization %s is owned by node %s, which cannot be reached; its organizations come back with it", r.PathValue("id"), unreachable.Node)}
	case errors.As(err, &misdirected):
		return &apiError{status: http.StatusMisdirectedRequest, code: "not_owner", msg: misdirected.Error(), retryAfter: time.Second}
	case errors.Is(err, cluster.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, code: "cluster_unavailable",
			msg:        "this node cannot reach etcd: it keeps running the organizations it owns, and refuses registrations and moves until etcd is back",
			retryAfter: 5 * time.Second}
	case errors.Is(err, cluster.ErrFull):
		return &apiError{status: http.StatusServiceUnavailable, code: "cluster_full", msg: err.Error(), retryAfter: 30 * time.Second}
	}
	return nil
}

// sortSnapshots keeps the cluster-wide list sorted by ID, as the local one
// is, so that pollers can diff consecutive answers.
func sortSnapshots(snaps []state.Snapshot) {
	slices.SortFunc(snaps, func(a, b state.Snapshot) int { return strings.Compare(a.OrganizationID, b.OrganizationID) })
}

// routedByBody routes the old callers' route, which names the organization
// in its body, to the owner: the body is read here (bounded as the route
// bounds it) and handed on whole, to the owner or to next.
func (s *server) routedByBody(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cluster == nil {
			next(w, r)
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			s.writeError(w, r, bodyError(err))
			return
		}
		replay := func() {
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
		}
		var req struct {
			OrganizationID json.RawMessage `json:"organization_id"`
		}
		// A body that does not name a valid ID gets its error from next.
		if json.Unmarshal(raw, &req) == nil {
			if id, err := seedOrgID(req.OrganizationID); err == nil {
				r.SetPathValue("id", id)
				replay()
				if s.routeOrg(w, r, id) {
					return
				}
			}
		}
		replay()
		next(w, r)
	}
}
