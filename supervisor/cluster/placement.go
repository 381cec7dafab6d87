package cluster

import (
	"errors"
	"math"

	"github.com/cespare/xxhash/v2"
)

// ErrFull means no live node has capacity left for a new organization.
var ErrFull = errors.New("no live node of the cluster has capacity left for a new organization")

// Place picks the owner of a new organization by weighted rendezvous
// (highest random weight) hashing over the live members with capacity
// left: each member scores -capacity/ln(u), u the org's hash with the
// node's name mapped into (0,1). A node joining or leaving moves only the
// placements that it wins or held, and a member of twice the capacity wins
// twice as often. owned counts the organizations each node owns.
//
// Hand-written rather than dgryski/go-rendezvous or tysonmote/rendezvous:
// both weigh every node the same, and cluster.capacity is a weight; the
// weighted score is the four lines below.
func Place(org string, members []Member, owned map[string]int) (string, error) {
	best, bestScore := "", math.Inf(-1)
	for _, m := range members {
		if !m.Live || m.Capacity <= 0 || owned[m.Node] >= m.Capacity {
			continue
		}
		h := xxhash.Sum64String(org + "\x00" + m.Node)
		u := (float64(h>>11) + 0.5) / (1 << 53) // in (0,1), never 0 or 1
		score := -float64(m.Capacity) / math.Log(u)
		if score > bestScore || (score == bestScore && m.Node < best) {
			best, bestScore = m.Node, score
		}
	}
	if best == "" {
		return "", ErrFull
	}
	return best, nil
}
