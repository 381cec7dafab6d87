package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// KeyHeader carries the cluster key on node-to-node calls, which never
// carry the API key.
const KeyHeader = "X-Wa-Sidecar-Cluster-Key"

// NodeHeader names the node that answered (the owner, for a proxied call).
const NodeHeader = "X-Wa-Sidecar-Node"

// InternalRoute is a node-to-node route (under /internal/), which the
// status API serves only to callers with the cluster key. A table rather
// than a ServeMux, so that the API's test can hold every route it serves
// against its OpenAPI document.
type InternalRoute struct {
	Method, Pattern string
	Handler         http.HandlerFunc
}

// ErrUnavailable wraps every failure to reach etcd: the node runs fail
// static and the API answers 503 cluster_unavailable.
var ErrUnavailable = errors.New("etcd is unreachable: this node keeps running what it owns and refuses what needs the cluster")

// ErrNotOwner means a compare-and-swap found another owner than expected.
var ErrNotOwner = errors.New("the organization's owner is not the one expected")

const (
	root      = "/wa-sidecar/"
	nodesKey  = root + "nodes/"
	orgsKey   = root + "orgs/"
	opTimeout = 2 * time.Second
	probeGap  = time.Second
)

// Member is one node as it registers itself under nodes/<node>.
type Member struct {
	Node      string `json:"node"`
	Advertise string `json:"advertise"`
	Capacity  int    `json:"capacity"`
	// Live is true while the node's lease holds its key.
	Live bool `json:"-"`
}

// Options configure a Cluster.
type Options struct {
	Endpoints []string
	Node      string
	Advertise string
	Capacity  int
	Key       string
	LeaseTTL  time.Duration
	// StateDir is where the node keeps what it owns (a directory of its
	// own, e.g. state_dir/cluster).
	StateDir   string
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Cluster is this node's view of the cluster: its membership, the owners
// of organizations, and what it owns.
type Cluster struct {
	o       Options
	cli     *clientv3.Client
	owned   *ownedSet
	metrics *clusterMetrics
	log     *slog.Logger

	clientOnce sync.Once
	http       *http.Client

	mu sync.Mutex
	// leaving are the orgs this node is giving away (a swap under way):
	// the probe must not add them back to the owned list from a read
	// taken before the swap.
	leaving map[string]bool
	// swaps counts the swaps begun, so that a probe whose read began
	// before one does not write its stale view.
	swaps   int
	up      bool
	probed  bool
	members map[string]Member // every node seen, Live for those under a lease now
}

// New connects lazily: etcd need not be up yet.
func New(o Options) (*Cluster, error) {
	owned, err := openOwned(o.StateDir)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: opTimeout,
		// gRPC's default reconnect backoff grows to two minutes: a node
		// would stay fail static that long after etcd is back.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: opTimeout,
		})},
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: opTimeout,
		// The client's own zap logs would break the one-JSON-shape log;
		// what matters is logged here, with org= and node=.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd client: %w", err)
	}
	c := &Cluster{o: o, cli: cli, owned: owned, metrics: newMetrics(o.Registerer), log: o.Log,
		members: map[string]Member{}, leaving: map[string]bool{}}
	c.metrics.owned.Set(float64(len(owned.list())))
	return c, nil
}

// Self is this node's name.
func (c *Cluster) Self() string { return c.o.Node }

// Key is the cluster key that node-to-node calls carry in KeyHeader.
func (c *Cluster) Key() string { return c.o.Key }

// Up reports whether etcd answered the last probe.
func (c *Cluster) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// Close ends the etcd client.
func (c *Cluster) Close() error { return c.cli.Close() }

func unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w (%v)", what, ErrUnavailable, err)
}

// down reports whether the last probe failed: then calls fail at once
// instead of each waiting out its timeout (the probe runs every second,
// so the first calls after etcd returns may still be refused).
func (c *Cluster) down() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.probed && !c.up
}

// Owner reads orgs/<org>.
func (c *Cluster) Owner(ctx context.Context, org string) (string, bool, error) {
	if c.down() {
		return "", false, unavailable("owner of "+org, errors.New("the last probe failed"))
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := c.cli.Get(ctx, orgsKey+org)
	if err != nil {
		return "", false, unavailable("owner of "+org, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}

// Claim writes orgs/<org> = node only if no owner exists, and returns the
// owner after the transaction: node, or whoever was first.
func (c *Cluster) Claim(ctx context.Context, org, node string) (string, error) {
	gen := c.generation()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	key := orgsKey + org
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, node)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return "", unavailable("claim "+org, err)
	}
	owner := node
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return "", fmt.Errorf("claim %s: the owner vanished during the transaction", org)
		}
		owner = string(kvs[0].Value)
	}
	if owner == c.Self() {
		if err := c.markOwned(org, gen); err != nil {
			return "", err
		}
	}
	return owner, nil
}

// SwapOwner flips orgs/<org> from one node to another by compare-and-swap:
// ErrNotOwner if from is not the owner (or there is none). When this node
// gives the org away, it forgets owning it before the swap, so a crash
// between the two never leaves two nodes believing they own it; a swap
// that fails gives it back.
func (c *Cluster) SwapOwner(ctx context.Context, org, from, to string) error {
	if from == c.Self() {
		c.mu.Lock()
		c.leaving[org] = true
		c.swaps++
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.leaving, org)
			c.mu.Unlock()
		}()
		if err := c.owned.set(org, false); err != nil {
			return err
		}
	}
	ok, err := c.swap(ctx, org, from, to)
	if from == c.Self() && !ok {
		if serr := c.owned.set(org, true); serr != nil {
			c.log.Error("cluster: the swap failed and the owned list could not be restored", "org", org, "err", serr)
		}
	}
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("swap %s from %s to %s: %w", org, from, to, ErrNotOwner)
	}
	if to == c.Self() {
		if err := c.owned.set(org, true); err != nil {
			return err
		}
	}
	c.log.Info("cluster: organization changed owner", "org", org, "from", from, "to", to)
	return nil
}

