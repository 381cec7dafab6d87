package statusapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
)

const testClusterKey = "cluster-key-for-the-unit-tests"

// fakeCluster routes each org as told: to "elsewhere" (answered here with
// a 299 naming the body it forwarded), or with an error; others are local.
type fakeCluster struct {
	mu        sync.Mutex
	elsewhere map[string]bool
	errs      map[string]error
	others    []state.Snapshot
	missing   []string
	routed    []string
}

func (c *fakeCluster) Self() string { return "n1" }

func (c *fakeCluster) FromNode(r *http.Request) bool {
	return r.Header.Get(cluster.KeyHeader) == testClusterKey
}

func (c *fakeCluster) Route(w http.ResponseWriter, r *http.Request, org string, registers bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.routed = append(c.routed, fmt.Sprintf("%s %s registers=%v", r.Method, org, registers))
	if err := c.errs[org]; err != nil {
		return true, err
	}
	if c.elsewhere[org] {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set(cluster.NodeHeader, "n2")
		w.WriteHeader(299)
		_, _ = w.Write(b)
		return true, nil
	}
	return false, nil
}

func (c *fakeCluster) Others(context.Context) ([]state.Snapshot, []string) {
	return c.others, c.missing
}

func newClusterHarness(t *testing.T) (*harness, *fakeCluster) {
	h := newHarness(t, testKey)
	fc := &fakeCluster{elsewhere: map[string]bool{}, errs: map[string]error{}}
	internal := []cluster.InternalRoute{{Method: "POST", Pattern: "/internal/v1/echo", Handler: func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}}}
	h.h = New(h.fleet, Options{APIKey: testKey, Listen: "127.0.0.1:8089", Log: slog.New(slog.DiscardHandler), Cluster: fc, Internal: internal})
	return h, fc
}

