package fingerprint

import (
	"fmt"
	"testing"

	"go.mau.fi/whatsmeow/store"
)

func TestStablePerOrganization(t *testing.T) {
	for _, id := range []string{"2", "68e3f605f2d61bb5556b7b20", "org_A-1"} {
		if a, b := For(id), For(id); a != b {
			t.Errorf("%s: %v then %v", id, a, b)
		}
	}
}

func TestSpreadAcrossOrganizations(t *testing.T) {
	seen := map[Fingerprint]int{}
	oses := map[string]bool{}
	for i := range 50 {
		f := For(fmt.Sprint(i))
		seen[f]++
		oses[f.OS] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 organizations share %d fingerprints, want at least 10: %v", len(seen), seen)
	}
	if len(oses) < 3 {
		t.Errorf("50 organizations use %d OS families, want all 3", len(oses))
	}
}

func TestCombinationsArePlausible(t *testing.T) {
	for i := range 500 {
		f := For(fmt.Sprint("org", i))
		if f.Browser == "Safari" && f.OS != "Mac OS" {
			t.Errorf("%v: Safari outside Mac OS", f)
		}
		if f.Browser == "Edge" && f.OS == "Linux" {
			t.Errorf("%v: Edge on Linux", f)
		}
	}
}

func TestApplySetsWhatsmeowGlobals(t *testing.T) {
	f := For("2")
	f.Apply()
	if got := store.DeviceProps.GetOs(); got != f.OS {
		t.Errorf("DeviceProps.Os = %q, want %q", got, f.OS)
	}
	if got := store.DeviceProps.GetPlatformType(); got != f.Platform {
		t.Errorf("PlatformType = %v, want %v", got, f.Platform)
	}
	want := fmt.Sprintf("%d.%d.%d", f.Version[0], f.Version[1], f.Version[2])
	if got := store.BaseClientPayload.GetUserAgent().GetOsVersion(); got != want {
		t.Errorf("OsVersion = %q, want %q", got, want)
	}
	if got := f.DisplayName(); got != f.Browser+" ("+f.OS+")" {
		t.Errorf("DisplayName = %q", got)
	}
}

// TestFrozen catches an edit of the tables or the hash input, which would
// silently move every existing organization to another fingerprint.
func TestFrozen(t *testing.T) {
	want := map[string]string{
		"2":                        "Edge 10.0.19045 on Windows",
		"68e3f605f2d61bb5556b7b20": "Safari 15.2.0 on Mac OS",
	}
	for id, w := range want {
		if got := For(id).String(); got != w {
			t.Errorf("For(%q) = %q, want %q", id, got, w)
		}
	}
}
