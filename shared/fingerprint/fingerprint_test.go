package fingerprint

import (
	"strings"
	"testing"
)

func TestParseRoundTrips(t *testing.T) {
	for _, s := range []string{"Chrome/Windows/10.0.19045", "Safari/Mac OS/15.2.0", "Opera/Linux/6.6.0", "Firefox/Linux/6.5.0", "Edge/Windows/0.0.4294967295"} {
		f, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		if got := f.String(); got != s {
			t.Errorf("Parse(%q).String() = %q", s, got)
		}
	}
	want := Fingerprint{Browser: Safari, OS: MacOS, Version: [3]uint32{14, 7, 2}}
	if got, err := Parse("Safari/Mac OS/14.7.2"); err != nil || got != want {
		t.Errorf("Parse = %v, %v; want %v", got, err, want)
	}
}

func TestParseNamesWhatIsWrong(t *testing.T) {
	cases := map[string]string{
		"":                               "want Browser/OS/major.minor.patch",
		"Chrome/Windows":                 "want Browser/OS/major.minor.patch",
		"Chrome/Windows/10.0.1/x":        "want Browser/OS/major.minor.patch",
		"Chrome (Windows)":               "want Browser/OS/major.minor.patch",
		"IE/Windows/10.0.19045":          `unknown browser "IE"`,
		"chrome/Windows/10.0.19045":      `unknown browser "chrome"`,
		"Chrome/MacOS/14.7.2":            `unknown OS "MacOS"`,
		"Chrome/Android/14.0.0":          `unknown OS "Android"`,
		"Safari/Windows/10.0.19045":      "Safari does not go with Windows",
		"Safari/Linux/6.1.0":             "Safari does not go with Linux",
		"Edge/Linux/6.1.0":               "Edge does not go with Linux",
		"Chrome/Windows/10.0":            "is not major.minor.patch",
		"Chrome/Windows/10.0.":           `"" is not a decimal number`,
		"Chrome/Windows/10.0.019045":     `"019045" is not a decimal number`,
		"Chrome/Windows/+10.0.19045":     `"+10" is not a decimal number`,
		"Chrome/Windows/10.0.4294967296": `"4294967296" is not a decimal number`,
		"Chrome/Windows/10.0. 19045":     `" 19045" is not a decimal number`,
	}
	for s, want := range cases {
		_, err := Parse(s)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", s)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "fingerprint ") {
			t.Errorf("Parse(%q) = %q, want it to say %q", s, err, want)
		}
	}
}

func TestDisplayName(t *testing.T) {
	f := Fingerprint{Browser: Opera, OS: MacOS, Version: [3]uint32{15, 7, 0}}
	if got := f.DisplayName(); got != "Opera (Mac OS)" {
		t.Errorf("DisplayName = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"Chrome/Windows/10.0.19045", "Safari/Mac OS/15.2.0", "Edge/Linux/6.1.0", "Opera/Linux/6.6.01", "//0.0.0", "a/b/c/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := Parse(s)
		if err != nil {
			return
		}
		if got := fp.String(); got != s {
			t.Fatalf("Parse(%q) accepted %v, which encodes as %q", s, fp, got)
		}
		if again, err := Parse(fp.String()); err != nil || again != fp {
			t.Fatalf("Parse(%q) = %v, %v; want %v", fp.String(), again, err, fp)
		}
	})
}
