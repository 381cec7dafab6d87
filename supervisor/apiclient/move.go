package apiclient

import (
	"context"
	"net/http"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// Move moves the organization to node to ("" lets the cluster pick one
// of the other live nodes) and returns its status there.
func (c *Client) Move(ctx context.Context, id, to string) (state.Snapshot, error) {
	var s state.Snapshot
	err := c.do(ctx, http.MethodPost, orgPath(id, "/move"), statusapi.MoveRequest{To: to}, &s)
	return s, err
}
