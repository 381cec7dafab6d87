package fleet

import (
	"sync"

	"github.com/wa-sidecar/wa-sidecar/shared/fingerprint"
)

// fingerprints keeps the device fingerprints of the registered
// organizations distinct: each is chosen once and never handed to another
// organization while its owner is registered.
type fingerprints struct {
	mu    sync.Mutex
	owner map[string]string // encoded fingerprint -> organization
	of    map[string]string // organization -> encoded fingerprint
	intn  func(n int) int
}

func newFingerprints(intn func(n int) int) *fingerprints {
	return &fingerprints{owner: map[string]string{}, of: map[string]string{}, intn: intn}
}

// use records that org holds fp (loaded, or committed).
func (f *fingerprints) use(org, fp string) {
	if fp == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.of[org]; ok && old != fp && f.owner[old] == org {
		delete(f.owner, old)
	}
	f.of[org] = fp
	if _, taken := f.owner[fp]; !taken {
		f.owner[fp] = org
	}
}

// free gives org's fingerprint back (the organization was deleted).
func (f *fingerprints) free(org string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fp, ok := f.of[org]; ok {
		if f.owner[fp] == org {
			delete(f.owner, fp)
		}
		delete(f.of, org)
	}
}

// forLegacy is the fingerprint of an organization linked before
// fingerprints were stored: its device was registered with the one derived
// from its ID, and changing it would change its login payload.
func (f *fingerprints) forLegacy(org string) string {
	fp := fingerprint.Legacy(org).String()
	f.use(org, fp)
	return fp
}

// pick chooses an unused fingerprint for org and reserves it; org keeps the
// same reservation until free. full is true when every catalog entry is
// taken and a shared one had to be given.
func (f *fingerprints) pick(org string) (fp string, full bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fp, ok := f.of[org]; ok {
		return fp, false
	}
	chosen, ok := fingerprint.Pick(func(e string) bool { _, taken := f.owner[e]; return taken }, f.intn)
	if !ok {
		catalog := fingerprint.Catalog()
		chosen, full = catalog[f.intn(len(catalog))], true
	}
	fp = chosen.String()
	f.of[org] = fp
	if _, taken := f.owner[fp]; !taken {
		f.owner[fp] = org
	}
	return fp, full
}
