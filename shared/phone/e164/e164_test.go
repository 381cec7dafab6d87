package e164

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, ok := range []string{"573001234567", "1234567", "123456789012345"} {
		if err := Validate(ok); err != nil {
			t.Errorf("Validate(%q) = %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"": "empty", "123456": "7 to 15", "1234567890123456": "7 to 15", "0573001234": "starts with 0",
		"+573001234567": "digits only", "57 300 1234567": "digits only", "57300123456٣": "digits only",
	} {
		if err := Validate(bad); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Validate(%q) = %v, want it to say %q", bad, err, why)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"573001234567", "+57", "0123456", "١٢٣٤٥٦٧", "1234567\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Validate(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(s, "\n") {
				t.Fatalf("error for %q is not one line: %q", s, err)
			}
			return
		}
		if len(s) < 7 || len(s) > 15 || s[0] == '0' || strings.Trim(s, "0123456789") != "" {
			t.Fatalf("accepted %q", s)
		}
	})
}
