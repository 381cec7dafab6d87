// Package statusapi serves the local HTTP/JSON API that Django polls and the
// operator CLI drives. It validates every organization ID before the fleet
// sees it, answers every failure (unknown routes included) with the JSON
// error shape `{"error": sentence, "code": word}`, and never leaks internal
// errors to the caller: they go to the log instead.
package statusapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
)

// Fleet is what the API needs from the supervisor's organizations. IDs
// passed to it have already been validated. Calls that change something
// answer once the change is committed.
type Fleet interface {
	// Ready is nil once the state is loaded and every commit went through;
	// fleet.ErrBooting before, an error wrapping fleet.ErrNotSaved while
	// commits fail.
	Ready() error
	// List returns every organization, sorted by ID so that pollers can
	// diff consecutive answers.
	List() []state.Snapshot
	Get(id string) (state.Snapshot, error)
	// Start registers the organization if new and starts or links it; it is
	// a no-op for a connected one and returns *lifecycle.HoldError while a
	// hold lasts.
	Start(ctx context.Context, id string, opts fleet.StartOptions) (state.Snapshot, error)
	Stop(ctx context.Context, id string) (state.Snapshot, error)
	Logout(ctx context.Context, id string) (state.Snapshot, error)
	// Clear archives the auth directory and relinks: the manual Bad MAC cure.
	Clear(ctx context.Context, id string) (state.Snapshot, error)
	// Delete stops the organization and forgets it; its auth is archived
	// and its holds outlive it.
	Delete(ctx context.Context, id string) error
	// PairPhone asks for a pairing code to type on the phone instead of
	// scanning a QR.
	PairPhone(ctx context.Context, id, phone string) (string, error)
}

// Options configure the API.
type Options struct {
	// APIKey is what callers send in x-api-key; empty lets every request
	// through (dev mode): the caller is the one that knows whether that is
	// acceptable and warns about it.
	APIKey string
	// Listen is the api.listen address, for the Host check.
	Listen string
	// AllowedOrigins are the browser origins that may call the API.
	AllowedOrigins []string
	// AllowedHosts are more names the Host header may carry.
	AllowedHosts []string
	Log          *slog.Logger
	// Outbox serves the message and broadcast routes.
	Outbox Outbox
	// Webhooks serves the dead letters; nil when webhooks are off.
	Webhooks Webhooks
	// Media stores uploads (POST /v1/orgs/{id}/media); nil: no such route.
	Media Media
	// MediaMaxBytes is media.max_bytes, the largest decoded file.
	MediaMaxBytes int64
	// Contacts serves POST /v1/orgs/{id}/contacts/check; nil: no route.
	Contacts Contacts
	// Cluster routes every organization's requests to its owner node;
	// nil: one host.
	Cluster Cluster
	// Internal are the node-to-node routes under /internal/ besides the
	// organizations' list (the move's); only callers with the cluster key
	// reach them. Used in cluster mode only.
	Internal []cluster.InternalRoute
	// Mover serves POST /v1/orgs/{id}/move; nil: no such route.
	Mover Mover
}

// New returns the API handler.
func New(f Fleet, o Options) http.Handler {
	s := &server{fleet: f, outbox: o.Outbox, webhooks: o.Webhooks, media: o.Media, mediaMax: o.MediaMaxBytes, contacts: o.Contacts, cluster: o.Cluster, internal: o.Internal, mover: o.Mover, log: o.Log, mux: http.NewServeMux(), guard: newGuard(o.Listen, o.AllowedOrigins, o.AllowedHosts)}
	if o.APIKey != "" {
		sum := sha256.Sum256([]byte(o.APIKey))
		s.keySum = sum[:]
	}
	for _, rt := range s.routes() {
		s.mux.HandleFunc(rt.method+" "+rt.pattern, rt.handler)
	}
	// Without a catch-all, ServeMux would answer unknown routes and wrong
	// methods in plain text, which callers parsing JSON choke on.
	s.mux.HandleFunc("/", s.unrouted)
	return http.HandlerFunc(s.serve)
}

