package cluster

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// Action is where a request about one organization goes.
type Action int

const (
	// Local: this node owns it (or nobody does and the request does not
	// register it: the local answer is then unknown_org).
	Local Action = iota
	// Proxy: another node owns it.
	Proxy
	// PlaceIt: nobody owns it and the request registers it.
	PlaceIt
	// Unavailable: etcd cannot say and this node does not own it.
	Unavailable
	// Misdirected: a call forwarded by another node reached a node that
	// does not own the organization (it moved meanwhile).
	Misdirected
)

// Decision is Decide's answer; Node is the owner for Proxy and Misdirected.
type Decision struct {
	Action Action
	Node   string
}

// Lookup is what etcd said about orgs/<id>.
type Lookup struct {
	Owner string
	Found bool
	Err   error
}

// Decide routes one request about an organization. ownedHere is what the
// node knows it owns without etcd; registers is true for a start, the only
// request that may create an organization; forwarded is true for a request
// another node proxied here, which is never proxied again.
func Decide(self string, l Lookup, ownedHere, registers, forwarded bool) Decision {
	switch {
	case l.Err != nil:
		if ownedHere {
			return Decision{Action: Local}
		}
		return Decision{Action: Unavailable}
	case l.Found && l.Owner == self:
		return Decision{Action: Local}
	case l.Found && forwarded:
		return Decision{Action: Misdirected, Node: l.Owner}
	case l.Found:
		return Decision{Action: Proxy, Node: l.Owner}
	case registers && forwarded:
		return Decision{Action: Misdirected}
	case registers:
		return Decision{Action: PlaceIt}
	}
	return Decision{Action: Local}
}

// UnreachableError is a request whose owner did not answer.
type UnreachableError struct {
	Node string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the organization's owner, node %s, cannot be reached: %v", e.Node, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// MisdirectedError is a forwarded request that reached a node that does
// not own the organization.
type MisdirectedError struct{ Owner string }

func (e *MisdirectedError) Error() string {
	if e.Owner == "" {
		return "a forwarded request reached a node that does not own the organization; retry"
	}
	return "a forwarded request reached a node that does not own the organization (node " + e.Owner + " does); retry"
}

// Router is what the status API routes through in cluster mode.
type Router struct {
	c      *Cluster
	log    *slog.Logger
	keySum [32]byte
	client *http.Client
}

// NewRouter routes with c.
func NewRouter(c *Cluster, log *slog.Logger) *Router {
	return &Router{c: c, log: log, keySum: sha256.Sum256([]byte(c.Key())), client: c.httpClient()}
}

// Self is this node's name.
func (r *Router) Self() string { return r.c.Self() }

// FromNode reports whether req carries the cluster key (compared in
// constant time).
func (r *Router) FromNode(req *http.Request) bool {
	k := req.Header.Get(KeyHeader)
	if k == "" {
		return false
	}
	got := sha256.Sum256([]byte(k))
	return subtle.ConstantTimeCompare(got[:], r.keySum[:]) == 1
}

// Route serves req on the owner of org when that is another node and
// reports true; false means this node answers it. registers is true for a
// start.
func (r *Router) Route(w http.ResponseWriter, req *http.Request, org string, registers bool) (bool, error) {
	forwarded := r.FromNode(req)
	gen := r.c.generation()
	var l Lookup
	l.Owner, l.Found, l.Err = r.c.Owner(req.Context(), org)
	d := Decide(r.c.Self(), l, r.c.OwnsLocally(org), registers, forwarded)
	switch d.Action {
	case Local:
		if l.Found && l.Owner == r.c.Self() {
			// The node that placed it here did not tell this one.
			if err := r.c.markOwned(org, gen); err != nil {
				return true, err
			}
		}
		return false, nil
	case Unavailable:
		return true, l.Err
	case Misdirected:
		return true, &MisdirectedError{Owner: d.Node}
	case PlaceIt:
		owner, err := r.c.PlaceNew(req.Context(), org)
		if err != nil {
			return true, err
		}
		r.log.Info("cluster: organization placed", "org", org, "node", owner)
		if owner == r.c.Self() {
			return false, nil
		}
		d.Node = owner
	}
	return true, r.proxy(w, req, d.Node)
}

// proxy hands req to node with the cluster key instead of the API key.
func (r *Router) proxy(w http.ResponseWriter, req *http.Request, node string) error {
	base, live := r.c.NodeURL(node)
	if !live || base == "" {
		return &UnreachableError{Node: node, Err: errors.New("it holds no lease in etcd (down or cut off)")}
	}
	target, err := url.Parse(base)
	if err != nil {
		return &UnreachableError{Node: node, Err: err}
	}
	var failed error
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("x-api-key")
			pr.Out.Header.Set(KeyHeader, r.c.Key())
		},
		Transport: r.client.Transport,
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, err error) {
			failed = err
		},
	}
	// The owner names itself; this node's own header would be a second value.
	w.Header().Del(NodeHeader)
	rp.ServeHTTP(w, req)
	if failed != nil {
		w.Header().Set(NodeHeader, r.c.Self())
		return &UnreachableError{Node: node, Err: failed}
	}
	return nil
}

// Others gathers the organizations of every other live node from its
// internal list; unreachable names the nodes that did not answer.
func (r *Router) Others(ctx context.Context) (snaps []state.Snapshot, unreachable []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range r.c.Members() {
		if m.Node == r.c.Self() {
			continue
		}
		if !m.Live {
			unreachable = append(unreachable, m.Node)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := r.listOf(ctx, m.Node)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.log.Warn("cluster: a node's organizations could not be listed", "node", m.Node, "err", err)
				unreachable = append(unreachable, m.Node)
				return
			}
			snaps = append(snaps, got...)
		}()
	}
	wg.Wait()
	sort.Strings(unreachable)
	return snaps, unreachable
}

// InternalOrgsPath lists a node's own organizations, each with "node".
const InternalOrgsPath = "/internal/v1/orgs"

func (r *Router) listOf(ctx context.Context, node string) ([]state.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := r.c.Request(ctx, http.MethodGet, node, InternalOrgsPath, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("node %s answered %s: %s", node, resp.Status, b)
	}
	var out []state.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	return out, nil
}
