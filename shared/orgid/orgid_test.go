package orgid

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := []string{"2", "68e3f605f2d61bb5556b7b20", "a_b-C", "shop_corrupted", "x_corrupted_y", strings.Repeat("x", 64)}
	for _, id := range good {
		if err := Validate(id); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", id, err)
		}
	}
	bad := []string{"", "..", "../etc", "a/b", "a b", "é", strings.Repeat("x", 65), "a\x00", "2_corrupted_1.x", "2_corrupted_1700000000000", "a_loggedout_1"}
	for _, id := range bad {
		if err := Validate(id); err == nil {
			t.Errorf("Validate(%q) = nil, want error", id)
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add("2")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, id string) {
		if Validate(id) == nil && strings.ContainsAny(id, "/\\.\x00") {
			t.Fatalf("accepted %q", id)
		}
	})
}
