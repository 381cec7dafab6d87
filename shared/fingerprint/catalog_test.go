package fingerprint

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// seeded is a deterministic intn for Pick.
func seeded(seed uint64) func(int) int { return rand.New(rand.NewPCG(seed, 1)).IntN }

func TestCatalogSizeAndDistinct(t *testing.T) {
	cat := Catalog()
	if len(cat) < 1200 {
		t.Errorf("catalog has %d entries, want at least 1200", len(cat))
	}
	seen := map[Fingerprint]bool{}
	perOS := map[string]int{}
	for _, f := range cat {
		if seen[f] {
			t.Errorf("%v appears twice", f)
		}
		seen[f] = true
		perOS[f.OS]++
	}
	if len(perOS) != 3 {
		t.Errorf("catalog OSes: %v, want Windows, Mac OS and Linux", perOS)
	}
	t.Logf("catalog: %d entries, %v", len(cat), perOS)
}

func TestCatalogIsDeterministic(t *testing.T) {
	a, b := Catalog(), Catalog()
	if !slices.Equal(a, b) {
		t.Fatal("two calls return different catalogs")
	}
	a[0].Browser = "changed"
	if Catalog()[0] == a[0] {
		t.Fatal("a caller's edit reached the catalog")
	}
}

// plausible holds what each OS's versions look like: a typo in the tables,
// such as 61.0.5 for 6.1.5, would otherwise ship as a fingerprint.
func plausible(f Fingerprint) bool {
	v := f.Version
	switch f.OS {
	case Windows:
		return v[0] == 10 && v[1] == 0 && v[2] >= 19041 && v[2] <= 26200
	case MacOS:
		return v[0] >= 13 && v[0] <= 15 && v[1] <= 8 && v[2] <= 9
	case Linux:
		return (v[0] == 5 && v[1] == 15 || v[0] == 6 && slices.Contains([]uint32{1, 6, 8, 12}, v[1])) && v[2] <= 200
	}
	return false
}

func TestCatalogEntriesArePlausibleAndParse(t *testing.T) {
	for _, f := range Catalog() {
		if !plausible(f) {
			t.Errorf("%v: implausible version for %s", f, f.OS)
		}
		if f.Browser == Safari && f.OS != MacOS || f.Browser == Edge && f.OS == Linux {
			t.Errorf("%v: implausible browser for %s", f, f.OS)
		}
		if got, err := Parse(f.String()); err != nil || got != f {
			t.Errorf("Parse(%q) = %v, %v", f.String(), got, err)
		}
	}
}

// TestEveryPairIsInTheCatalog: Parse accepts exactly the pairs the catalog
// offers, none that Pick could never return.
func TestEveryPairIsInTheCatalog(t *testing.T) {
	pairs := map[[2]string]bool{}
	for _, f := range Catalog() {
		pairs[[2]string{f.Browser, f.OS}] = true
	}
	for _, b := range browsers() {
		for _, os := range oses() {
			_, err := Parse(b + "/" + os + "/1.2.3")
			if accepted := err == nil; accepted != pairs[[2]string{b, os}] {
				t.Errorf("%s on %s: Parse accepts %v, catalog has %v", b, os, accepted, pairs[[2]string{b, os}])
			}
		}
	}
}

// inUseSet is the supervisor's side of Pick: the encodings it stored.
type inUseSet map[string]bool

func (s inUseSet) inUse(encoded string) bool { return s[encoded] }

func TestPickSpreads(t *testing.T) {
	used := inUseSet{}
	perOS := map[string]int{}
	intn := seeded(1)
	for i := range 1000 {
		f, ok := Pick(used.inUse, intn)
		if !ok {
			t.Fatalf("pick %d: catalog exhausted", i)
		}
		if used[f.String()] {
			t.Fatalf("pick %d: %v is already in use", i, f)
		}
		used[f.String()] = true
		perOS[f.OS]++
	}
	if len(perOS) != 3 {
		t.Errorf("1000 picks used %v, want all three OSes", perOS)
	}
}

func TestPickSkipsInUse(t *testing.T) {
	used := inUseSet{}
	for i, e := range Catalog() {
		if i%2 == 0 {
			used[e.String()] = true
		}
	}
	intn := seeded(2)
	for range 2000 {
		f, ok := Pick(used.inUse, intn)
		if !ok || used[f.String()] {
			t.Fatalf("Pick = %v, %v with half the catalog in use", f, ok)
		}
	}
}

// TestPickUniformWhenNearlyFull: with 1 entry in 30 free, most picks list
// the free entries; every free entry must still come up about as often.
func TestPickUniformWhenNearlyFull(t *testing.T) {
	used := inUseSet{}
	var free []string
	for i, e := range Catalog() {
		if i%30 == 0 {
			free = append(free, e.String())
		} else {
			used[e.String()] = true
		}
	}
	const perEntry = 200
	counts := map[string]int{}
	intn := seeded(3)
	for range perEntry * len(free) {
		f, ok := Pick(used.inUse, intn)
		if !ok || used[f.String()] {
			t.Fatalf("Pick = %v, %v", f, ok)
		}
		counts[f.String()]++
	}
	for _, e := range free {
		if n := counts[e]; n < perEntry/2 || n > perEntry*3/2 {
			t.Errorf("%s picked %d times, want about %d", e, n, perEntry)
		}
	}
}

func TestPickExhausted(t *testing.T) {
	used := inUseSet{}
	cat := Catalog()
	for _, e := range cat[1:] {
		used[e.String()] = true
	}
	// The one free entry is found whatever intn says.
	zero := func(int) int { return 0 }
	last := func(n int) int { return n - 1 }
	for _, intn := range []func(int) int{zero, last, seeded(4)} {
		if f, ok := Pick(used.inUse, intn); !ok || f != cat[0] {
			t.Fatalf("Pick = %v, %v; want the only free entry %v", f, ok, cat[0])
		}
	}
	used[cat[0].String()] = true
	calls := 0
	count := func(e string) bool { calls++; return used[e] }
	if f, ok := Pick(count, seeded(5)); ok {
		t.Fatalf("Pick = %v with every entry in use", f)
	}
	if calls > guesses+len(cat) {
		t.Errorf("a full catalog cost %d inUse calls, want at most %d", calls, guesses+len(cat))
	}
	if allocs := testing.AllocsPerRun(100, func() { Pick(used.inUse, zero) }); allocs != 0 {
		t.Errorf("Pick on a full catalog allocates %v times", allocs)
	}
}

// BenchmarkPickNearlyFull is the supervisor registering an organization on a
// host whose registered organizations use all but one entry.
func BenchmarkPickNearlyFull(b *testing.B) {
	used := inUseSet{}
	for _, e := range Catalog()[1:] {
		used[e.String()] = true
	}
	intn := seeded(6)
	for b.Loop() {
		Pick(used.inUse, intn)
	}
}
