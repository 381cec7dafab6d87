// Package fingerprint gives every organization its own stable device
// fingerprint. WhatsApp reads identical fingerprints from one IP as
// automation and answers with LOGOUT, and a fingerprint that changes between
// restarts looks like a new device; so it is derived from the organization
// ID alone: the same on every start, different across organizations.
package fingerprint

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/store"
)

// Fingerprint is what the linked device tells WhatsApp about itself.
type Fingerprint struct {
	OS       string    // e.g. "Windows"; shown on the phone's linked devices list
	Version  [3]uint32 // OS version
	Browser  string    // e.g. "Chrome"
	Platform waCompanionReg.DeviceProps_PlatformType
	Pair     whatsmeow.PairClientType // the same browser, for pairing by phone code
}

type browser struct {
	name     string
	platform waCompanionReg.DeviceProps_PlatformType
	pair     whatsmeow.PairClientType
}

var (
	chrome  = browser{"Chrome", waCompanionReg.DeviceProps_CHROME, whatsmeow.PairClientChrome}
	firefox = browser{"Firefox", waCompanionReg.DeviceProps_FIREFOX, whatsmeow.PairClientFirefox}
	edge    = browser{"Edge", waCompanionReg.DeviceProps_EDGE, whatsmeow.PairClientEdge}
	safari  = browser{"Safari", waCompanionReg.DeviceProps_SAFARI, whatsmeow.PairClientSafari}
)

// osFamily pairs an OS with the versions and browsers people actually run on
// it: Safari on Windows would itself stand out.
type osFamily struct {
	name     string
	versions [][3]uint32
	browsers []browser
}

// families only holds names WhatsApp accepts in a "Browser (OS)" pairing
// display name. Treat the table as frozen: any edit, appending included,
// moves existing organizations to another fingerprint, and the login payload
// of an already linked device would change under it.
var families = []osFamily{
	{"Windows", [][3]uint32{{10, 0, 19045}, {10, 0, 22621}, {10, 0, 22631}, {10, 0, 26100}}, []browser{chrome, edge, firefox}},
	{"Mac OS", [][3]uint32{{13, 6, 9}, {14, 6, 1}, {14, 7, 2}, {15, 2, 0}}, []browser{chrome, safari, firefox}},
	{"Linux", [][3]uint32{{6, 1, 0}, {6, 5, 0}, {6, 8, 0}}, []browser{chrome, firefox}},
}

// For returns the fingerprint of an organization.
func For(orgID string) Fingerprint {
	sum := sha256.Sum256([]byte("wa-sidecar device fingerprint\x00" + orgID))
	pick := func(i, n int) int { return int(binary.BigEndian.Uint64(sum[i*8:]) % uint64(n)) }
	fam := families[pick(0, len(families))]
	b := fam.browsers[pick(1, len(fam.browsers))]
	return Fingerprint{
		OS:       fam.name,
		Version:  fam.versions[pick(2, len(fam.versions))],
		Browser:  b.name,
		Platform: b.platform,
		Pair:     b.pair,
	}
}

// Apply writes the fingerprint into whatsmeow's process-global device
// properties. Call it before whatsmeow.NewClient; it is per organization
// only because each organization has its own process.
func (f Fingerprint) Apply() {
	store.SetOSInfo(f.OS, f.Version)
	store.DeviceProps.PlatformType = f.Platform.Enum()
}

// DisplayName is the "Browser (OS)" form WhatsApp expects when pairing by
// phone code; it matches the QR registration's device properties.
func (f Fingerprint) DisplayName() string {
	return fmt.Sprintf("%s (%s)", f.Browser, f.OS)
}

// String is for logs.
func (f Fingerprint) String() string {
	return fmt.Sprintf("%s %d.%d.%d on %s", f.Browser, f.Version[0], f.Version[1], f.Version[2], f.OS)
}
