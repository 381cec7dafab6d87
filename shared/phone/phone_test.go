package phone

import (
	"strings"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/phone/e164"
)

func TestParse(t *testing.T) {
	for _, c := range []struct{ in, region, want string }{
		{"573001234567", "", "573001234567"},
		{"+57 300 123 4567", "", "573001234567"},
		{"+57 (300) 123-4567", "", "573001234567"},
		{"57 300 123 4567", "", "573001234567"},
		{"  573001234567\n", "", "573001234567"},
		{"+1 202 555 0123", "", "12025550123"},
		{"+57.300.123.4567", "", "573001234567"},
		{"+٥٧٣٠٠١٢٣٤٥٦٧", "", "573001234567"},
		// With a default country: the national spellings, and the
		// international ones unchanged.
		{"(300) 123-4567", "CO", "573001234567"},
		{"300 123 4567", "CO", "573001234567"},
		{"3001234567", "CO", "573001234567"},
		{"573001234567", "CO", "573001234567"},
		{"+57 300 123 4567", "CO", "573001234567"},
		{"+57 300 123 4567", "US", "573001234567"},
		{"573001234567", "US", "573001234567"},
		{"(202) 555-0123", "US", "12025550123"},
		// Not a number of CO, but a German mobile country code first.
		{"4915123456789", "CO", "4915123456789"},
		{"+49 1512 3456789", "CO", "4915123456789"},
		{"4915123456789", "", "4915123456789"},
		{"57 300 123 4567", "CO", "573001234567"},
		{"+57.300.123.4567", "CO", "573001234567"},
	} {
		got, err := Parse(c.in, c.region)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q, %q) = %q, %v; want %q", c.in, c.region, got, err, c.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ in, region, want string }{
		{"", "", `phone number is empty`},
		{"  ", "CO", `phone number is empty`},
		{"(300) 123-4567", "", `phone number "(300) 123-4567" is too short for +30 (GR); with no default_country set, a number is read country code first`},
		{"3001234567", "", `phone number "3001234567" is too short for +30 (GR); with no default_country set, a number is read country code first`},
		{"abc", "", `phone number "abc" has letters: write it in digits (spaces, dashes, dots and parentheses may stay)`},
		{"57300abc0003", "CO", `phone number "57300abc0003" has letters: write it in digits (spaces, dashes, dots and parentheses may stay)`},
		{"--", "", `phone number "--" is not a phone number; with no default_country set, a number is read country code first`},
		{"0573001234", "", `phone number "0573001234" has no valid country code; with no default_country set, a number is read country code first`},
		{"+999 123", "CO", `phone number "+999 123" has no valid country code`},
		{"+57 300 123 45", "", `phone number "+57 300 123 45" is not a valid number for +57 (CO)`},
		{"+57300123456789012", "", `phone number "+57300123456789012" is too long for +57 (CO)`},
		{"57300123456789", "CO", `phone number "57300123456789" is too long for +57 (CO); read country code first, it is not valid either`},
		{"2025550123", "CO", `phone number "2025550123" is not a valid number for +57 (CO); read country code first, it is not valid either`},
		{"1234567", "CO", `phone number "1234567" is a local number of +57 (CO): write it with its area code; read country code first, it is not valid either`},
		{"300 123 4567 #12", "CO", `phone number "300 123 4567 #12" has an extension, which WhatsApp cannot dial; read country code first, it is not valid either`},
		{"+57 300 123 4567 #12", "", `phone number "+57 300 123 4567 #12" has an extension, which WhatsApp cannot dial`},
		{"+", "", `phone number "+" is not a phone number`},
		{strings.Repeat("5", 70), "", `phone number "55555555555555555555555555555555555555555555555... is too long: 70 characters, where a phone number has at most 64 even with spaces and dashes`},
	} {
		got, err := Parse(c.in, c.region)
		if err == nil || err.Error() != c.want {
			t.Errorf("Parse(%q, %q) = %q, %v\nwant error %s", c.in, c.region, got, err, c.want)
		}
	}
}

func TestCheckRegion(t *testing.T) {
	for _, ok := range []string{"", "CO", "US", "BR"} {
		if err := CheckRegion(ok); err != nil {
			t.Errorf("CheckRegion(%q) = %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"co":       `"co": write the region in capitals, "CO"`,
		"XX":       `"XX" is not an ISO 3166 region the phone-number library knows (e.g. "CO", "US", "MX")`,
		"Colombia": `"Colombia" is not an ISO 3166 region the phone-number library knows (e.g. "CO", "US", "MX")`,
	} {
		if err := CheckRegion(bad); err == nil || err.Error() != want {
			t.Errorf("CheckRegion(%q) = %v, want %s", bad, err, want)
		}
	}
}

// Whatever is written, Parse answers digits the worker accepts, which
// read back as themselves, or one line naming the input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"573001234567", "+57 300 123 4567", "(300) 123-4567", "+57", "0123456", "١٢٣٤٥٦٧", "1234567\n", "+1 202 555 0123 ext. 4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, region := range []string{"", "CO", "US"} {
			d, err := Parse(s, region)
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error for %q is not one line: %q", s, err)
				}
				continue
			}
			if err := e164.Validate(d); err != nil {
				t.Fatalf("Parse(%q, %q) = %q, which the worker refuses: %v", s, region, d, err)
			}
			if again, err := Parse(d, ""); again != d {
				t.Fatalf("Parse(%q, %q) = %q, which reads back as %q, %v", s, region, d, again, err)
			}
		}
	})
}
