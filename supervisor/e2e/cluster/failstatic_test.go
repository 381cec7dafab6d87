package clustere2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

// ownedBy returns the orgs whose owner is node.
func ownedBy(owners map[string]string, node string) []string {
	var out []string
	for org, o := range owners {
		if o == node {
			out = append(out, org)
		}
	}
	return out
}

// etcd dies: every node keeps its sessions connected and serves its own
// organizations, refuses registrations with 503 cluster_unavailable (a
// node restarted meanwhile restores only its own), and once etcd is back
// registrations work again.
func TestEtcdDownFailsStatic(t *testing.T) {
	e := NewEnv(t, Options{})
	sampler := e.SampleWorkers()
	orgs := []string{"s-1", "s-2", "s-3", "s-4", "s-5", "s-6"}
	owners := linkAll(e, orgs)
	pids := map[string]int{}
	for org := range owners {
		pids[org] = e.Workers()[org][0]
	}

	e.Etcd.Kill()
	e.Eventually(20*time.Second, "every node to see etcd down", func() error {
		for _, n := range e.Nodes {
			if up := n.Metric("wa_sidecar_cluster_etcd_up", nil); up != 0 {
				return fmt.Errorf("node %s: etcd_up %v", n.Name, up)
			}
		}
		return nil
	})
	for i, n := range e.Nodes {
		r := n.Do(http.MethodPost, fmt.Sprintf("/v1/orgs/new-%d/start", i), nil)
		if r.Status != http.StatusServiceUnavailable || r.Code() != "cluster_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Errorf("registration through %s with etcd down: %d %s", n.Name, r.Status, r.Body)
		}
	}
	// Each owner still answers for its own, connected by the same worker.
	for org, owner := range owners {
		s := e.Node(owner).Status(org)
		if s.Status != state.Connected || s.WorkerPID != pids[org] {
			t.Errorf("%s on %s with etcd down: %s, worker %d (was %d)", org, owner, s.Status, s.WorkerPID, pids[org])
		}
		for _, n := range e.Nodes {
			if n.Name == owner {
				continue
			}
			// Another node cannot know the owner: it says so, never
			// answers for it or starts it.
			if r := n.Do(http.MethodGet, "/v1/orgs/"+org, nil); r.Status != http.StatusServiceUnavailable || r.Code() != "cluster_unavailable" {
				t.Errorf("%s through %s with etcd down: %d %s", org, n.Name, r.Status, r.Body)
			}
		}
	}
	// A node that restarts during the outage restores what it owned.
	n1 := e.Node("n1")
	n1.Stop()
	n1.Start()
	for _, org := range ownedBy(owners, "n1") {
		n1.WaitStatus(org, state.Connected, 30*time.Second)
	}
	if w := e.Workers(); len(w) != len(orgs) {
		t.Errorf("with etcd down after a restart, %d organizations run, want %d: %v", len(w), len(orgs), w)
	}

	e.Etcd.Restart()
	e.WaitMembers(3)
	e.Eventually(20*time.Second, "a registration to work again", func() error {
		r := e.Nodes[1].Do(http.MethodPost, "/v1/orgs/after-outage/start", nil)
		if r.Status/100 != 2 {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})
	e.Nodes[2].WaitStatus("after-outage", state.QRRequired, 30*time.Second)
	checkReachable(e, owners)
	sampler.Finish(t)
}

// A node dies: its organizations are not started anywhere else (their
// keys are on its disk), answer 502 owner_unreachable naming it from the
// other nodes, and come back when it does.
func TestNodeKilledKeepsItsOrgs(t *testing.T) {
	e := NewEnv(t, Options{})
	sampler := e.SampleWorkers()
	orgs := []string{"k-1", "k-2", "k-3", "k-4", "k-5", "k-6"}
	owners := linkAll(e, orgs)
	victim := e.Node("n3")
	lost := ownedBy(owners, victim.Name)
	if len(lost) == 0 {
		t.Fatalf("n3 owns none of %v; pick other names", owners)
	}
	victim.Kill()
	e.WaitMembers(2)
	// Checked for several lease TTLs: nothing takes the orgs over.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		w := e.Workers()
		for _, org := range lost {
			if len(w[org]) > 0 {
				t.Fatalf("%s of the dead node runs in %v", org, w[org])
			}
			for _, n := range e.Nodes[:2] {
				r := n.Do(http.MethodGet, "/v1/orgs/"+org, nil)
				if r.Status != http.StatusBadGateway || r.Code() != "owner_unreachable" || !strings.Contains(string(r.Body), "n3") {
					t.Fatalf("%s through %s with n3 dead: %d %s", org, n.Name, r.Status, r.Body)
				}
			}
		}
		// A start of one of them does not place it anew either.
		if r := e.Nodes[0].Do(http.MethodPost, "/v1/orgs/"+lost[0]+"/start", nil); r.Status != http.StatusBadGateway {
			t.Fatalf("start of %s with n3 dead: %d %s", lost[0], r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The others keep working, and the list says who is missing.
	for org, owner := range owners {
		if owner != victim.Name {
			if s := e.Nodes[0].Status(org); s.Status != state.Connected {
				t.Errorf("%s on %s: %s while n3 is dead", org, owner, s.Status)
			}
		}
	}
	r := e.Nodes[0].Do(http.MethodGet, "/v1/orgs", nil)
	if r.Status != http.StatusOK || r.Header.Get("X-Wa-Sidecar-Unreachable-Nodes") != "n3" {
		t.Errorf("list with n3 dead: %d, unreachable %q", r.Status, r.Header.Get("X-Wa-Sidecar-Unreachable-Nodes"))
	}

	victim.Start()
	e.WaitMembers(3)
	for _, org := range lost {
		e.Nodes[0].WaitStatus(org, state.Connected, 30*time.Second)
	}
	checkReachable(e, owners)
	sampler.Finish(t)
}
