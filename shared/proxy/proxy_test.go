package proxy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, ok := range []string{
		"", "socks5://u:p@10.0.0.1:1080", "http://127.0.0.1:3128", "https://proxy.example:443", "socks5://[::1]:1080",
		"socks5://h:1", "socks5://h:65535", "socks5://u:p@127.0.0.1:01080",
		"http://" + strings.Repeat("a", 63) + ".example:80",
	} {
		if err := Validate(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	long := strings.Repeat(strings.Repeat("a", 60)+".", 5) + "com" // 308 characters
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
		// Ports and hosts that no proxy can have: refused when given,
		// not at every start of a crash-looping organization.
		"socks5://u:s3cret@h:99999":                           `port "99999" is not a number from 1 to 65535`,
		"socks5://u:s3cret@h:0":                               `port "0" is not a number from 1 to 65535`,
		"socks5://u:s3cret@h:70000":                           `port "70000" is not a number from 1 to 65535`,
		"http://u:s3cret@[::1]:70000":                         `port "70000" is not a number from 1 to 65535`,
		"socks5://u:s3cret@" + long + ":1080":                 "host name is 308 characters long: at most 253",
		"socks5://u:s3cret@" + strings.Repeat("b", 64) + ":1": "host name has a label of 64 characters: at most 63",
		"socks5://u:s3cret@a..b:1":                            "empty label",
	} {
		err := Validate(bad)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v, want it to say %q without the password", bad, err, want)
		}
	}
}

// The egress key is the proxy's endpoint: its address and numeric port,
// whatever the scheme, the credentials or the spelling.
func TestEgressKey(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "localhost":
			// Resolvers list ::1 first on many hosts: the key must not
			// depend on their order.
			return []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, nil
		case "proxy.example":
			return []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.7")}, nil
		case "v6only.example":
			return []netip.Addr{netip.MustParseAddr("2001:db8::1")}, nil
		}
		return nil, errors.New("no such host")
	}
	key := func(s string) string {
		t.Helper()
		k, err := Resolve(context.Background(), s, lookup)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", s, err)
		}
		return k
	}
	for want, spellings := range map[string][]string{
		"127.0.0.1:1080": {
			"socks5://u:p@127.0.0.1:1080", "socks5://u:p@localhost:1080", "socks5://u:p@127.0.0.1:01080",
			"http://127.0.0.1:1080", "https://other:pw@LOCALHOST:1080", "socks5://[::ffff:127.0.0.1]:1080",
		},
		"10.0.0.7:3128":     {"http://proxy.example:3128", "socks5://u:p@Proxy.Example:3128", "socks5://10.0.0.7:003128"},
		"[::1]:1080":        {"socks5://[::1]:1080", "http://u:p@[0:0::1]:1080"},
		"[2001:db8::1]:443": {"https://v6only.example:443"},
		Direct:              {""},
	} {
		for _, s := range spellings {
			if got := key(s); got != want {
				t.Errorf("key of %q = %q, want %q", s, got, want)
			}
		}
	}
	for _, pair := range [][2]string{
		{"socks5://127.0.0.1:1080", "socks5://127.0.0.1:1081"},
		{"socks5://127.0.0.1:1080", "socks5://127.0.0.2:1080"},
		{"socks5://localhost:1080", "socks5://[::1]:1080"},
		{"socks5://proxy.example:1080", "socks5://localhost:1080"},
		{"", "socks5://127.0.0.1:1080"},
	} {
		if a, b := key(pair[0]), key(pair[1]); a == b {
			t.Errorf("%q and %q share the key %q", pair[0], pair[1], a)
		}
	}
	// A literal needs no lookup, and the pure key agrees with Resolve.
	if k, ok := Literal("socks5://u:p@127.0.0.1:01080"); !ok || k != "127.0.0.1:1080" {
		t.Errorf("Literal = %q %v", k, ok)
	}
	if _, ok := Literal("socks5://localhost:1080"); ok {
		t.Error("a name counted as a literal")
	}
	if k := Key(netip.MustParseAddr("::ffff:127.0.0.1"), 1080); k != "127.0.0.1:1080" {
		t.Errorf("Key of a mapped address = %q", k)
	}
	_, err := Resolve(context.Background(), "socks5://alice:s3cret@nowhere.invalid:1080", lookup)
	if err == nil || !strings.Contains(err.Error(), "proxy host nowhere.invalid does not resolve") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("an unknown name: %v", err)
	}
}

