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
//	const KeyHeader, NodeHeader                  // node-to-node key, answering node
//	var ErrUnavailable                           // etcd unreachable: 503 cluster_unavailable
//	func New(Options) (*Cluster, error); (*Cluster).Run(ctx) error
//	func (c *Cluster) Self() string               // this node's name
//	func (c *Cluster) Key() string                // the cluster key for node-to-node calls
//	func (c *Cluster) Up() bool                   // etcd answered the last probe
//	func (c *Cluster) Owner(ctx, org) (node string, found bool, err error)
//	func (c *Cluster) Claim(ctx, org, node) (owner string, err error) // compare-and-create
//	func (c *Cluster) SwapOwner(ctx, org, from, to string) error      // compare-and-swap; ErrNotOwner
//	func (c *Cluster) NodeURL(node) (url string, live bool)           // advertise URL of a member
//	func (c *Cluster) Members() []Member
//	func (c *Cluster) OwnsLocally(org) bool       // what fail static keeps running
//	func (c *Cluster) Restorable(ctx, orgs) []string // which local orgs a booting node may start
//	func (c *Cluster) CountMove(result string)    // wa_sidecar_cluster_moves_total{result}
//	func (c *Cluster) Client(node) *http.Client / Request(ctx, method, node, path, body) // calls carrying the key
//	func NewRouter(*Cluster, *slog.Logger) *Router // what statusapi routes through
//	func Place(org, members, owned) (string, error) // rendezvous placement, pure
//	func Decide(...) Decision                       // routing decision, pure
//
// Fail static: when etcd cannot be reached a node keeps running the
// organizations it owns (OwnsLocally, from a file under state_dir kept in
// step with etcd), refuses what needs etcd with ErrUnavailable, and never
// starts an organization that it does not own. A dead node's organizations
// stay its own: their keys are on its disk.
package cluster
