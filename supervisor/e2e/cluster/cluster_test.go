package clustere2e

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
)

func phoneOf(i int) string { return fmt.Sprintf("5730000001%02d", i) }

// linkAll registers orgs through the nodes in turn, scans every QR and
// waits until all are connected; it returns each org's owner.
func linkAll(e *Env, orgs []string) map[string]string {
	e.T.Helper()
	for i, org := range orgs {
		e.Nodes[i%len(e.Nodes)].StartOrg(org)
	}
	owners := map[string]string{}
	for i, org := range orgs {
		via := e.Nodes[(i+1)%len(e.Nodes)]
		qr := via.WaitStatus(org, state.QRRequired, 30*time.Second)
		e.Control(http.MethodPost, "/control/scan", map[string]string{"qr_code": qr.QRCode, "phone": phoneOf(i)}, nil)
	}
	for i, org := range orgs {
		s := e.Nodes[i%len(e.Nodes)].WaitStatus(org, state.Connected, 30*time.Second)
		if !strings.HasPrefix(s.JID, phoneOf(i)) {
			e.T.Fatalf("%s connected as %s, want phone %s", org, s.JID, phoneOf(i))
		}
		owners[org] = s.Node
	}
	return owners
}

// checkReachable fails unless every org answers connected through every
// running node, named by the same owner in "node" and X-Wa-Sidecar-Node.
func checkReachable(e *Env, owners map[string]string) {
	e.T.Helper()
	for org, owner := range owners {
		for _, n := range e.Nodes {
			if !n.Running() {
				continue
			}
			r := n.Do(http.MethodGet, "/v1/orgs/"+org, nil)
			var s state.Snapshot
			r.JSON(e.T, &s)
			if r.Status != http.StatusOK || s.Status != state.Connected || s.Node != owner || r.Header.Get(cluster.NodeHeader) != owner {
				e.T.Fatalf("%s through %s: %d %s (header node %q), want connected on %s",
					org, n.Name, r.Status, r.Body, r.Header.Get(cluster.NodeHeader), owner)
			}
		}
	}
}

// Nine organizations spread over three nodes, each reachable from every
// node; while they link and while a node restarts, no organization ever
// runs in two worker processes of the cluster.
func TestNineOrgsSpreadAndReachableFromEveryNode(t *testing.T) {
	e := NewEnv(t, Options{})
	sampler := e.SampleWorkers()
	orgs := make([]string, 9)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("org-%d", i+1)
	}
	owners := linkAll(e, orgs)
	perNode := map[string]int{}
	for _, o := range owners {
		perNode[o]++
	}
	if len(perNode) < 2 {
		t.Fatalf("nine organizations all placed on one node: %v", perNode)
	}
	t.Logf("placement: %v", perNode)
	checkReachable(e, owners)

	// The worker of each org runs under its owner's supervisor.
	for _, org := range orgs {
		if w := e.Workers()[org]; len(w) != 1 {
			t.Fatalf("%s runs in %d worker processes: %v", org, len(w), w)
		}
	}
	total := 0.0
	for _, n := range e.Nodes {
		owned := n.Metric("wa_sidecar_cluster_owned_orgs", nil)
		if int(owned) != perNode[n.Name] {
			t.Errorf("node %s reports owning %v, owns %d", n.Name, owned, perNode[n.Name])
		}
		total += owned
		if up := n.Metric("wa_sidecar_cluster_etcd_up", nil); up != 1 {
			t.Errorf("node %s: etcd_up %v", n.Name, up)
		}
	}

	// The list of any node is the whole cluster, each with its node.
	for _, n := range e.Nodes {
		list := n.List()
		if len(list) != 9 {
			t.Fatalf("list through %s has %d organizations", n.Name, len(list))
		}
		for i, s := range list {
			if s.Node != owners[s.OrganizationID] {
				t.Errorf("list through %s: %s on %q, owner is %s", n.Name, s.OrganizationID, s.Node, owners[s.OrganizationID])
			}
			if i > 0 && list[i-1].OrganizationID >= s.OrganizationID {
				t.Errorf("list through %s is not sorted by ID", n.Name)
			}
		}
	}

	// Internal routes answer only the cluster key: not the API key, not
	// nothing, not a wrong key.
	n1 := e.Nodes[0]
	for name, h := range map[string]map[string]string{
		"no key":    {},
		"API key":   {"x-api-key": APIKey},
		"wrong key": {cluster.KeyHeader: ClusterKey + "x"},
	} {
		if r := n1.DoWith(http.MethodGet, cluster.InternalOrgsPath, nil, h); r.Status != http.StatusUnauthorized || r.Code() != "unauthorized" {
			t.Errorf("internal route with %s: %d %s", name, r.Status, r.Body)
		}
	}
	if r := n1.DoWith(http.MethodGet, cluster.InternalOrgsPath, nil, map[string]string{cluster.KeyHeader: ClusterKey}); r.Status != http.StatusOK {
		t.Errorf("internal route with the cluster key: %d %s", r.Status, r.Body)
	}
	// The move's internal routes refuse, by name, what does not fit; the
	// transport holds each answer against openapi.json's /internal/ paths.
	mine, theirs := orgs[0], ""
	owner := e.Node(owners[mine])
	for org, o := range owners {
		if o != owner.Name {
			theirs = org
		}
	}
	nodeKey := map[string]string{cluster.KeyHeader: ClusterKey}
	for _, c := range []struct {
		path   string
		body   any
		status int
		code   string
	}{
		{"/internal/v1/orgs/" + mine + "/discard", nil, http.StatusConflict, "conflict"},
		{"/internal/v1/orgs/" + theirs + "/activate", nil, http.StatusConflict, "not_owner"},
		{"/internal/v1/orgs/" + mine + "/import", map[string]any{"version": 1, "org": theirs}, http.StatusBadRequest, "bad_body"},
		{"/internal/v1/orgs/no.such/import", map[string]any{}, http.StatusBadRequest, "bad_id"},
	} {
		if r := owner.DoWith(http.MethodPost, c.path, c.body, nodeKey); r.Status != c.status || r.Code() != c.code {
			t.Errorf("POST %s: %d %s, want %d %s", c.path, r.Status, r.Body, c.status, c.code)
		}
	}
	// The public routes still want the API key, also for orgs of other nodes.
	for org, owner := range owners {
		if owner == n1.Name {
			continue
		}
		if r := n1.DoWith(http.MethodGet, "/v1/orgs/"+org, nil, nil); r.Status != http.StatusUnauthorized {
			t.Errorf("%s through %s without the API key: %d %s", org, n1.Name, r.Status, r.Body)
		}
		break
	}

	// A node restarts: its organizations come back linked on it, and
	// nowhere else meanwhile.
	n2 := e.Node("n2")
	n2.Stop()
	n2.Start()
	e.WaitMembers(3)
	for org, owner := range owners {
		if owner == "n2" {
			n2.WaitStatus(org, state.Connected, 30*time.Second)
		}
	}
	checkReachable(e, owners)
	sampler.Finish(t)
}