// ready is nil when the state is loaded and every commit, the
// organizations' and the messages', goes through.
func (s *server) ready() error {
	if err := s.fleet.Ready(); err != nil {
		return err
	}
	if s.outbox != nil {
		return s.outbox.Ready()
	}
	return nil
}

type server struct {
	fleet    Fleet
	outbox   Outbox
	webhooks Webhooks
	media    Media
	mediaMax int64
	contacts Contacts
	cluster  Cluster
	internal []cluster.InternalRoute
	mover    Mover
	log      *slog.Logger
	mux      *http.ServeMux
	guard    guard
	// keySum is the SHA-256 of the API key, nil in dev mode. Comparing
	// digests keeps the comparison constant-time even in the key's length.
	keySum []byte
}

// probeMethods are tried against the route table to tell a 405 from a 404.
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// route is one entry of the route table. openapi_test.go checks the table
// against openapi.json both ways, so a route cannot be served undocumented.
type route struct {
	method, pattern string
	handler         http.HandlerFunc
}

// routes is the route table; a route whose dependency is off (no outbox,
// media or contacts) is not in it and answers 404.
func (s *server) routes() []route {
	rs := []route{
		{"GET", "/healthz", s.healthz},
		{"GET", "/readyz", s.readyz},
		{"GET", openAPIPath, s.openAPI},
		{"GET", "/v1/orgs", s.list},
		{"GET", "/v1/orgs/{id}", s.org(s.get)},
		{"POST", "/v1/orgs/{id}/start", s.org(s.start)},
		{"POST", "/v1/orgs/{id}/stop", s.org(s.snapshotAction(s.fleet.Stop))},
		{"POST", "/v1/orgs/{id}/logout", s.org(s.snapshotAction(s.fleet.Logout))},
		{"POST", "/v1/orgs/{id}/clear", s.org(s.snapshotAction(s.fleet.Clear))},
		{"DELETE", "/v1/orgs/{id}", s.org(s.delete)},
		{"POST", "/v1/orgs/{id}/pair-phone", s.org(s.pairPhone)},
		{"POST", "/api/clear-corrupted-session", s.routedByBody(s.handle(s.clearCorruptedSession))},
		{"GET", "/v1/webhooks/dead", s.handle(s.listDead)},
		{"POST", "/v1/webhooks/dead/{event}/retry", s.handle(s.retryDead)},
	}
	if s.outbox != nil {
		rs = append(rs,
			route{"POST", "/v1/orgs/{id}/messages", s.orgUpTo(maxMessageBody, s.sendMessage)},
			route{"GET", "/v1/orgs/{id}/messages", s.org(s.listMessages)},
			route{"GET", "/v1/orgs/{id}/messages/{msg}", s.org(s.getMessage)},
			route{"POST", "/v1/orgs/{id}/broadcasts", s.orgUpTo(maxBroadcastBody, s.createBroadcast)},
			route{"GET", "/v1/orgs/{id}/broadcasts", s.org(s.listBroadcasts)},
			route{"GET", "/v1/orgs/{id}/broadcasts/{b}", s.org(s.getBroadcast)},
			route{"POST", "/v1/orgs/{id}/broadcasts/{b}/cancel", s.org(s.cancelBroadcast)})
	}
	if s.media != nil {
		rs = append(rs, route{"POST", "/v1/orgs/{id}/media", s.orgUpTo(mediaBodyLimit(s.mediaMax), s.uploadMedia)})
	}
	if s.contacts != nil {
		rs = append(rs, route{"POST", "/v1/orgs/{id}/contacts/check", s.orgUpTo(maxMessageBody, s.checkNumbers)})
	}
	if s.mover != nil {
		rs = append(rs, route{"POST", "/v1/orgs/{id}/move", s.moveRoute()})
	}
	if s.cluster != nil {
		rs = append(rs, route{"GET", cluster.InternalOrgsPath, s.handle(func(*http.Request) (int, any, error) {
			return http.StatusOK, s.localList(), nil
		})})
		for _, ir := range s.internal {
			rs = append(rs, route{ir.Method, ir.Pattern, ir.Handler})
		}
	}
	return rs
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.ready(); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
}

