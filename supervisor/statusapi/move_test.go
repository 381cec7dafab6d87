package statusapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/move"
)

// fakeMover answers as told and records what it was asked.
type fakeMover struct {
	err     error
	org, to string
}

func (m *fakeMover) Move(_ context.Context, org, to string) (state.Snapshot, error) {
	m.org, m.to = org, to
	if m.err != nil {
		return state.Snapshot{}, m.err
	}
	return state.Snapshot{OrganizationID: org, Status: state.Connected, Node: to}, nil
}

func newMoveHarness(t *testing.T, m Mover) *harness {
	t.Helper()
	f := newFakeFleet()
	log := slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil))
	return &harness{t: t, fleet: f, h: New(f, Options{APIKey: testKey, Listen: "127.0.0.1:8089", Log: log, Mover: m})}
}

func TestMoveAnswersTheStatusOnTheTarget(t *testing.T) {
	m := &fakeMover{}
	h := newMoveHarness(t, m)
	rec := h.do("POST", "/v1/orgs/2/move", `{"to":"node-b"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	snap := decodeAs[state.Snapshot](t, rec)
	if snap.Node != "node-b" || m.org != "2" || m.to != "node-b" {
		t.Fatalf("moved %s to %s, answered %+v", m.org, m.to, snap)
	}
	// No body: the placement picks the target, as a drain asks.
	if rec := h.do("POST", "/v1/orgs/2/move", ""); rec.Code != http.StatusOK || m.to != "" {
		t.Fatalf("a move without a target: %d %s, to %q", rec.Code, rec.Body, m.to)
	}
}

func TestMoveErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		err        error
		status     int
		code       string
	}{
		{name: "unknown field", body: `{"node":"b"}`, status: http.StatusBadRequest, code: "bad_body"},
		{name: "wrong type", body: `{"to":5}`, status: http.StatusBadRequest, code: "bad_body"},
		{name: "unknown node", body: `{"to":"zz"}`, err: &move.Error{Status: 400, Code: "unknown_node", Msg: "to: node zz is not a member"}, status: http.StatusBadRequest, code: "unknown_node"},
		{name: "unknown org", body: `{"to":"b"}`, err: fmt.Errorf("organization 2: %w", lifecycle.ErrUnknownOrg), status: http.StatusNotFound, code: "unknown_org"},
		{name: "no etcd", body: `{"to":"b"}`, err: fmt.Errorf("read owner: %w", cluster.ErrUnavailable), status: http.StatusServiceUnavailable, code: "cluster_unavailable"},
		{name: "moving already", body: `{"to":"b"}`, err: &lifecycle.ConflictError{Org: "2", Msg: "a move of the organization is already under way"}, status: http.StatusConflict, code: "conflict"},
		{name: "failed halfway", body: `{"to":"b"}`, err: &move.Error{Status: 502, Code: "move_failed", Msg: "the move failed; it stays on node a"}, status: http.StatusBadGateway, code: "move_failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newMoveHarness(t, &fakeMover{err: tc.err})
			wantError(t, h.do("POST", "/v1/orgs/2/move", tc.body), tc.status, tc.code)
		})
	}
}

// A move's own 503 (its target holds no lease, or etcd went away
// mid-move) says when to retry, as every 503 does.
func TestMoveUnavailableSaysWhenToRetry(t *testing.T) {
	h := newMoveHarness(t, &fakeMover{err: &move.Error{Status: http.StatusServiceUnavailable, Code: "cluster_unavailable", Msg: "node b holds no lease in etcd"}})
	rec := h.do("POST", "/v1/orgs/2/move", `{"to":"b"}`)
	wantError(t, rec, http.StatusServiceUnavailable, "cluster_unavailable")
	if rec.Header().Get("Retry-After") == "" {
		t.Error("a 503 without Retry-After")
	}
}

// On one host the real service says there is nowhere to go, as a 409 the
// caller cannot cure by retrying.
func TestMoveOnOneHost(t *testing.T) {
	h := newMoveHarness(t, &move.Service{})
	e := wantError(t, h.do("POST", "/v1/orgs/2/move", `{"to":"b"}`), http.StatusConflict, "not_clustered")
	if !bytes.Contains([]byte(e.Error), []byte("[cluster]")) {
		t.Errorf("the sentence does not say what to configure: %q", e.Error)
	}
}
