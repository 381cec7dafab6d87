package fingerprint

import (
	"fmt"
	"strings"
	"testing"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/store"

	"github.com/wa-sidecar/wa-sidecar/shared/fingerprint"
)

func TestApplySetsWhatsmeowGlobals(t *testing.T) {
	for _, s := range []string{"Opera/Linux/6.6.30", "Safari/Mac OS/14.7.2", "Edge/Windows/10.0.26100"} {
		f, err := fingerprint.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		Apply(f)
		if got := store.DeviceProps.GetOs(); got != f.OS {
			t.Errorf("%s: DeviceProps.Os = %q, want %q", s, got, f.OS)
		}
		if got := store.DeviceProps.GetPlatformType(); got != Platform(f) || got.String() != strings.ToUpper(f.Browser) {
			t.Errorf("%s: PlatformType = %v", s, got)
		}
		want := fmt.Sprintf("%d.%d.%d", f.Version[0], f.Version[1], f.Version[2])
		if got := store.BaseClientPayload.GetUserAgent().GetOsVersion(); got != want {
			t.Errorf("%s: OsVersion = %q, want %q", s, got, want)
		}
	}
}

// pairClientNames is whatsmeow's PairClientType order (pair-code.go), which
// has no String method.
var pairClientNames = map[whatsmeow.PairClientType]string{
	whatsmeow.PairClientChrome:  "CHROME",
	whatsmeow.PairClientEdge:    "EDGE",
	whatsmeow.PairClientFirefox: "FIREFOX",
	whatsmeow.PairClientOpera:   "OPERA",
	whatsmeow.PairClientSafari:  "SAFARI",
}

// TestEveryBrowserMaps covers the catalog and the legacy fingerprints: each
// browser registers and pairs as itself, never as UNKNOWN.
func TestEveryBrowserMaps(t *testing.T) {
	all := fingerprint.Catalog()
	for i := range 1000 {
		all = append(all, fingerprint.Legacy(fmt.Sprint(i)))
	}
	for _, f := range all {
		platform, pair := Platform(f), PairClient(f)
		if platform == waCompanionReg.DeviceProps_UNKNOWN || pair == whatsmeow.PairClientUnknown {
			t.Fatalf("%v: platform %v, pair client %d", f, platform, pair)
		}
		if name := strings.ToUpper(f.Browser); platform.String() != name || pairClientNames[pair] != name {
			t.Fatalf("%v: platform %v, pair client %d (%s)", f, platform, pair, pairClientNames[pair])
		}
	}
}
