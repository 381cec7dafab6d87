package fingerprint

import (
	"crypto/sha256"
	"encoding/binary"
)

// legacyFamilies is the table Legacy derives from. Treat it as frozen: any
// edit, appending included, moves organizations linked before fingerprints
// were stored to another fingerprint, and the login payload of an already
// linked device would change under it.
var legacyFamilies = []family{
	{Windows, []string{Chrome, Edge, Firefox}, [][3]uint32{{10, 0, 19045}, {10, 0, 22621}, {10, 0, 22631}, {10, 0, 26100}}},
	{MacOS, []string{Chrome, Safari, Firefox}, [][3]uint32{{13, 6, 9}, {14, 6, 1}, {14, 7, 2}, {15, 2, 0}}},
	{Linux, []string{Chrome, Firefox}, [][3]uint32{{6, 1, 0}, {6, 5, 0}, {6, 8, 0}}},
}

// Legacy is the fingerprint an organization had before the supervisor
// stored one: derived from its ID alone, so stable, but out of about thirty
// combinations, so often shared with another organization of the host.
// Organizations linked back then keep it, because changing it would change
// their device's login payload.
func Legacy(orgID string) Fingerprint {
	sum := sha256.Sum256([]byte("wa-sidecar device fingerprint\x00" + orgID))
	pick := func(i, n int) int { return int(binary.BigEndian.Uint64(sum[i*8:]) % uint64(n)) }
	fam := legacyFamilies[pick(0, len(legacyFamilies))]
	browser := fam.browsers[pick(1, len(fam.browsers))]
	return Fingerprint{Browser: browser, OS: fam.os, Version: fam.versions[pick(2, len(fam.versions))]}
}
