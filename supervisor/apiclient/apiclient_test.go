package apiclient

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

const key = "k-123"

// fakeFleet keeps statuses in a map; cooldown, when set, refuses starts.
type fakeFleet struct {
	mu       sync.Mutex
	orgs     map[string]state.Status
	cooldown time.Time
}

func (f *fakeFleet) snap(id string) (state.Snapshot, error) {
	st, ok := f.orgs[id]
	if !ok {
		return state.Snapshot{}, lifecycle.ErrUnknownOrg
	}
	return state.Snapshot{OrganizationID: id, Status: st}, nil
}

func (f *fakeFleet) setIfKnown(id string, st state.Status) (state.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.orgs[id]; !ok {
		return state.Snapshot{}, lifecycle.ErrUnknownOrg
	}
	f.orgs[id] = st
	return f.snap(id)
}

func (f *fakeFleet) List() []state.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []state.Snapshot
	for id := range f.orgs {
		s, _ := f.snap(id)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b state.Snapshot) int { return strings.Compare(a.OrganizationID, b.OrganizationID) })
	return out
}

func (f *fakeFleet) Ready() error { return nil }

func (f *fakeFleet) Get(id string) (state.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap(id)
}

func (f *fakeFleet) Start(_ context.Context, id string, _ fleet.StartOptions) (state.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.cooldown.IsZero() {
		return state.Snapshot{}, &lifecycle.HoldError{Org: id, Until: f.cooldown, Why: "a logout"}
	}
	if f.orgs[id] != state.Connected {
		f.orgs[id] = state.Queued
	}
	return f.snap(id)
}

func (f *fakeFleet) Stop(_ context.Context, id string) (state.Snapshot, error) {
	return f.setIfKnown(id, state.Stopped)
}
func (f *fakeFleet) Logout(_ context.Context, id string) (state.Snapshot, error) {
	return f.setIfKnown(id, state.LoggedOut)
}
func (f *fakeFleet) Clear(_ context.Context, id string) (state.Snapshot, error) {
	return f.setIfKnown(id, state.Queued)
}

func (f *fakeFleet) Delete(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.orgs[id]; !ok {
		return lifecycle.ErrUnknownOrg
	}
	delete(f.orgs, id)
	return nil
}

func (f *fakeFleet) PairPhone(_ context.Context, id, phone string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.orgs[id] == state.Connected {
		return "", &lifecycle.ConflictError{Org: id, Msg: "already linked"}
	}
	return "ABCD-" + phone[len(phone)-4:], nil
}

func newServer(t *testing.T) (*fakeFleet, http.Handler) {
	f := &fakeFleet{orgs: map[string]state.Status{"2": state.Connected}}
	return f, statusapi.New(f, statusapi.Options{APIKey: key, Log: slog.New(slog.DiscardHandler)})
}