func TestClusterInternalRoutesNeedTheClusterKey(t *testing.T) {
	h, _ := newClusterHarness(t)
	h.fleet.set("7", state.Connected)
	for name, hdr := range map[string][]string{
		"API key only": {},
		"no key":       {"x-api-key", ""},
		"wrong key":    {cluster.KeyHeader, "nope"},
	} {
		for _, target := range []string{cluster.InternalOrgsPath, "/internal/v1/echo", "/internal/v1/unknown"} {
			method := http.MethodGet
			if strings.HasSuffix(target, "echo") {
				method = http.MethodPost
			}
			rec := h.do(method, target, "", hdr...)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"unauthorized"`) {
				t.Errorf("%s %s with %s: %d %s", method, target, name, rec.Code, rec.Body)
			}
		}
	}
	// With the key (and no API key), from a host name the guard does not
	// know: the internal list, each with its node, and the move's routes.
	rec := h.do(http.MethodGet, cluster.InternalOrgsPath, "", "x-api-key", "", cluster.KeyHeader, testClusterKey, "Host", "n1.wa.svc:8089")
	snaps := decodeAs[[]state.Snapshot](t, rec)
	if rec.Code != http.StatusOK || len(snaps) != len(h.fleet.List()) {
		t.Fatalf("internal list: %d %+v", rec.Code, snaps)
	}
	for _, s := range snaps {
		if s.Node != "n1" {
			t.Errorf("internal list: %s on %q", s.OrganizationID, s.Node)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/internal/v1/echo", strings.NewReader("a tar stream"))
	req.Host = "127.0.0.1:8089"
	req.Header.Set(cluster.KeyHeader, testClusterKey)
	req.Header.Set("Content-Type", "application/x-tar")
	rec = httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTeapot {
		t.Errorf("internal route with the key and a non-JSON body: %d %s", rec.Code, rec.Body)
	}
	rec = h.do(http.MethodGet, "/internal/v1/nothing", "", cluster.KeyHeader, testClusterKey)
	if body := decodeAs[ErrorBody](t, rec); rec.Code != http.StatusNotFound || body.Code != "not_found" {
		t.Errorf("unknown internal route: %d %+v", rec.Code, body)
	}
	// The key is no way around the Host guard for a browser without it.
	if rec := h.do(http.MethodGet, "/v1/orgs/7", "", "Host", "evil.example"); rec.Code == http.StatusOK {
		t.Errorf("a foreign Host without the cluster key was answered")
	}
}

func TestClusterRoutesEveryOrgRoute(t *testing.T) {
	h, fc := newClusterHarness(t)
	fc.elsewhere["far"] = true
	fc.errs["dead"] = &cluster.UnreachableError{Node: "n3", Err: io.EOF}
	fc.errs["dark"] = fmt.Errorf("owner: %w", cluster.ErrUnavailable)
	fc.errs["moved"] = &cluster.MisdirectedError{Owner: "n2"}
	fc.errs["full"] = cluster.ErrFull

	rec := h.do(http.MethodPost, "/v1/orgs/far/pair-phone", `{"phone":"+573001112222"}`)
	if rec.Code != 299 || rec.Header().Get(cluster.NodeHeader) != "n2" || !strings.Contains(rec.Body.String(), `"phone":"+573001112222"`) {
		t.Errorf("routed message: %d %q %s", rec.Code, rec.Header().Get(cluster.NodeHeader), rec.Body)
	}
	if calls := h.fleet.Calls(); len(calls) != 0 {
		t.Errorf("the local fleet was called for a routed org: %v", calls)
	}
	cases := []struct {
		org, code string
		status    int
		says      string
	}{
		{"dead", "owner_unreachable", http.StatusBadGateway, "node n3"},
		{"dark", "cluster_unavailable", http.StatusServiceUnavailable, "etcd"},
		{"moved", "not_owner", http.StatusMisdirectedRequest, "n2"},
		{"full", "cluster_full", http.StatusServiceUnavailable, "capacity"},
	}
	for _, c := range cases {
		rec := h.do(http.MethodPost, "/v1/orgs/"+c.org+"/start", "")
		body := decodeAs[ErrorBody](t, rec)
		if rec.Code != c.status || body.Code != c.code || !strings.Contains(body.Error, c.says) {
			t.Errorf("%s: %d %+v", c.org, rec.Code, body)
		}
	}
	if fc.routed[1] != "POST dead registers=true" {
		t.Errorf("a start is not routed as a registration: %v", fc.routed)
	}
	// A local org is answered here, naming this node.
	h.fleet.set("near", state.Connected)
	rec = h.do(http.MethodGet, "/v1/orgs/near", "")
	if snap := decodeAs[state.Snapshot](t, rec); rec.Code != http.StatusOK || snap.Node != "n1" || rec.Header().Get(cluster.NodeHeader) != "n1" {
		t.Errorf("local org: %d %+v %q", rec.Code, snap, rec.Header().Get(cluster.NodeHeader))
	}
	// The old callers' route names the org in its body and is routed too.
	rec = h.do(http.MethodPost, "/api/clear-corrupted-session", `{"organization_id": "far"}`)
	if rec.Code != 299 || !strings.Contains(rec.Body.String(), `"far"`) {
		t.Errorf("legacy route: %d %s", rec.Code, rec.Body)
	}
	rec = h.do(http.MethodPost, "/api/clear-corrupted-session", `{"organization_id": true}`)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("legacy route with a bad ID: %d %s", rec.Code, rec.Body)
	}
}

func TestClusterListIsTheWholeCluster(t *testing.T) {
	h, fc := newClusterHarness(t)
	for _, s := range h.fleet.List() {
		if err := h.fleet.Delete(context.Background(), s.OrganizationID); err != nil {
			t.Fatal(err)
		}
	}
	h.fleet.set("b", state.Connected)
	fc.others = []state.Snapshot{{OrganizationID: "c", Status: state.Connected, Node: "n2"}, {OrganizationID: "a", Status: state.QRRequired, Node: "n3"}}
	fc.missing = []string{"n4"}
	rec := h.do(http.MethodGet, "/v1/orgs", "")
	snaps := decodeAs[[]state.Snapshot](t, rec)
	got := []string{}
	for _, s := range snaps {
		got = append(got, s.OrganizationID+"@"+s.Node)
	}
	if strings.Join(got, " ") != "a@n3 b@n1 c@n2" || rec.Header().Get(UnreachableHeader) != "n4" {
		t.Errorf("list: %v, unreachable %q", got, rec.Header().Get(UnreachableHeader))
	}
	// Another node asking gets this node's own only.
	rec = h.do(http.MethodGet, "/v1/orgs", "", cluster.KeyHeader, testClusterKey)
	if snaps := decodeAs[[]state.Snapshot](t, rec); len(snaps) != 1 {
		t.Errorf("list for a node: %+v", snaps)
	}
}
