// Package cluster makes supervisors on several hosts one service, with etcd
// (go.etcd.io/etcd/client/v3) deciding who owns what: nothing home-made
// decides ownership.
//
// Keys under /wa-sidecar/:
//   - nodes/<node>: a JSON Member (advertise URL, capacity), under the
//     node's lease, so a node that stops renewing it leaves the list;
//   - orgs/<id>: the owner node, created by compare-and-create at the
//     organization's first start and changed only by SwapOwner (a move).
//
// The API other packages rely on (kept stable; the move code builds on it):
//
//	const KeyHeader, NodeHeader        // node-to-node key header, answering node header
//	const InternalOrgsPath             // GET /internal/v1/orgs: a node's own orgs
//	type InternalRoute{Method, Pattern, Handler} // a node-to-node route
//	var ErrUnavailable                 // etcd unreachable: 503 cluster_unavailable
//	var ErrNotOwner, ErrFull           // a swap found another owner; no node has capacity
//	type UnreachableError{Node, Err}   // 502 owner_unreachable naming Node
//	type MisdirectedError{Owner}       // 421 not_owner (a forwarded call hit a non-owner)
//	func New(Options) (*Cluster, error); (*Cluster).Run(ctx) error; (*Cluster).Close() error
//	func (c *Cluster) Self() string                               // this node's name
//	func (c *Cluster) Key() string                                // the cluster key for node-to-node calls
//	func (c *Cluster) Up() bool                                   // etcd answered the last probe
//	func (c *Cluster) Owner(ctx, org) (node string, found bool, err error)
//	func (c *Cluster) Claim(ctx, org, node) (owner string, err error) // compare-and-create
//	func (c *Cluster) SwapOwner(ctx, org, from, to string) error      // compare-and-swap; ErrNotOwner
//	func (c *Cluster) PlaceNew(ctx, org) (owner string, err error)    // Place + Claim
//	func (c *Cluster) Ownership(ctx) (map[org]node, error)
//	func (c *Cluster) NodeURL(node) (url string, live bool)           // advertise URL of a member
//	func (c *Cluster) Members() []Member
//	func (c *Cluster) OwnsLocally(org) bool                           // what fail static keeps serving
//	func (c *Cluster) Restorable(ctx, orgs []string) []string         // which stored orgs a booting node may start
//	func (c *Cluster) CountMove(result string)                        // wa_sidecar_cluster_moves_total{result}, MoveResults
//	func (c *Cluster) Client() *http.Client
//	func (c *Cluster) Request(ctx, method, node, path, body) (*http.Response, error) // with the cluster key
//	func NewRouter(*Cluster, *slog.Logger) *Router  // implements statusapi.Cluster
//	func Place(org, members, owned) (string, error) // weighted rendezvous placement, pure
//	func Decide(self, Lookup, ownedHere, registers, forwarded) Decision // routing, pure
//
// Node-to-node routes live under /internal/ (prefix e.g. /internal/v1/):
// wa-supervisor serve passes their table ([]InternalRoute, the move's) to
// statusapi.Options.Internal,
// and the status API lets only callers with the cluster key reach it
// (without the API key, the Host check or the JSON body check).
//
// Fail static: when etcd cannot be reached a node keeps running the
// organizations it owns (OwnsLocally, from a file under state_dir kept in
// step with etcd), refuses what needs etcd with ErrUnavailable, and never
// starts an organization that it does not own. A dead node's organizations
// stay its own: their keys are on its disk.
package cluster