// exercise runs the whole API surface through c.
func exercise(t *testing.T, c *Client, f *fakeFleet) {
	ctx := context.Background()
	if err := c.Healthz(ctx); err != nil {
		t.Fatalf("healthz: %v", err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	s, err := c.Status(ctx, "2")
	if err != nil || s.Status != state.Connected {
		t.Fatalf("status: %+v, %v", s, err)
	}
	if s, err = c.Start(ctx, "new"); err != nil || s.Status != state.Queued {
		t.Fatalf("start: %+v, %v", s, err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 2 || list[0].OrganizationID != "2" || list[1].OrganizationID != "new" {
		t.Fatalf("list: %+v, %v", list, err)
	}
	code, err := c.PairPhone(ctx, "new", "573001234567")
	if err != nil || code != "ABCD-4567" {
		t.Fatalf("pair-phone: %q, %v", code, err)
	}
	for name, call := range map[string]func(context.Context, string) (state.Snapshot, error){
		"stopped": c.Stop, "logged_out": c.Logout, "queued": c.Clear,
	} {
		if s, err := call(ctx, "new"); err != nil || string(s.Status) != name {
			t.Fatalf("%s: %+v, %v", name, s, err)
		}
	}
	if err := c.Delete(ctx, "new"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Status(ctx, "new"); !IsCode(err, "unknown_org") {
		t.Fatalf("status after delete: %v", err)
	}

	f.mu.Lock()
	f.cooldown = time.Now().Add(5 * time.Minute)
	f.mu.Unlock()
	_, err = c.Start(ctx, "2")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != "cooldown" || !strings.Contains(ae.Message, "held back after a logout") {
		t.Fatalf("start in cooldown: %#v", err)
	}
	if _, err := c.PairPhone(ctx, "2", "573001234567"); !IsCode(err, "conflict") {
		t.Fatalf("pair-phone on a linked org: %v", err)
	}
}

func TestClientOverTCP(t *testing.T) {
	f, h := newServer(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	exercise(t, New(strings.TrimPrefix(srv.URL, "http://"), key), f)
}

func TestClientOverUnixSocket(t *testing.T) {
	f, h := newServer(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := statusapi.Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	defer srv.Close()
	exercise(t, New("unix:"+sock, key), f)
}

func TestClientErrors(t *testing.T) {
	_, h := newServer(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	_, err := New(addr, "wrong").List(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Code != "unauthorized" || ae.Message == "" {
		t.Fatalf("wrong key: %#v", err)
	}
	if !strings.Contains(err.Error(), ae.Message) {
		t.Fatalf("Error() = %q drops the server's sentence", err)
	}
	if err := New(addr, "").Healthz(ctx); err != nil {
		t.Fatalf("healthz needs no key: %v", err)
	}
	// A slash in the ID must not turn into another route.
	if _, err := New(addr, key).Stop(ctx, "a/b"); !IsCode(err, "bad_id") {
		t.Fatalf("bad id: %v", err)
	}
	if _, err := New(addr, key).PairPhone(ctx, "2", "+57 300"); !IsCode(err, "bad_body") {
		t.Fatalf("bad phone: %v", err)
	}
}

func TestClientNonAPIAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway from a proxy", http.StatusBadGateway)
	}))
	defer srv.Close()
	err := New(strings.TrimPrefix(srv.URL, "http://"), key).Healthz(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || ae.Code != "" || ae.Message != "bad gateway from a proxy" {
		t.Fatalf("err = %#v", err)
	}
}

// A daemon that is down is named by the address in the config, not by the
// placeholder URL a unix socket is dialled through, and the cause stays
// inspectable.
func TestClientDaemonDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()
	cases := []struct {
		listen string
		cause  error
	}{
		{"unix:" + filepath.Join(t.TempDir(), "absent.sock"), syscall.ENOENT},
		{closedPort, syscall.ECONNREFUSED},
	}
	for _, c := range cases {
		err := New(c.listen, key).Healthz(context.Background())
		var ae *APIError
		if err == nil || errors.As(err, &ae) || !errors.Is(err, c.cause) ||
			!strings.Contains(err.Error(), "cannot reach the daemon at "+c.listen+": ") ||
			strings.Contains(err.Error(), "http://") {
			t.Errorf("%s: err = %v, want a dial error naming the address", c.listen, err)
		}
	}
}

// A cluster's list names the nodes that did not answer in a header; the
// CLI needs them to tell a missing organization from a gone one.
func TestListClusterNamesTheNodesThatDidNotAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(statusapi.UnreachableHeader, "vps-3, vps-4")
		w.Write([]byte(`[{"organization_id":"a","status":"connected","node":"vps-1"}]`))
	}))
	t.Cleanup(srv.Close)
	snaps, unreachable, err := New(srv.Listener.Addr().String(), "").ListCluster(context.Background())
	if err != nil || len(snaps) != 1 || snaps[0].Node != "vps-1" || strings.Join(unreachable, " ") != "vps-3 vps-4" {
		t.Fatalf("ListCluster: %v, %+v, %q", err, snaps, unreachable)
	}
}
