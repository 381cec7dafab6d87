// Package proxy holds the rules for an organization's proxy URL, shared by
// the supervisor and the worker: which URLs are accepted, the egress key
// that the start queue counts live workers by, and how a URL or any text
// that may quote it is shown without its credentials.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Direct is the egress of an organization without a proxy.
const Direct = "direct"

// DNS limits (RFC 1035): a longer name can never resolve, so it is refused
// when the URL is given rather than at every start.
const (
	maxHostLen  = 253
	maxLabelLen = 63
)

const shape = "scheme://[user:pass@]host:port with scheme socks5, http or https"

// Validate accepts "" (no proxy) and socks5://, http:// or https:// URLs
// with a host and a port from 1 to 65535. Its errors never quote the URL or
// the user information: a mistyped one may carry its password where no
// parser sees a password. They may name the host, which is not a secret.
func Validate(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return errors.New("is not a proxy URL: want " + shape)
	}
	switch u.Scheme {
	case "socks5", "http", "https":
	default:
		return fmt.Errorf("scheme %q is not supported: want %s", u.Scheme, shape)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("has a path or a query: want " + shape)
	}
	_, _, err = endpoint(u)
	return err
}

// endpoint is the host (an IP literal or a name, in lower case, without
// brackets) and the numeric port of a parsed proxy URL.
func endpoint(u *url.URL) (string, uint16, error) {
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return "", 0, errors.New("needs a host and a port: want " + shape)
	}
	// Digits only: ParseUint would not take a sign, but say why plainly.
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	host = strings.ToLower(host)
	if _, err := netip.ParseAddr(host); err == nil {
		return host, uint16(n), nil
	}
	if err := validName(host); err != nil {
		return "", 0, err
	}
	return host, uint16(n), nil
}

// validName checks a host name's lengths, the limits of DNS.
func validName(host string) error {
	if len(host) > maxHostLen {
		return fmt.Errorf("host name is %d characters long: at most %d", len(host), maxHostLen)
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" {
			return errors.New("host name has an empty label (two dots in a row, or a leading dot)")
		}
		if len(label) > maxLabelLen {
			return fmt.Errorf("host name has a label of %d characters: at most %d", len(label), maxLabelLen)
		}
	}
	return nil
}

// Key is the egress key of a proxy at addr:port: the endpoint, whatever
// the scheme or the spelling of the URL, since a proxy's clients all leave
// through the address it listens on. IPv4-mapped IPv6 addresses count as
// their IPv4 address, and a zone is dropped.
func Key(addr netip.Addr, port uint16) string {
	return netip.AddrPortFrom(addr.Unmap().WithZone(""), port).String()
}

// Literal is the egress key of s when no name has to be resolved for it:
// Direct for "", the key of an IP address. ok is false for a URL whose
// host is a name (or that is not valid).
func Literal(s string) (key string, ok bool) {
	if s == "" {
		return Direct, true
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false
	}
	host, port, err := endpoint(u)
	if err != nil {
		return "", false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "", false
	}
	return Key(addr, port), true
}

// LookupFunc resolves a host name to its addresses; net.DefaultResolver's
// LookupNetIP with network "ip" is the real one.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// Resolve is the egress key of s, looking its host name up with lookup.
// Of several addresses the lowest counts (IPv4 before IPv6), so that one
// name gives one key however the resolver orders its answer. The error
// names the host and port, never the user information.
func Resolve(ctx context.Context, s string, lookup LookupFunc) (string, error) {
	if key, ok := Literal(s); ok {
		return key, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("proxy URL does not parse")
	}
	host, port, err := endpoint(u)
	if err != nil {
		return "", fmt.Errorf("proxy URL: %w", err)
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return "", fmt.Errorf("proxy host %s does not resolve: %w", host, err)
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("proxy host %s does not resolve: no address", host)
	}
	addrs = slices.Clone(addrs)
	for i, a := range addrs {
		addrs[i] = a.Unmap().WithZone("")
	}
	return Key(slices.MinFunc(addrs, netip.Addr.Compare), port), nil
}

// Egress is the endpoint of s as written, for the status and logs while no
// slot has resolved it: Direct for "", the key of an IP address, and
// otherwise host:port with the name in lower case and the port as a
// number. The fleet counts workers by Resolve's key; for an IP address the
// two are the same.
func Egress(s string) string {
	if key, ok := Literal(s); ok {
		return key
	}
	u, err := url.Parse(s)
	if err != nil {
		return "invalid"
	}
	host, port, err := endpoint(u)
	if err != nil {
		return "invalid"
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// Name shows which proxy s is in a message: its scheme and host, without
// any user information.
func Name(s string) string {
	if s == "" {
		return Direct
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "(an unparsable proxy URL)"
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// Redact shows the URL with any user information as ***: a user name may
// be the secret (an API token), and "TOKEN:@" has an empty password. What
// does not parse as a proxy URL shows as a fixed text: it may hold a
// password unparsed.
func Redact(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "(an unparsable proxy URL)"
	}
	if u.User == nil {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://***@" + u.Host
}

// Scrub removes the proxy's user information from text, such as an error
// that net/http or a proxy dialer built from the URL, in every form it may
// take there: the whole userinfo (user:pass, user:, user) raw or
// percent-encoded, and the secret on its own, raw or percent-encoded: the
// password, or the user name when there is none ("TOKEN@host", "TOKEN:@").
func Scrub(text, proxyURL string) string {
	u, err := url.Parse(proxyURL)
	if err != nil || u.User == nil {
		return text
	}
	user := u.User.Username()
	pass, _ := u.User.Password()
	// The userinfo forms go whatever their length: a colon or an @ next to
	// them marks them as credentials. An @ stays, so the text still shows
	// that there were some.
	secrets := []string{u.User.String() + "@", user + ":" + pass + "@", user + ":" + pass, u.User.String()}
	// On its own, the password goes; the user name too when there is no
	// password, since it is then the secret (an API token). Beside a
	// password it is an account name, often a word ("proxy", "user")
	// whose every use in the text would go with it.
	bare := []string{pass}
	if pass == "" {
		bare = []string{user}
	}
	for _, part := range bare {
		if len(part) < minBare {
			continue
		}
		secrets = append(secrets, url.QueryEscape(part), url.PathEscape(part), part)
	}
	// Longest first: a short secret inside a longer one must not leave the
	// longer one's remains behind.
	slices.SortStableFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, secret := range secrets {
		if len(secret) < 2 || secret == ":@" {
			continue
		}
		with := "***"
		if strings.HasSuffix(secret, "@") {
			with = "***@"
		}
		text = strings.ReplaceAll(text, secret, with)
	}
	return text
}

// minBare is the shortest user name or password removed where it stands
// alone in a text: a shorter one (a user "u") would cut letters out of
// every word, and where it sits in a URL the userinfo forms remove it.
const minBare = 4
