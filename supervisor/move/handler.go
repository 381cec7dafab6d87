package move

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/transfer"
)

// transferTime bounds an import's body and answer: a bundle of hundreds of
// MiB between two hosts, well past the API server's 20 s read timeout.
const transferTime = 10 * time.Minute

// Routes are the internal routes of a move on the target. They are mounted
// where only callers with the cluster key reach them (statusapi's
// Options.Internal); they answer in the API's error shape.
func (l *Local) Routes() []cluster.InternalRoute {
	pattern := func(path string) string { return strings.ReplaceAll(path, "%s", "{id}") }
	return []cluster.InternalRoute{
		{Method: "POST", Pattern: pattern(importPath), Handler: l.serveImport},
		{Method: "POST", Pattern: pattern(discardPath), Handler: l.serveDiscard},
		{Method: "POST", Pattern: pattern(activatePath), Handler: l.serveActivate},
	}
}

func (l *Local) serveImport(w http.ResponseWriter, r *http.Request) {
	id, ok := l.orgOf(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(transferTime))
	_ = rc.SetWriteDeadline(time.Now().Add(transferTime))
	b, err := transfer.Decode(http.MaxBytesReader(w, r.Body, transfer.MaxBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		l.answer(w, r, id, http.StatusRequestEntityTooLarge, nil, "too_large",
			fmt.Errorf("the bundle is over %d bytes", transfer.MaxBytes))
		return
	case err != nil:
		l.answer(w, r, id, http.StatusBadRequest, nil, "bad_body", err)
		return
	case b.Org != id:
		l.answer(w, r, id, http.StatusBadRequest, nil, "bad_body", fmt.Errorf("the bundle holds %q, not %s", b.Org, id))
		return
	}
	// The move's own context: a source that hangs up must not cut an
	// import in half (it is one transaction anyway).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), transferTime)
	defer cancel()
	if err := l.Import(ctx, b); err != nil {
		l.fail(w, r, id, err)
		return
	}
	l.Log.Info("organization imported by a move, pending its activation", "org", id)
	l.answer(w, r, id, http.StatusOK, map[string]any{"organization_id": id, "imported": true}, "", nil)
}

func (l *Local) serveDiscard(w http.ResponseWriter, r *http.Request) {
	id, ok := l.orgOf(w, r)
	if !ok {
		return
	}
	if err := l.Discard(r.Context(), id); err != nil {
		l.fail(w, r, id, err)
		return
	}
	l.Log.Info("the copy of a failed move was discarded", "org", id)
	l.answer(w, r, id, http.StatusOK, map[string]any{"organization_id": id, "discarded": true}, "", nil)
}

func (l *Local) serveActivate(w http.ResponseWriter, r *http.Request) {
	id, ok := l.orgOf(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	snap, err := l.Activate(ctx, id)
	if err != nil {
		l.fail(w, r, id, err)
		return
	}
	snap.Node = l.Self
	l.answer(w, r, id, http.StatusOK, snap, "", nil)
}

func (l *Local) orgOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := orgid.Validate(id); err != nil {
		l.answer(w, r, id, http.StatusBadRequest, nil, "bad_id", err)
		return "", false
	}
	return id, true
}

// fail answers err: the caller's mistakes by name, the rest logged and
// answered without detail (paths stay in the log).
func (l *Local) fail(w http.ResponseWriter, r *http.Request, id string, err error) {
	var conflict *lifecycle.ConflictError
	switch {
	case errors.Is(err, transfer.ErrBadBundle):
		l.answer(w, r, id, http.StatusBadRequest, nil, "bad_body", err)
	case errors.Is(err, store.ErrOrgExists), errors.Is(err, ErrNotPending), errors.As(err, &conflict):
		l.answer(w, r, id, http.StatusConflict, nil, "conflict", err)
	case errors.Is(err, fleet.ErrTooManyOrgs):
		l.answer(w, r, id, http.StatusConflict, nil, "too_many_orgs", err)
	case errors.Is(err, ErrNotOwnedHere):
		l.answer(w, r, id, http.StatusConflict, nil, "not_owner", err)
	case errors.Is(err, cluster.ErrUnavailable):
		// etcd is out of reach, which is no failure of this node's.
		w.Header().Set("Retry-After", "5")
		l.answer(w, r, id, http.StatusServiceUnavailable, nil, "cluster_unavailable", err)
	default:
		l.Log.Error("internal move route failed", "org", id, "path", r.URL.Path, "err", err)
		l.answer(w, r, id, http.StatusInternalServerError, nil, "internal",
			errors.New("internal error; the target node's log has the details"))
	}
}

func (l *Local) answer(w http.ResponseWriter, r *http.Request, id string, status int, body any, code string, err error) {
	if err != nil {
		body = map[string]string{"error": err.Error(), "code": code}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		l.Log.LogAttrs(r.Context(), slog.LevelDebug, "internal move answer not written", slog.String("org", id), slog.Any("err", err))
	}
}
