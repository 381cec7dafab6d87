package orgid

import (
	"path/filepath"
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

// An ID that passes is a safe, single path component that can never be
// mistaken for an archive; the error for one that does not is one line.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"2", "68e3f605f2d61bb5556b7b20", "../etc", "a_corrupted_1", "", "a/b", ".", "é", strings.Repeat("x", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := Validate(id)
		if err != nil {
			if strings.Contains(err.Error(), "\n") || len(err.Error()) > 300 {
				t.Fatalf("error for %q is not one short line: %q", id, err)
			}
			return
		}
		if filepath.Base(id) != id || filepath.Clean(id) != id || id == "." || id == ".." ||
			strings.ContainsAny(id, "/\\.\x00") || len(id) > 64 || archiveLike.MatchString(id) {
			t.Fatalf("unsafe id %q accepted", id)
		}
	})
}