func (c *Cluster) swap(ctx context.Context, org, from, to string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	key := orgsKey + org
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", from), clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpPut(key, to)).Commit()
	if err != nil {
		// The swap may or may not have happened: the caller must not
		// assume either, but this node keeps not running it.
		return true, unavailable("swap owner of "+org, err)
	}
	return resp.Succeeded, nil
}

// generation is the count of swaps begun; markOwned takes the one read
// before etcd was.
func (c *Cluster) generation() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.swaps
}

// markOwned records that etcd said this node owns org, unless a swap of
// it began since the read (gen): that read may predate the swap.
func (c *Cluster) markOwned(org string, gen int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.swaps != gen || c.leaving[org] {
		return nil
	}
	return c.owned.set(org, true)
}

// OwnsLocally reports whether this node owns org as far as it knows
// without asking etcd.
func (c *Cluster) OwnsLocally(org string) bool { return c.owned.has(org) }

// Restorable returns the organizations among local (this node's stored
// ones) that it may start at boot: those etcd says it owns, and those
// that no node owns yet (state from before cluster mode), which it claims.
// When etcd cannot be reached it trusts what it owned when it last knew:
// a node that boots during an outage keeps its own, and nothing else.
func (c *Cluster) Restorable(ctx context.Context, local []string) []string {
	out := make([]string, 0, len(local))
	for _, org := range local {
		owner, found, err := c.Owner(ctx, org)
		if err == nil && !found {
			owner, err = c.Claim(ctx, org, c.Self())
		}
		if err != nil {
			known := c.owned.list()
			kept := slices.DeleteFunc(slices.Clone(local), func(o string) bool { return !slices.Contains(known, o) })
			c.log.Warn("cluster: etcd unreachable at boot; restoring only the organizations this node owned when it last knew",
				"organizations", len(kept), "err", err)
			return kept
		}
		if owner != c.Self() {
			c.log.Warn("cluster: a stored organization belongs to another node; not started here", "org", org, "owner", owner)
			continue
		}
		out = append(out, org)
	}
	if err := c.owned.replace(out); err != nil {
		c.log.Error("cluster: could not save the owned organizations", "err", err)
	}
	c.metrics.owned.Set(float64(len(out)))
	return out
}

// Release deletes orgs/<org> when this node owns it, so that an
// organization deleted for good (its tombstone purged once its holds
// ended) no longer fills this node's capacity. Another node's key is left
// alone. The caller releases only what its store no longer holds: while a
// tombstone keeps a hold, the key keeps a registration again on the node
// that enforces the hold.
func (c *Cluster) Release(ctx context.Context, org string) error {
	if c.down() {
		// Not worth the timeout on the organization's own goroutine: the
		// next boot releases it (ReleaseUnstored).
		return unavailable("release "+org, errors.New("the last probe failed"))
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	key := orgsKey + org
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", c.Self()), clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return unavailable("release "+org, err)
	}
	if err := c.owned.set(org, false); err != nil {
		return err
	}
	if resp.Succeeded {
		c.log.Info("cluster: organization released", "org", org)
	}
	return nil
}

// ReleaseUnstored releases every organization etcd says this node owns
// but stored (this node's organizations and tombstones) does not hold: a
// purge whose release was cut off by a crash or an etcd outage. It runs at
// boot, before the API takes a registration.
func (c *Cluster) ReleaseUnstored(ctx context.Context, stored []string) error {
	if c.down() {
		return unavailable("release what is no longer stored", errors.New("the last probe failed"))
	}
	owners, err := c.Ownership(ctx)
	if err != nil {
		return err
	}
	for org, owner := range owners {
		if owner != c.Self() || slices.Contains(stored, org) {
			continue
		}
		if err := c.Release(ctx, org); err != nil {
			return err
		}
	}
	return nil
}

// NodeURL is the advertise URL of node as last seen, and whether it is
// live (under its lease) now.
func (c *Cluster) NodeURL(node string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[node]
	return m.Advertise, ok && m.Live
}

// Members are the nodes seen, live or not, sorted by name.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// CountMove counts one move off this node in cluster_moves_total.
func (c *Cluster) CountMove(result string) { c.metrics.moves.WithLabelValues(result).Inc() }

// Ownership reads every orgs/ key: owner by organization.
func (c *Cluster) Ownership(ctx context.Context) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := c.cli.Get(ctx, orgsKey, clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable("read the owners", err)
	}
	out := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), orgsKey)] = string(kv.Value)
	}
	return out, nil
}

// PlaceNew picks the owner of a new organization over the live members
// and claims it; it returns the owner, which is another node when one
// claimed it first.
func (c *Cluster) PlaceNew(ctx context.Context, org string) (string, error) {
	owners, err := c.Ownership(ctx)
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	for _, n := range owners {
		count[n]++
	}
	node, err := Place(org, c.Members(), count)
	if err != nil {
		return "", err
	}
	return c.Claim(ctx, org, node)
}
