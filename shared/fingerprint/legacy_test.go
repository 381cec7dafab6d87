package fingerprint

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

// TestLegacyGolden pins Legacy to what worker/fingerprint.For returned
// before fingerprints were stored, recorded from that code: a difference
// would change the login payload of every device linked back then.
func TestLegacyGolden(t *testing.T) {
	golden := []struct {
		orgID string
		want  Fingerprint
	}{
		{"2", Fingerprint{Browser: "Edge", OS: "Windows", Version: [3]uint32{10, 0, 19045}}},
		{"68e3f605f2d61bb5556b7b20", Fingerprint{Browser: "Safari", OS: "Mac OS", Version: [3]uint32{15, 2, 0}}},
		{"org_A-1", Fingerprint{Browser: "Chrome", OS: "Linux", Version: [3]uint32{6, 1, 0}}},
		{"", Fingerprint{Browser: "Edge", OS: "Windows", Version: [3]uint32{10, 0, 26100}}},
		{"1", Fingerprint{Browser: "Safari", OS: "Mac OS", Version: [3]uint32{14, 7, 2}}},
		{"org0", Fingerprint{Browser: "Firefox", OS: "Windows", Version: [3]uint32{10, 0, 22621}}},
		{"68e3f605f2d61bb5556b7b21", Fingerprint{Browser: "Firefox", OS: "Mac OS", Version: [3]uint32{13, 6, 9}}},
		{"64b7f0e2a1c3d4e5f6a7b8c9", Fingerprint{Browser: "Firefox", OS: "Mac OS", Version: [3]uint32{14, 6, 1}}},
		{"acme", Fingerprint{Browser: "Firefox", OS: "Mac OS", Version: [3]uint32{14, 7, 2}}},
		{"Acme Corp", Fingerprint{Browser: "Firefox", OS: "Linux", Version: [3]uint32{6, 8, 0}}},
		{"ü-org", Fingerprint{Browser: "Chrome", OS: "Linux", Version: [3]uint32{6, 8, 0}}},
		{"org_B-2", Fingerprint{Browser: "Safari", OS: "Mac OS", Version: [3]uint32{14, 7, 2}}},
		{"0", Fingerprint{Browser: "Edge", OS: "Windows", Version: [3]uint32{10, 0, 22631}}},
		{"3", Fingerprint{Browser: "Firefox", OS: "Windows", Version: [3]uint32{10, 0, 22621}}},
		{"4", Fingerprint{Browser: "Chrome", OS: "Linux", Version: [3]uint32{6, 8, 0}}},
		{"5", Fingerprint{Browser: "Firefox", OS: "Linux", Version: [3]uint32{6, 1, 0}}},
		{"6", Fingerprint{Browser: "Firefox", OS: "Linux", Version: [3]uint32{6, 1, 0}}},
		{"7", Fingerprint{Browser: "Firefox", OS: "Mac OS", Version: [3]uint32{14, 7, 2}}},
		{"8", Fingerprint{Browser: "Edge", OS: "Windows", Version: [3]uint32{10, 0, 19045}}},
		{"9", Fingerprint{Browser: "Firefox", OS: "Mac OS", Version: [3]uint32{13, 6, 9}}},
		{"10", Fingerprint{Browser: "Firefox", OS: "Windows", Version: [3]uint32{10, 0, 22631}}},
		{"11", Fingerprint{Browser: "Firefox", OS: "Mac OS", Version: [3]uint32{15, 2, 0}}},
		{"12", Fingerprint{Browser: "Edge", OS: "Windows", Version: [3]uint32{10, 0, 22621}}},
		{"13", Fingerprint{Browser: "Firefox", OS: "Mac OS", Version: [3]uint32{13, 6, 9}}},
		{"14", Fingerprint{Browser: "Safari", OS: "Mac OS", Version: [3]uint32{15, 2, 0}}},
		{"15", Fingerprint{Browser: "Chrome", OS: "Windows", Version: [3]uint32{10, 0, 19045}}},
	}
	for _, g := range golden {
		if got := Legacy(g.orgID); got != g.want {
			t.Errorf("Legacy(%q) = %v, want %v", g.orgID, got, g.want)
		}
	}
}

// TestLegacyDigest covers many more IDs than the golden table: the digest of
// "0" to "9999" was recorded from the old For in this same encoding.
func TestLegacyDigest(t *testing.T) {
	const want = "3d4714ccff49589bf1c3de421c91a13a67b4f7fba4f2f8cb2041708cfea3feba"
	h := sha256.New()
	for i := range 10000 {
		fmt.Fprintln(h, Legacy(fmt.Sprint(i)))
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != want {
		t.Errorf("digest of Legacy over 0..9999 = %s, want %s", got, want)
	}
}

func TestLegacyParses(t *testing.T) {
	for i := range 10000 {
		f := Legacy(fmt.Sprint("org-", i))
		if got, err := Parse(f.String()); err != nil || got != f {
			t.Fatalf("Legacy %v: Parse(%q) = %v, %v", f, f.String(), got, err)
		}
	}
}
