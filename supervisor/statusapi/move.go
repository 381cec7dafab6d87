package statusapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/move"
)

// Mover moves an organization to another node of the cluster;
// *move.Service implements it. It runs on the organization's owner: the
// route is routed there like every organization's route.
type Mover interface {
	Move(ctx context.Context, org, to string) (state.Snapshot, error)
}

// MoveRequest is the body of POST /v1/orgs/{id}/move.
type MoveRequest struct {
	// To is the node to move to; absent or "": the placement picks one
	// of the other live nodes (what `wa-supervisor drain` does).
	To string `json:"to"`
}

// moveWait is how long a move may take before its answer: the worker's
// stop, the bundle's transfer and the start on the target.
const moveWait = 16 * time.Minute

// moveRoute lets the answer wait for the whole move, past the server's
// write timeout, then serves it as any organization's route.
func (s *server) moveRoute() http.HandlerFunc {
	inner := s.org(s.move)
	return func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(moveWait))
		inner(w, r)
	}
}

func (s *server) move(r *http.Request, id string) (int, any, error) {
	var req MoveRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	snap, err := s.mover.Move(r.Context(), id, req.To)
	var me *move.Error
	if errors.As(err, &me) {
		ae := &apiError{status: me.Status, code: me.Code, msg: me.Msg}
		if me.Status == http.StatusServiceUnavailable {
			// Every 503 says when to retry, as the document promises.
			ae.retryAfter = 5 * time.Second
		}
		return 0, nil, ae
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, snap, nil
}
