package statusapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// ErrorBody is the shape of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// apiError is an answer the API decided on itself, as opposed to an error
// from the fleet that writeError has to classify.
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.msg }

func badID(err error) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "bad_id", msg: err.Error()}
}

func errNotFound(format string, a ...any) *apiError {
	return &apiError{status: http.StatusNotFound, code: "not_found", msg: fmt.Sprintf(format, a...)}
}

// classify maps fleet errors to answers. Anything it does not know is an
// internal error: logged in full, answered without detail, because it may
// carry paths or worker output.
func (s *server) classify(r *http.Request, err error) *apiError {
	var (
		ae       *apiError
		hold     *lifecycle.HoldError
		conflict *lifecycle.ConflictError
		input    *outbox.InputError
		clash    *outbox.ConflictError
	)
	if ce := classifyCluster(r, err); ce != nil {
		return ce
	}
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, lifecycle.ErrUnknownOrg), errors.Is(err, outbox.ErrUnknownOrg):
		// outbox.ErrUnknownOrg: the organization was deleted between the
		// check and the commit of a message (a POST racing the DELETE).
		return &apiError{status: http.StatusNotFound, code: "unknown_org",
			msg: fmt.Sprintf("organization %s is not registered; POST /v1/orgs/%[1]s/start registers it", r.PathValue("id"))}
	case errors.As(err, &hold):
		return &apiError{status: http.StatusConflict, code: "cooldown", msg: hold.Error(),
			retryAfter: time.Until(hold.Until)}
	case errors.As(err, &conflict):
		return &apiError{status: http.StatusConflict, code: "conflict", msg: conflict.Error()}
	case errors.As(err, &input):
		return &apiError{status: http.StatusBadRequest, code: "bad_body", msg: input.Error()}
	case errors.As(err, &clash):
		return &apiError{status: http.StatusConflict, code: "conflict", msg: clash.Error()}
	case errors.Is(err, outbox.ErrNotConnected):
		return &apiError{status: http.StatusConflict, code: "not_connected",
			msg: fmt.Sprintf("organization %s has no connected worker to ask WhatsApp, and some numbers have no cached answer", r.PathValue("id"))}
	case errors.Is(err, outbox.ErrNoAnswer):
		s.log.Warn("a number check had no answer", "org", r.PathValue("id"), "err", err)
		return &apiError{status: http.StatusServiceUnavailable, code: "no_answer",
			msg: "WhatsApp gave no answer to the check; retry", retryAfter: 5 * time.Second}
	case errors.Is(err, fleet.ErrTooManyOrgs):
		return &apiError{status: http.StatusConflict, code: "too_many_orgs", msg: err.Error()}
	case errors.Is(err, fleet.ErrBooting):
		return &apiError{status: http.StatusServiceUnavailable, code: "booting",
			msg: "the supervisor is still loading its state; retry in a second", retryAfter: time.Second}
	case errors.Is(err, fleet.ErrTimeout):
		return &apiError{status: http.StatusServiceUnavailable, code: "timeout", msg: err.Error(), retryAfter: time.Second}
	case errors.Is(err, fleet.ErrNotSaved), errors.Is(err, outbox.ErrNotSaved):
		return &apiError{status: http.StatusServiceUnavailable, code: "persist_failed", msg: err.Error(),
			retryAfter: 5 * time.Second}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &apiError{status: http.StatusServiceUnavailable, code: "timeout",
			msg: "the request ended before the supervisor answered; the change may still take effect", retryAfter: time.Second}
	}
	s.log.Error("status api request failed", "method", r.Method, "path", r.URL.Path,
		"org", r.PathValue("id"), "err", err)
	return &apiError{status: http.StatusInternalServerError, code: "internal",
		msg: "internal error; the supervisor log has the details"}
}

func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := s.classify(r, err)
	if ae.code == "cooldown" || ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ae.retryAfter)))
	}
	s.writeJSON(w, r, ae.status, ErrorBody{Error: ae.msg, Code: ae.code})
}

// retryAfterSeconds rounds up, so a caller that waits as told is never early,
// and never says 0, which some clients read as "retry now in a loop".
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, body any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	// Snapshots carry QR codes, which must not linger in caches.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "status api response not written",
			slog.String("path", r.URL.Path), slog.Any("err", err))
	}
}