// serve wraps the route table with what every request needs: a debug log
// line, canonical paths, the cross-site and Host guards, the boot gate, the
// API key and JSON bodies.
func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "status api request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.String("org", r.PathValue("id")),
			slog.Duration("took", time.Since(start)))
	}()
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	defer discardRest(r, body)
	// ServeMux would redirect a path with "." or ".." segments to another
	// resource; a caller building such paths has a bug worth surfacing.
	if p := r.URL.EscapedPath(); !canonical(p) {
		s.writeError(rec, r, errNotFound("path %q is not canonical", r.URL.Path))
		return
	}
	// A call that carries the cluster key comes from another node: the
	// key, which no browser page knows, stands for the API key and the
	// Host check (nodes reach each other by names the guard cannot know).
	fromNode := false
	if s.cluster != nil {
		rec.Header().Set(cluster.NodeHeader, s.cluster.Self())
		fromNode = s.cluster.FromNode(r)
	}
	internal := strings.HasPrefix(r.URL.Path, internalPrefix)
	if internal && !fromNode {
		s.writeError(rec, r, &apiError{status: http.StatusUnauthorized, code: "unauthorized",
			msg: "internal routes answer only other nodes of the cluster, with the " + cluster.KeyHeader + " header"})
		return
	}
	if ae := s.guard.host(r); ae != nil && !fromNode {
		s.writeError(rec, r, ae)
		return
	}
	if ae := s.guard.crossSite(r); ae != nil {
		s.writeError(rec, r, ae)
		return
	}
	if s.guard.cors(rec, r) {
		rec.status = http.StatusNoContent
		return
	}
	if !ungated(r.URL.Path) {
		// Nothing but the probes and the document answers before the
		// state is loaded: a start racing the boot must not register over
		// a saved hold.
		if err := s.fleet.Ready(); errors.Is(err, fleet.ErrBooting) {
			s.writeError(rec, r, err)
			return
		}
		if !fromNode && !s.authorized(r) {
			msg := "x-api-key header does not match the configured API key"
			if r.Header.Get("x-api-key") == "" {
				msg = "x-api-key header is missing"
			}
			s.writeError(rec, r, &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: msg})
			return
		}
	}
	// Node-to-node routes may carry other bodies (an auth directory).
	if ae := jsonBody(r); ae != nil && !internal {
		s.writeError(rec, r, ae)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// maxDiscard bounds what discardRest reads; a caller sending more than
// this past the answer may see the reset.
const maxDiscard = 8 << 20

// countingBody counts what was read of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// discardRest reads and throws away what the caller is still sending once
// the answer is decided: a 413, or a 401 or 415 given before the body was
// looked at. Go's server reads at most 256 KiB of a body the handler left;
// closing the connection with more in its receive buffer sends a TCP reset,
// which can destroy the answer before the client reads it. A caller that
// sent Expect: 100-continue and was never asked for its body has sent
// nothing: reading would ask for what the answer refuses. A read error
// only means there is nothing left to read.
func discardRest(r *http.Request, body *countingBody) {
	// The server inspects r.Body after the handler: its own reader tells
	// it that a 100 Continue was never sent, so the body never comes.
	r.Body = body.ReadCloser
	if body.n == 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	_, _ = io.CopyN(io.Discard, body.ReadCloser, maxDiscard)
}

func canonical(p string) bool {
	c := path.Clean(p)
	return c == p || c+"/" == p
}

func (s *server) authorized(r *http.Request) bool {
	if s.keySum == nil {
		return true
	}
	got := sha256.Sum256([]byte(r.Header.Get("x-api-key")))
	return subtle.ConstantTimeCompare(got[:], s.keySum) == 1
}

func (s *server) unrouted(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range probeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "" && p != "/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		s.writeError(w, r, errNotFound("no route for %s %s", r.Method, r.URL.Path))
		return
	}
	if slices.Contains(allowed, http.MethodGet) {
		allowed = append(allowed, http.MethodHead)
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	s.writeError(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		msg: r.Method + " is not allowed on " + r.URL.Path + "; use " + strings.Join(allowed, " or ")})
}

// statusRecorder remembers the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
