package move

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/supervisor/transfer"
)

// The internal routes of a move, served by the target (Handler) and
// called by the source (Remote), with the cluster key.
const (
	importPath   = "/internal/v1/orgs/%s/import"
	discardPath  = "/internal/v1/orgs/%s/discard"
	activatePath = "/internal/v1/orgs/%s/activate"
)

// Caller makes a node-to-node call with the cluster key;
// *cluster.Cluster implements it.
type Caller interface {
	Request(ctx context.Context, method, node, path string, body io.Reader) (*http.Response, error)
}

// Remote is the Target of a move, over the target node's internal routes.
type Remote struct {
	Caller Caller
}

// Import implements Target: the bundle is streamed, never held twice.
func (r Remote) Import(ctx context.Context, node string, b transfer.Bundle) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(transfer.Encode(pw, b)) }()
	defer pr.Close()
	_, err := r.call(ctx, node, fmt.Sprintf(importPath, url.PathEscape(b.Org)), pr)
	return err
}

// Discard implements Target.
func (r Remote) Discard(ctx context.Context, node, org string) error {
	_, err := r.call(ctx, node, fmt.Sprintf(discardPath, url.PathEscape(org)), nil)
	return err
}

// Activate implements Target; run is the target's to read from the
// pending import (what the source had), so it is not sent.
func (r Remote) Activate(ctx context.Context, node, org string, _ bool) (state.Snapshot, error) {
	raw, err := r.call(ctx, node, fmt.Sprintf(activatePath, url.PathEscape(org)), nil)
	if err != nil {
		return state.Snapshot{}, err
	}
	var snap state.Snapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		return state.Snapshot{}, fmt.Errorf("node %s: the status it answered: %w", node, err)
	}
	return snap, nil
}

// RemoteError is a target's refusal, with its error body.
type RemoteError struct {
	Node   string
	Status int
	Code   string
	Msg    string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("node %s answered %d %s: %s", e.Node, e.Status, e.Code, e.Msg)
}

// maxAnswer bounds what is read of an internal route's answer.
const maxAnswer = 1 << 20

func (r Remote) call(ctx context.Context, node, path string, body io.Reader) ([]byte, error) {
	resp, err := r.Caller.Request(ctx, http.MethodPost, node, path, body)
	var unreachable *cluster.UnreachableError
	if errors.As(err, &unreachable) {
		// Its own sentence speaks of an owner; here the node is the target.
		return nil, fmt.Errorf("target node %s cannot be reached: %w", node, unreachable.Err)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		return nil, &RemoteError{Node: node, Status: resp.StatusCode, Code: e.Code, Msg: e.Error}
	}
	return raw, nil
}
