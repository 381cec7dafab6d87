package statusapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/phone/e164"
	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
)

// maxBody bounds every request body; the largest legitimate one (a message
// text, later) is far smaller.
const maxBody = 64 << 10

// handlerFunc answers one request with a status and a JSON body, or an error
// that writeError turns into the error shape.
type handlerFunc func(r *http.Request) (int, any, error)

// orgHandlerFunc is a handlerFunc for routes under /v1/orgs/{id}; id is valid.
type orgHandlerFunc func(r *http.Request, id string) (int, any, error)

func (s *server) handle(fn handlerFunc) http.HandlerFunc { return s.handleUpTo(maxBody, fn, nil) }

// handleUpTo is handle with its own bound on the body; routed, when not
// nil, may answer the request elsewhere first (true: answered).
func (s *server) handleUpTo(limit int64, fn handlerFunc, routed func(http.ResponseWriter, *http.Request) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if routed != nil && routed(w, r) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		status, body, err := fn(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, status, body)
	}
}

// org validates {id} before anything else sees it: IDs become file names.
func (s *server) org(fn orgHandlerFunc) http.HandlerFunc { return s.orgUpTo(maxBody, fn) }

// orgUpTo is org with its own bound on the body.
func (s *server) orgUpTo(limit int64, fn orgHandlerFunc) http.HandlerFunc {
	return s.handleUpTo(limit, func(r *http.Request) (int, any, error) {
		id := r.PathValue("id")
		if err := orgid.Validate(id); err != nil {
			return 0, nil, badID(err)
		}
		return fn(r, id)
	}, func(w http.ResponseWriter, r *http.Request) bool {
		// Before the body is read: the owner reads it.
		id := r.PathValue("id")
		return orgid.Validate(id) == nil && s.routeOrg(w, r, id)
	})
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	if s.cluster == nil || s.cluster.FromNode(r) {
		s.writeJSON(w, r, http.StatusOK, s.localList())
		return
	}
	s.writeJSON(w, r, http.StatusOK, s.clusterList(w, r))
}

func (s *server) get(_ *http.Request, id string) (int, any, error) {
	snap, err := s.fleet.Get(id)
	if s.cluster != nil {
		snap.Node = s.cluster.Self()
	}
	return http.StatusOK, snap, err
}

// StartRequest is the optional body of POST /v1/orgs/{id}/start.
type StartRequest struct {
	// Force closes a live worker so that a new one starts; it never
	// shortens a hold.
	Force bool `json:"force"`
	// Proxy, when present, replaces the organization's proxy ("" makes it
	// direct) from its next start: socks5://user:pass@host:port,
	// http://host:port or https://host:port.
	Proxy *string `json:"proxy"`
}

// start answers 202 because linking goes on after the answer, and 200 when
// the organization is already connected and nothing was started.
func (s *server) start(r *http.Request, id string) (int, any, error) {
	var req StartRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	if req.Proxy != nil {
		if err := proxy.Validate(*req.Proxy); err != nil {
			return 0, nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: "proxy: " + err.Error()}
		}
	}
	snap, err := s.fleet.Start(r.Context(), id, fleet.StartOptions{Force: req.Force, Proxy: req.Proxy})
	if err != nil {
		return 0, nil, err
	}
	if snap.Status == state.Connected && !req.Force {
		return http.StatusOK, snap, nil
	}
	return http.StatusAccepted, snap, nil
}

// snapshotAction adapts the fleet calls that take only an ID and need no body.
func (s *server) snapshotAction(action func(ctx context.Context, id string) (state.Snapshot, error)) orgHandlerFunc {
	return func(r *http.Request, id string) (int, any, error) {
		if err := decode(r, &struct{}{}, false); err != nil {
			return 0, nil, err
		}
		snap, err := action(r.Context(), id)
		return http.StatusOK, snap, err
	}
}

