package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster/etcdtest"
)

func newNode(t *testing.T, etcd, name, stateDir string) *Cluster {
	t.Helper()
	return newNodeHolding(t, etcd, name, stateDir, 10)
}

func newNodeHolding(t *testing.T, etcd, name, stateDir string, capacity int) *Cluster {
	t.Helper()
	c, err := New(Options{Endpoints: []string{etcd}, Node: name, Advertise: "http://127.0.0.1:1", Capacity: capacity,
		Key: "0123456789abcdef", LeaseTTL: 2 * time.Second, StateDir: stateDir,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func runNode(t *testing.T, c *Cluster) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return func() { cancel(); <-done }
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Against a real etcd: one claim wins among racing nodes, a swap needs
// the expected owner, a node leaving drops out of the members at once,
// and a node that boots with etcd down restores only what it owned.
func TestOwnershipAndMembershipOnRealEtcd(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx := context.Background()
	dirA := filepath.Join(t.TempDir(), "a")
	a := newNode(t, etcd.URL, "a", dirA)
	b := newNode(t, etcd.URL, "b", filepath.Join(t.TempDir(), "b"))
	stopA := runNode(t, a)
	runNode(t, b)
	eventually(t, "both members live", func() bool {
		_, la := b.NodeURL("a")
		_, lb := a.NodeURL("b")
		return la && lb
	})

	// A second supervisor under a live node's name is not let in.
	dup := newNode(t, etcd.URL, "a", filepath.Join(t.TempDir(), "dup"))
	if _, err := dup.join(ctx, `{"advertise":"http://127.0.0.1:2"}`, 0); err == nil || !strings.Contains(err.Error(), "another live node") {
		t.Fatalf("a duplicate name joined: %v", err)
	}
	if u, _ := b.NodeURL("a"); u != "http://127.0.0.1:1" {
		t.Fatalf("the duplicate replaced a's advertise URL: %s", u)
	}

	// Claims racing for one organization: exactly one owner, the same
	// answer for every claimant.
	for i := range 20 {
		org := "race-" + string(rune('a'+i))
		var wg sync.WaitGroup
		owners := make([]string, 2)
		for j, c := range []*Cluster{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := c.Claim(ctx, org, c.Self())
				if err != nil {
					t.Error(err)
				}
				owners[j] = o
			}()
		}
		wg.Wait()
		if owners[0] != owners[1] || (owners[0] != "a" && owners[0] != "b") {
			t.Fatalf("%s: claims answered %v", org, owners)
		}
		if got := a.OwnsLocally(org) || b.OwnsLocally(org); !got || a.OwnsLocally(org) == b.OwnsLocally(org) {
			t.Fatalf("%s: owned locally by a=%v b=%v", org, a.OwnsLocally(org), b.OwnsLocally(org))
		}
	}

	if o, err := a.Claim(ctx, "7", "a"); err != nil || o != "a" {
		t.Fatalf("claim: %s %v", o, err)
	}
	if err := b.SwapOwner(ctx, "7", "b", "a"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("swap from a non-owner: %v", err)
	}
	// A read of etcd taken before the swap (a probe, a request) must not
	// give the org back to a's owned list after it.
	gen := a.generation()
	if err := a.SwapOwner(ctx, "7", "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := a.markOwned("7", gen); err != nil {
		t.Fatal(err)
	}
	if o, found, err := b.Owner(ctx, "7"); err != nil || !found || o != "b" {
		t.Fatalf("owner after swap: %s %v %v", o, found, err)
	}
	if a.OwnsLocally("7") {
		t.Fatal("a still believes it owns 7 after giving it away")
	}
	if _, found, _ := a.Owner(ctx, "none"); found {
		t.Fatal("an unclaimed organization has an owner")
	}

	// a leaves: its lease is revoked, so b sees it gone without waiting
	// for the TTL.
	stopA()
	eventually(t, "a to leave", func() bool { _, live := b.NodeURL("a"); return !live })

	// Boot of a with etcd down: it restores what it owned, nothing else.
	if _, err := a.Claim(ctx, "8", "a"); err != nil {
		t.Fatal(err)
	}
	etcd.Kill()
	if _, _, err := b.Owner(ctx, "8"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("owner with etcd down: %v", err)
	}
	if _, err := b.Claim(ctx, "9", "b"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("claim with etcd down: %v", err)
	}
	a2 := newNode(t, etcd.URL, "a", dirA)
	got := a2.Restorable(ctx, []string{"7", "8", "unknown"})
	if len(got) != 1 || got[0] != "8" {
		t.Fatalf("restorable with etcd down: %v, want [8]", got)
	}
	eventually(t, "b to see etcd down", func() bool { return !b.Up() })
	etcd.Restart()
	eventually(t, "b to see etcd back", b.Up)
	if o, found, err := b.Owner(ctx, "8"); err != nil || !found || o != "a" {
		t.Fatalf("owner after the restart: %s %v %v", o, found, err)
	}
	// With etcd: a stored organization nobody owns is claimed, one that
	// belongs to b is not restored.
	got = a2.Restorable(ctx, []string{"7", "8", "fresh"})
	if len(got) != 2 || got[0] != "8" || got[1] != "fresh" {
		t.Fatalf("restorable with etcd: %v, want [8 fresh]", got)
	}
}

// A deleted organization kept its orgs/ key for good, so a node filled
// up with organizations that no longer existed and refused new ones.
// Release gives the place back, only for this node's own keys, and
// ReleaseUnstored gives back what a crash kept from being released.
func TestReleaseGivesThePlaceBack(t *testing.T) {
	etcd := etcdtest.Start(t)
	ctx := context.Background()
	a := newNodeHolding(t, etcd.URL, "a", filepath.Join(t.TempDir(), "a"), 2)
	b := newNode(t, etcd.URL, "b", filepath.Join(t.TempDir(), "b"))
	runNode(t, a)
	eventually(t, "a live", func() bool { _, live := a.NodeURL("a"); return live })

	for _, org := range []string{"x", "y"} {
		if o, err := a.PlaceNew(ctx, org); err != nil || o != "a" {
			t.Fatalf("place %s: %s %v", org, o, err)
		}
	}
	if _, err := a.PlaceNew(ctx, "z"); !errors.Is(err, ErrFull) {
		t.Fatalf("a third organization on a node of capacity 2: %v", err)
	}
	if err := b.Release(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	if o, found, err := a.Owner(ctx, "y"); err != nil || !found || o != "a" {
		t.Fatalf("another node released a's organization: %s %v %v", o, found, err)
	}
	if err := a.Release(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := a.Owner(ctx, "x"); err != nil || found {
		t.Fatalf("x still placed after its release: %v %v", found, err)
	}
	if a.OwnsLocally("x") {
		t.Fatal("a still believes it owns x")
	}
	if o, err := a.PlaceNew(ctx, "z"); err != nil || o != "a" {
		t.Fatalf("place z after x's release: %s %v", o, err)
	}

	// A boot that stores y but not z (purged, its release cut off).
	if err := a.ReleaseUnstored(ctx, []string{"y"}); err != nil {
		t.Fatal(err)
	}
	owners, err := a.Ownership(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 1 || owners["y"] != "a" {
		t.Fatalf("owners after the boot's release: %v, want only y on a", owners)
	}
}
