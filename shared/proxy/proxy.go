// Package proxy holds the rules for an organization's proxy URL, shared by
// the supervisor and the worker: which URLs are accepted, the egress key
// that the start queue counts live workers by, and how a URL or any text
// that may quote it is shown without its credentials.
package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Direct is the egress of an organization without a proxy.
const Direct = "direct"

// Validate accepts "" (no proxy) and socks5://, http:// or https:// URLs
// with a host and a port. Its errors never quote the URL: a mistyped one
// may carry its password where no parser sees a password.
func Validate(s string) error {
	if s == "" {
		return nil
	}
	const shape = "scheme://[user:pass@]host:port with scheme socks5, http or https"
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return errors.New("is not a proxy URL: want " + shape)
	}
	switch u.Scheme {
	case "socks5", "http", "https":
	default:
		return fmt.Errorf("scheme %q is not supported: want %s", u.Scheme, shape)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return errors.New("needs a host and a port: want " + shape)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("has a path or a query: want " + shape)
	}
	return nil
}

// Egress is the key live workers are counted by: the URL without its
// credentials, host in lower case, or Direct. Organizations behind one
// proxy share its IP. (A host name and its IP address are two keys: the
// supervisor does not resolve names.)
func Egress(s string) string {
	if s == "" {
		return Direct
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "invalid"
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// Redact shows the URL with its password as ***, and anything that does not
// parse as a proxy URL as a fixed text: it may hold a password unparsed.
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
	if _, has := u.User.Password(); has {
		return u.Scheme + "://" + u.User.Username() + ":***@" + u.Host
	}
	return u.Scheme + "://" + u.User.Username() + "@" + u.Host
}

// Scrub removes the proxy's credentials from text, such as an error that
// net/http or a proxy dialer built from the URL, in every form they may
// take there: raw, percent-encoded, or as the userinfo.
func Scrub(text, proxyURL string) string {
	u, err := url.Parse(proxyURL)
	if err != nil || u.User == nil {
		return text
	}
	pass, has := u.User.Password()
	if !has || pass == "" {
		return text
	}
	for _, secret := range []string{u.User.String(), url.QueryEscape(pass), url.PathEscape(pass), pass} {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "***")
		}
	}
	return text
}
