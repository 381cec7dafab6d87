package move_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/archive"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock"
	"github.com/wa-sidecar/wa-sidecar/supervisor/clock/clocktest"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/metrics"
	"github.com/wa-sidecar/wa-sidecar/supervisor/move"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/transfer"
)

// owners is etcd's orgs/ keys for the test: compare-and-swap included.
type owners struct {
	mu sync.Mutex
	of map[string]string
	// down: etcd cannot be reached.
	down bool
}

func (o *owners) Owner(_ context.Context, org string) (string, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return "", false, fmt.Errorf("read owner of %s: %w", org, cluster.ErrUnavailable)
	}
	n, ok := o.of[org]
	return n, ok, nil
}

func (o *owners) SwapOwner(_ context.Context, org, from, to string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.of[org] != from {
		return errors.New("compare failed")
	}
	o.of[org] = to
	return nil
}

// node is one supervisor's state: a real state.db, a real state_dir, a
// fleet (no launches: its organizations here do not run), an outbox, and
// its internal routes on a real HTTP server.
type node struct {
	name  string
	dir   string
	st    *store.Store
	fleet *fleet.Fleet
	local *move.Local
	srv   *httptest.Server
}

func newNode(t *testing.T, name string, own *owners, recs ...lifecycle.Record) *node {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "supervisor", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, r := range recs {
		if err := st.SaveOrg(context.Background(), r, nil, clocktest.Origin()); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.StateDir = dir
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(prometheus.NewRegistry(), cfg.Workers.MaxLive)
	clk := clock.NewFake(clocktest.Origin())
	ob := outbox.New(outbox.Options{Config: cfg.Messages, Store: st, Metrics: m, Log: log, Clock: clk})
	fl := fleet.New(fleet.Options{
		Config: cfg, Store: st, Archive: archive.NewDir(filepath.Join(dir, "auth_sessions")), Metrics: m, Clock: clk, Log: log,
		Launch: func(context.Context, string) (fleet.Worker, error) {
			return nil, errors.New("no worker runs in this test")
		},
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fl.Shutdown(ctx)
	})
	loaded, err := st.LoadOrgs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fl.Boot(loaded)
	n := &node{name: name, dir: dir, st: st, fleet: fl}
	n.local = &move.Local{Fleet: fl, Store: st, Outbox: ob, Dirs: transfer.DirsOf(dir), Clock: clk, Log: log, Self: name, Owners: own}
	n.srv = httptest.NewServer(internalMux(n.local))
	t.Cleanup(n.srv.Close)
	return n
}

// caller reaches the nodes' internal routes as cluster.Request does.
type caller map[string]*node

func (c caller) Request(ctx context.Context, method, name, path string, body io.Reader) (*http.Response, error) {
	n := c[name]
	req, err := http.NewRequestWithContext(ctx, method, n.srv.URL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

const org = "acme"

// loggedOut is an organization in its LOGOUT cooldown: a move must keep
// the 409 that a start gets.
func loggedOut() lifecycle.Record {
	now := clocktest.Origin()
	return lifecycle.Record{ID: org, Status: state.LoggedOut, Reason: "device_removed", Linked: true, JID: "573007915262:12@s.whatsapp.net",
		Hold: lifecycle.Hold{Until: now.Add(time.Hour), Reason: lifecycle.HoldLogout}, Fingerprint: "Chrome/Linux/6.1.0", AddedAt: now}
}

func withAuthAndMessage(t *testing.T, n *node) {
	t.Helper()
	auth := filepath.Join(n.dir, "auth_sessions", org)
	if err := os.MkdirAll(auth, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(auth, "whatsmeow.db"), []byte("device keys"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.st.InsertMessage(context.Background(), outbox.Message{ID: "m1", Org: org, To: "573001", Text: "queued before the move", WAID: "3EB0M1", QueuedAt: clocktest.Origin()}); err != nil {
		t.Fatal(err)
	}
}

func TestMoveBetweenTwoNodes(t *testing.T) {
	own := &owners{of: map[string]string{org: "a"}}
	a := newNode(t, "a", own, loggedOut())
	b := newNode(t, "b", own)
	withAuthAndMessage(t, a)
	m := move.Mover{Source: a.local, Target: move.Remote{Caller: caller{"a": a, "b": b}}, Owners: own, Log: a.local.Log}
	st, snap := m.Run(context.Background(), move.Request{Org: org, From: "a", To: "b"})
	if st.Result != move.Moved {
		t.Fatalf("move: %+v", st)
	}
	if own.of[org] != "b" || snap.Status != state.LoggedOut || snap.JID != loggedOut().JID {
		t.Fatalf("owner %s, status on the target %+v", own.of[org], snap)
	}
	// The hold went along: the target refuses a start as the source did.
	var hold *lifecycle.HoldError
	if _, err := b.fleet.Start(context.Background(), org, fleet.StartOptions{}); !errors.As(err, &hold) {
		t.Fatalf("start on the target: %v, want the logout cooldown", err)
	}
	if msgs, _ := b.st.Messages(context.Background(), org, outbox.Filter{Limit: 10}); len(msgs) != 1 || msgs[0].Status != outbox.Queued {
		t.Fatalf("messages on the target: %+v", msgs)
	}
	if raw, err := os.ReadFile(filepath.Join(b.dir, "auth_sessions", org, "whatsmeow.db")); err != nil || string(raw) != "device keys" {
		t.Fatalf("auth on the target: %q %v", raw, err)
	}
	// The source forgot it and archived its keys, never deleted them.
	if _, err := a.fleet.Get(org); !errors.Is(err, lifecycle.ErrUnknownOrg) {
		t.Fatalf("the source still has it: %v", err)
	}
	if recs, _ := a.st.LoadOrgs(context.Background()); len(recs) != 0 {
		t.Fatalf("rows left on the source: %+v", recs)
	}
	if archived, _ := filepath.Glob(filepath.Join(a.dir, "auth_sessions", org+"_moved_*", "whatsmeow.db")); len(archived) != 1 {
		t.Fatalf("the source's keys were not archived: %v", archived)
	}
}

// In TestAMoveThatFailsHalfway node b's import route breaks halfway: the
// connection closes while the source streams the bundle, as when the
// target is killed mid-import.
func TestAMoveThatFailsHalfwayLeavesTheOrganizationOnTheSource(t *testing.T) {
	own := &owners{of: map[string]string{org: "a"}}
	a := newNode(t, "a", own, loggedOut())
	b := newNode(t, "b", own)
	withAuthAndMessage(t, a)
	b.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/import") {
			buf := make([]byte, 64)
			_, _ = io.ReadFull(r.Body, buf)
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no hijacker")
				return
			}
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		internalMux(b.local).ServeHTTP(w, r)
	})
	m := move.Mover{Source: a.local, Target: move.Remote{Caller: caller{"a": a, "b": b}}, Owners: own, Log: a.local.Log}
	st, _ := m.Run(context.Background(), move.Request{Org: org, From: "a", To: "b"})
	if st.Result != move.Failed || !strings.HasPrefix(st.Cause, "import") {
		t.Fatalf("move with the target killed mid-import: %+v", st)
	}
	if own.of[org] != "a" {
		t.Fatalf("owner flipped to %s", own.of[org])
	}
	s, err := a.fleet.Get(org)
	if err != nil || s.Status != state.LoggedOut {
		t.Fatalf("the source after the failed move: %+v %v", s, err)
	}
	// Not fenced any more: the start is refused by the hold, as before
	// the move, and not by the move.
	var hold *lifecycle.HoldError
	if _, err := a.fleet.Start(context.Background(), org, fleet.StartOptions{}); !errors.As(err, &hold) {
		t.Fatalf("start on the source after the failed move: %v, want the cooldown", err)
	}
	if _, err := os.Stat(filepath.Join(a.dir, "auth_sessions", org, "whatsmeow.db")); err != nil {
		t.Fatalf("the source's keys: %v", err)
	}
	if recs, _ := b.st.LoadOrgs(context.Background()); len(recs) != 0 {
		t.Fatalf("the target kept rows: %+v", recs)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "auth_sessions", org)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the target kept an auth directory: %v", err)
	}
}

// A target restarted between its import and the activation finishes the
// move at boot when the owner flipped, and drops its copy when not.
func TestResumeImportsAfterARestart(t *testing.T) {
	for _, flipped := range []bool{true, false} {
		t.Run(fmt.Sprintf("flipped=%v", flipped), func(t *testing.T) {
			own := &owners{of: map[string]string{org: "a"}}
			a := newNode(t, "a", own, loggedOut())
			b := newNode(t, "b", own)
			withAuthAndMessage(t, a)
			ctx := context.Background()
			if _, err := a.local.Stop(ctx, org); err != nil {
				t.Fatal(err)
			}
			bundle, err := a.local.Export(ctx, org)
			if err != nil {
				t.Fatal(err)
			}
			bundle.Run = true
			if err := (move.Remote{Caller: caller{"b": b}}).Import(ctx, "b", bundle); err != nil {
				t.Fatal(err)
			}
			if flipped {
				own.of[org] = "b"
			}
			if err := b.local.ResumeImports(ctx); err != nil {
				t.Fatal(err)
			}
			recs, err := b.st.LoadOrgs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pending, _ := b.st.PendingImports(ctx)
			switch {
			case len(pending) != 0:
				t.Fatalf("still pending after the boot: %v", pending)
			case flipped && (len(recs) != 1 || !recs[0].Run):
				t.Fatalf("the owned import was not activated to run as on the source: %+v", recs)
			case !flipped && len(recs) != 0:
				t.Fatalf("the copy of a move that did not flip was kept: %+v", recs)
			}
			_, err = os.Stat(filepath.Join(b.dir, "auth_sessions", org))
			if flipped != (err == nil) {
				t.Fatalf("auth directory on the target (flipped %v): %v", flipped, err)
			}
		})
	}
}

func TestInternalRoutesRefuseWhatTheyCannotDo(t *testing.T) {
	own := &owners{of: map[string]string{org: "a", "held": "b"}}
	b := newNode(t, "b", own, loggedOut())
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(b.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Code string }
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &e)
		return resp.StatusCode, e.Code
	}
	// A bundle of the organization b has registered, in b's own schema.
	mine, err := b.st.ExportOrg(context.Background(), org)
	if err != nil {
		t.Fatal(err)
	}
	registered := fmt.Sprintf(`{"version":1,"org":%q,"data":{"org":%[1]q,"schema":%d,"tables":[{"name":"orgs","rows":[{"id":%[1]q,"status":"stopped"}]}]}}`, org, mine.Schema)
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"not JSON", "/internal/v1/orgs/x/import", "{", http.StatusBadRequest, "bad_body"},
		{"another org's bundle", "/internal/v1/orgs/x/import", `{"version":1,"org":"y","data":{"org":"y","schema":11,"tables":[]}}`, http.StatusBadRequest, "bad_body"},
		{"bad path", "/internal/v1/orgs/x/import", `{"version":1,"org":"x","data":{"org":"x","schema":11,"tables":[]},"auth":[{"path":"../../etc/x","data":""}]}`, http.StatusBadRequest, "bad_body"},
		{"registered here", "/internal/v1/orgs/" + org + "/import", registered, http.StatusConflict, "conflict"},
		{"bad id", "/internal/v1/orgs/a_moved_1/import", "{}", http.StatusBadRequest, "bad_id"},
		{"discard a registered org", "/internal/v1/orgs/" + org + "/discard", "", http.StatusConflict, "conflict"},
		{"activate what another node owns", "/internal/v1/orgs/" + org + "/activate", "", http.StatusConflict, "not_owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, code := post(tc.path, tc.body); status != tc.status || code != tc.code {
				t.Fatalf("%s: %d %s, want %d %s", tc.path, status, code, tc.status, tc.code)
			}
		})
	}
	b.local.MaxOrgs = 1 // b has one: full
	if status, code := post("/internal/v1/orgs/other/import", strings.ReplaceAll(registered, org, "other")); status != http.StatusConflict || code != "too_many_orgs" {
		t.Fatalf("import into a full node: %d %s", status, code)
	}
	// Without etcd an activation cannot know the owner: a 503 to retry,
	// not an internal error of the target's.
	own.mu.Lock()
	own.down = true
	own.mu.Unlock()
	if status, code := post("/internal/v1/orgs/"+org+"/activate", ""); status != http.StatusServiceUnavailable || code != "cluster_unavailable" {
		t.Fatalf("activate without etcd: %d %s", status, code)
	}
	if recs, _ := b.st.LoadOrgs(context.Background()); len(recs) != 1 || recs[0].Status != state.LoggedOut {
		t.Fatalf("the refusals changed the node: %+v", recs)
	}
}

// internalMux serves l's internal routes as the status API mounts them.
func internalMux(l *move.Local) *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range l.Routes() {
		mux.HandleFunc(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	return mux
}
