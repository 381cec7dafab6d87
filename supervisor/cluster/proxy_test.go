package cluster

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func clusterWith(self, key string, members ...Member) *Cluster {
	c := &Cluster{o: Options{Node: self, Key: key}, log: slog.New(slog.DiscardHandler), members: map[string]Member{}}
	for _, m := range members {
		c.members[m.Node] = m
	}
	return c
}

// The owner gets the request whole, with the cluster key and never the
// API key; its answer and its node header come back as they were.
func TestProxyCarriesTheClusterKeyNotTheAPIKey(t *testing.T) {
	var got *http.Request
	var body string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.Header().Set(NodeHeader, "b")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer owner.Close()
	c := clusterWith("a", "the-cluster-key-123", Member{Node: "b", Advertise: owner.URL, Live: true})
	r := NewRouter(c, c.log)

	req := httptest.NewRequest(http.MethodPost, "/v1/orgs/7/messages?x=1", strings.NewReader(`{"to":"1"}`))
	req.Header.Set("x-api-key", "secret-api-key")
	rec := httptest.NewRecorder()
	rec.Header().Set(NodeHeader, "a")
	if err := r.proxy(rec, req, "b"); err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("x-api-key") != "" || got.Header.Get(KeyHeader) != "the-cluster-key-123" {
		t.Errorf("owner saw x-api-key %q and cluster key %q", got.Header.Get("x-api-key"), got.Header.Get(KeyHeader))
	}
	if got.URL.Path != "/v1/orgs/7/messages" || got.URL.RawQuery != "x=1" || body != `{"to":"1"}` {
		t.Errorf("owner saw %s?%s with %q", got.URL.Path, got.URL.RawQuery, body)
	}
	if rec.Code != http.StatusAccepted || rec.Body.String() != `{"ok":true}` || strings.Join(rec.Header().Values(NodeHeader), ",") != "b" {
		t.Errorf("answer %d %s, node %v", rec.Code, rec.Body, rec.Header().Values(NodeHeader))
	}

	// The owner is gone: an UnreachableError naming it, nothing written.
	owner.Close()
	rec = httptest.NewRecorder()
	err := r.proxy(rec, httptest.NewRequest(http.MethodGet, "/v1/orgs/7", nil), "b")
	var u *UnreachableError
	if !errors.As(err, &u) || u.Node != "b" || rec.Body.Len() != 0 {
		t.Errorf("dead owner: %v, wrote %q", err, rec.Body)
	}
	// A member without a lease is not even called.
	c.members["b"] = Member{Node: "b", Advertise: owner.URL}
	if err := r.proxy(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/orgs/7", nil), "b"); !errors.As(err, &u) {
		t.Errorf("member without a lease: %v", err)
	}
}

func TestFromNodeComparesTheKey(t *testing.T) {
	r := NewRouter(clusterWith("a", "the-cluster-key-123"), slog.New(slog.DiscardHandler))
	for key, want := range map[string]bool{"the-cluster-key-123": true, "": false, "the-cluster-key-12": false, "x": false} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if key != "" {
			req.Header.Set(KeyHeader, key)
		}
		if got := r.FromNode(req); got != want {
			t.Errorf("key %q: %v", key, got)
		}
	}
}