// Every cluster series that the dashboard and the alert rules query
// exists on a node (the single-host monitoring test skips them).
func TestDashboardAndRulesQueryLiveClusterMetrics(t *testing.T) {
	e := NewEnv(t, Options{Nodes: 1})
	name := regexp.MustCompile(`wa_sidecar_cluster_[a-z0-9_]+`)
	n := 0
	for _, file := range []string{"../../../monitoring/grafana/wa-sidecar.json", "../../../monitoring/prometheus/wa-sidecar-rules.yml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllString(string(b), -1) {
			n++
			if !e.Nodes[0].HasMetric(m) {
				t.Errorf("%s queries %s, which a node does not expose", file, m)
			}
		}
	}
	if n < 4 {
		t.Fatalf("only %d cluster metric references found", n)
	}
}

// A deleted organization kept its place in etcd for good: a node of
// capacity 1 refused every registration (cluster_full) once its first
// organization had been deleted. Now the place comes back once the
// tombstone is purged, and stays back across a restart.
func TestADeletedOrgGivesItsPlaceBack(t *testing.T) {
	e := NewEnv(t, Options{Nodes: 1, Capacity: 1})
	n := e.Nodes[0]
	n.StartOrg("first")
	if r := n.Do(http.MethodPost, "/v1/orgs/second/start", nil); r.Status != http.StatusServiceUnavailable || r.Code() != "cluster_full" {
		t.Fatalf("a second organization on a node of capacity 1: %d %s", r.Status, r.Body)
	}
	if r := n.Do(http.MethodDelete, "/v1/orgs/first", nil); r.Status/100 != 2 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	e.Eventually(30*time.Second, "second placed once first's place is released", func() error {
		if r := n.Do(http.MethodPost, "/v1/orgs/second/start", nil); r.Status/100 != 2 {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})
	n.Stop()
	n.Start()
	if s := n.Status("second"); s.OrganizationID != "second" {
		t.Fatalf("second after the restart: %+v", s)
	}
	if r := n.Do(http.MethodGet, "/v1/orgs/first", nil); r.Status != http.StatusNotFound {
		t.Fatalf("first after the restart: %d %s", r.Status, r.Body)
	}
}