func TestEgressNameAndRedact(t *testing.T) {
	for in, want := range map[string][3]string{
		"":                                 {Direct, Direct, ""},
		"socks5://alice:s3cret@h:1080":     {"h:1080", "socks5://h:1080", "socks5://***@h:1080"},
		"http://h:3128":                    {"h:3128", "http://h:3128", "http://h:3128"},
		"https://bob@h:443":                {"h:443", "https://h:443", "https://***@h:443"},
		"http://sk_live_TOKEN@h:8080":      {"h:8080", "http://h:8080", "http://***@h:8080"},
		"http://sk_live_TOKEN:@h:8080":     {"h:8080", "http://h:8080", "http://***@h:8080"},
		"socks5://:s3cret@10.0.0.1:01080":  {"10.0.0.1:1080", "socks5://10.0.0.1:01080", "socks5://***@10.0.0.1:01080"},
		"socks5://u:pw@Proxy.Example:1080": {"proxy.example:1080", "socks5://proxy.example:1080", "socks5://***@Proxy.Example:1080"},
		"socks5:alice:s3cret@h:1":          {"invalid", "(an unparsable proxy URL)", "(an unparsable proxy URL)"},
		"socks5://u:p@[::1]:1080":          {"[::1]:1080", "socks5://[::1]:1080", "socks5://***@[::1]:1080"},
	} {
		if got := Egress(in); got != want[0] {
			t.Errorf("Egress(%q) = %q, want %q", in, got, want[0])
		}
		if got := Name(in); got != want[1] {
			t.Errorf("Name(%q) = %q, want %q", in, got, want[1])
		}
		if got := Redact(in); got != want[2] {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want[2])
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

// Any user information is a secret: a token as the user name, with or
// without an empty password, and a password without a user name.
func TestScrubEveryUserinfo(t *testing.T) {
	for _, c := range []struct{ url, secret string }{
		{"socks5://u:p@h:1080", "u:p"},
		{"http://sk_live_TOKEN@h:8080", "sk_live_TOKEN"},
		{"http://sk_live_TOKEN:@h:8080", "sk_live_TOKEN"},
		{"socks5://:pw-only-secret@h:1080", "pw-only-secret"},
		{"socks5://:p@h:1080", ":p@"},
		{"http://tok%2Fen-secret@h:8080", "tok/en-secret"},
	} {
		for _, text := range []string{
			"Get \"" + c.url + "\": proxyconnect tcp: dial tcp h: refused",
			"proxy " + c.url + " said no",
			"auth as " + c.secret + " failed",
		} {
			got := Scrub(text, c.url)
			if strings.Contains(got, c.secret) || !strings.Contains(got, "***") {
				t.Errorf("Scrub(%q, %q) = %q: the secret %q shows", text, c.url, got, c.secret)
			}
		}
	}
	if got := Scrub("dial socks5://u:p@h:1080: refused", "socks5://u:p@h:1080"); got != "dial socks5://***@h:1080: refused" {
		t.Errorf("a short userinfo: %q", got)
	}
}

// A user name beside a password is an account name, often a common word:
// only its userinfo forms go, not every use of the word in the text.
func TestScrubKeepsAUserNameBesideAPassword(t *testing.T) {
	got := Scrub("connect through proxy socks5://proxy:pw-secret@h:1: auth for proxy:pw-secret failed", "socks5://proxy:pw-secret@h:1")
	if want := "connect through proxy socks5://***@h:1: auth for *** failed"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