// DeleteResponse answers DELETE /v1/orgs/{id}: there is no snapshot left.
type DeleteResponse struct {
	OrganizationID string `json:"organization_id"`
	Deleted        bool   `json:"deleted"`
}

func (s *server) delete(r *http.Request, id string) (int, any, error) {
	if err := decode(r, &struct{}{}, false); err != nil {
		return 0, nil, err
	}
	if err := s.fleet.Delete(r.Context(), id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, DeleteResponse{OrganizationID: id, Deleted: true}, nil
}

// PairPhoneRequest is the body of POST /v1/orgs/{id}/pair-phone.
type PairPhoneRequest struct {
	Phone string `json:"phone"`
}

// PairPhoneResponse carries the code the user types on the phone.
type PairPhoneResponse struct {
	Code string `json:"code"`
}

func (s *server) pairPhone(r *http.Request, id string) (int, any, error) {
	var req PairPhoneRequest
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	if err := e164.Validate(req.Phone); err != nil {
		return 0, nil, &apiError{status: http.StatusBadRequest, code: "bad_body", msg: "phone: " + err.Error()}
	}
	code, err := s.fleet.PairPhone(r.Context(), id, req.Phone)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, PairPhoneResponse{Code: code}, nil
}

// ClearCorruptedSessionResponse answers the route the old Node servers
// offered. `success` is what those callers test; `status` is the status
// string as they knew it and `session` the full status object.
type ClearCorruptedSessionResponse struct {
	Success        bool           `json:"success"`
	Message        string         `json:"message"`
	OrganizationID string         `json:"organization_id"`
	Status         state.Status   `json:"status"`
	Session        state.Snapshot `json:"session"`
}

func (s *server) clearCorruptedSession(r *http.Request) (int, any, error) {
	var req struct {
		OrganizationID json.RawMessage `json:"organization_id"`
	}
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	id, err := seedOrgID(req.OrganizationID)
	if err != nil {
		return 0, nil, err
	}
	// The request log and unknown_org message read the ID from the path
	// values, as on every other route.
	r.SetPathValue("id", id)
	snap, err := s.fleet.Clear(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ClearCorruptedSessionResponse{
		Success:        true,
		Message:        fmt.Sprintf("session of organization %s archived; a new QR code follows", id),
		OrganizationID: id,
		Status:         snap.Status,
		Session:        snap,
	}, nil
}

// seedOrgID accepts the ID as a JSON string or as a non-negative JSON integer
// written with digits only (2 becomes "2"), because the old callers' Django
// models hold numeric IDs and some send them unquoted. Any other JSON value
// (true, -5, 1.5, 1e3, an object) is refused rather than turned into an ID.
func seedOrgID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", &apiError{status: http.StatusBadRequest, code: "bad_body", msg: "organization_id is missing"}
	}
	var id string
	switch {
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", bodyError(err)
		}
	case digitsOnly(raw):
		id = string(raw)
	default:
		return "", &apiError{status: http.StatusBadRequest, code: "bad_body",
			msg: "organization_id must be a JSON string or a non-negative integer written with digits only"}
	}
	if err := orgid.Validate(id); err != nil {
		return "", badID(err)
	}
	return id, nil
}

func digitsOnly(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// decode reads a JSON object into dst. Unknown fields are refused so that a
// caller's typo (or an option this version lacks) fails loudly instead of
// being ignored. An empty body is fine when the route needs none.
func decode(r *http.Request, dst any, required bool) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) && !required {
			return nil
		}
		return bodyError(err)
	}
	if dec.More() {
		return &apiError{status: http.StatusBadRequest, code: "bad_body", msg: "request body holds more than one JSON value"}
	}
	return nil
}

func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large",
			msg: fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit)}
	case errors.Is(err, io.EOF):
		return &apiError{status: http.StatusBadRequest, code: "bad_body", msg: "request body is empty; a JSON object is expected"}
	}
	return &apiError{status: http.StatusBadRequest, code: "bad_body", msg: "request body is not the expected JSON: " + err.Error()}
}
