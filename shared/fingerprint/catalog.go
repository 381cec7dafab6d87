package fingerprint

import (
	"slices"
	"sync"
)

// family pairs an OS with the versions and browsers people actually run on
// it: Safari on Windows or Edge on Linux would itself stand out.
type family struct {
	os       string
	browsers []string
	versions [][3]uint32
}

// families is what the catalog is built from and what Parse accepts.
// Entries may be added freely; removing a browser from a family makes Parse
// reject fingerprints already stored with it. Only versions that really
// shipped, as of the sources below (checked against releases up to 2025):
//   - Windows: Microsoft's release information for Windows 10 (builds
//     19041-19045, versions 2004 to 22H2) and Windows 11 (22000 21H2,
//     22621 22H2, 22631 23H2, 26100 24H2, 26200 25H2), as "10.0.build".
//   - Mac OS: Apple's security releases (support.apple.com/100100) for
//     Ventura 13.0-13.7.8, Sonoma 14.0-14.8 and Sequoia 15.0-15.7.
//   - Linux: kernel.org's longterm series 5.15, 6.1, 6.6 and 6.12, and 6.8
//     (Ubuntu 24.04's kernel), each from .0 up to a stable release every
//     patch number below which was published (6.8 ended at 6.8.12).
var families = []family{
	{Windows, []string{Chrome, Edge, Firefox, Opera}, windowsBuilds(19041, 19042, 19043, 19044, 19045, 22000, 22621, 22631, 26100, 26200)},
	{MacOS, []string{Chrome, Safari, Firefox, Opera}, [][3]uint32{
		{13, 0, 0}, {13, 0, 1}, {13, 1, 0}, {13, 2, 0}, {13, 2, 1}, {13, 3, 0}, {13, 3, 1}, {13, 4, 0}, {13, 4, 1},
		{13, 5, 0}, {13, 5, 1}, {13, 5, 2}, {13, 6, 0}, {13, 6, 1}, {13, 6, 2}, {13, 6, 3}, {13, 6, 4}, {13, 6, 5},
		{13, 6, 6}, {13, 6, 7}, {13, 6, 8}, {13, 6, 9}, {13, 7, 0}, {13, 7, 1}, {13, 7, 2}, {13, 7, 3}, {13, 7, 4},
		{13, 7, 5}, {13, 7, 6}, {13, 7, 7}, {13, 7, 8},
		{14, 0, 0}, {14, 1, 0}, {14, 1, 1}, {14, 1, 2}, {14, 2, 0}, {14, 2, 1}, {14, 3, 0}, {14, 3, 1}, {14, 4, 0},
		{14, 4, 1}, {14, 5, 0}, {14, 6, 0}, {14, 6, 1}, {14, 7, 0}, {14, 7, 1}, {14, 7, 2}, {14, 7, 3}, {14, 7, 4},
		{14, 7, 5}, {14, 7, 6}, {14, 7, 7}, {14, 7, 8}, {14, 8, 0},
		{15, 0, 0}, {15, 0, 1}, {15, 1, 0}, {15, 1, 1}, {15, 2, 0}, {15, 3, 0}, {15, 3, 1}, {15, 3, 2}, {15, 4, 0},
		{15, 4, 1}, {15, 5, 0}, {15, 6, 0}, {15, 6, 1}, {15, 7, 0},
	}},
	{Linux, []string{Chrome, Firefox, Opera}, slices.Concat(
		kernelPatches(5, 15, 170), kernelPatches(6, 1, 120), kernelPatches(6, 6, 60),
		kernelPatches(6, 8, 12), kernelPatches(6, 12, 10),
	)},
}

func windowsBuilds(builds ...uint32) [][3]uint32 {
	v := make([][3]uint32, len(builds))
	for i, b := range builds {
		v[i] = [3]uint32{10, 0, b}
	}
	return v
}

// kernelPatches is major.minor.0 through major.minor.last.
func kernelPatches(major, minor, last uint32) [][3]uint32 {
	v := make([][3]uint32, 0, last+1)
	for p := range last + 1 {
		v = append(v, [3]uint32{major, minor, p})
	}
	return v
}

// built is the catalog and each entry's encoding, made on first use.
var built = sync.OnceValues(func() ([]Fingerprint, []string) {
	var list []Fingerprint
	for _, fam := range families {
		for _, v := range fam.versions {
			for _, b := range fam.browsers {
				list = append(list, Fingerprint{Browser: b, OS: fam.os, Version: v})
			}
		}
	}
	encoded := make([]string, len(list))
	for i, f := range list {
		encoded[i] = f.String()
	}
	return list, encoded
})

// Catalog is every fingerprint Pick chooses from, in a fixed order.
func Catalog() []Fingerprint {
	list, _ := built()
	return slices.Clone(list)
}

// guesses is how many random entries Pick tries before it lists the free
// ones: while most of the catalog is free, a guess almost always hits.
const guesses = 32

// Pick returns a uniformly random catalog entry whose encoding inUse
// rejects, or false when every entry is in use. intn(n) must return a
// random number in [0, n) (math/rand/v2's IntN; tests pass a seeded one).
// Each call costs at most guesses+len(Catalog()) inUse calls and allocates
// only when the catalog is nearly full.
func Pick(inUse func(encoded string) bool, intn func(n int) int) (Fingerprint, bool) {
	list, encoded := built()
	// A guess that hits a free entry is uniform over the free entries, and
	// so is the listing below: together they stay uniform.
	for range guesses {
		if i := intn(len(list)); !inUse(encoded[i]) {
			return list[i], true
		}
	}
	var free []int
	for i, e := range encoded {
		if !inUse(e) {
			free = append(free, i)
		}
	}
	if len(free) == 0 {
		return Fingerprint{}, false
	}
	return list[free[intn(len(free))]], true
}
