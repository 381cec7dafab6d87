package proxy

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, ok := range []string{"", "socks5://u:p@10.0.0.1:1080", "http://127.0.0.1:3128", "https://proxy.example:443", "socks5://[::1]:1080"} {
		if err := Validate(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"ftp://h:21":                        `scheme "ftp"`,
		"socks5://u:s3cret@host":            "needs a host and a port",
		"http://h:80/path":                  "path or a query",
		"socks4://h:1":                      `scheme "socks4"`,
		"http://u:s3cret@h:1/x":             "path or a query",
		"socks5:alice:s3cret@10.0.0.1:1080": "not a proxy URL",
		"socks5:/alice:s3cret@10.0.0.1:1":   "not a proxy URL",
		"::not a url":                       "not a proxy URL",
		"socks5://user:s3cret@:1080":        "needs a host and a port",
	} {
		err := Validate(bad)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v, want it to say %q without the password", bad, err, want)
		}
	}
}

func TestEgressAndRedact(t *testing.T) {
	for in, want := range map[string][2]string{
		"":                                 {Direct, ""},
		"socks5://alice:s3cret@h:1080":     {"socks5://h:1080", "socks5://alice:***@h:1080"},
		"http://h:3128":                    {"http://h:3128", "http://h:3128"},
		"https://bob@h:443":                {"https://h:443", "https://bob@h:443"},
		"socks5://u:pw@Proxy.Example:1080": {"socks5://proxy.example:1080", "socks5://u:***@Proxy.Example:1080"},
		"socks5:alice:s3cret@h:1":          {"invalid", "(an unparsable proxy URL)"},
	} {
		if got := Egress(in); got != want[0] {
			t.Errorf("Egress(%q) = %q, want %q", in, got, want[0])
		}
		if got := Redact(in); got != want[1] {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want[1])
		}
	}
}

func TestScrub(t *testing.T) {
	u := "socks5://alice:p%40ss+w0rd@h:1080"
	for _, text := range []string{
		"dial socks5://alice:p%40ss+w0rd@h:1080: refused",
		"proxy auth alice:p@ss+w0rd failed",
		"user alice password p@ss+w0rd",
	} {
		got := Scrub(text, u)
		if strings.Contains(got, "p@ss") || strings.Contains(got, "p%40ss") || !strings.Contains(got, "***") {
			t.Errorf("Scrub(%q) = %q", text, got)
		}
	}
	if got := Scrub("no secret here", "http://h:1"); got != "no secret here" {
		t.Errorf("without credentials: %q", got)
	}
}
