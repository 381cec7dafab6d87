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
// with a host and a port; the error never quotes the password.
func Validate(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a URL (socks5://user:pass@host:port, http://host:port or https://host:port)")
	}
	switch u.Scheme {
	case "socks5", "http", "https":
	default:
		return fmt.Errorf("scheme %q is not supported: use socks5, http or https", u.Scheme)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%s needs a host and a port", Redact(s))
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s has a path or a query; a proxy URL is scheme://[user:pass@]host:port", Redact(s))
	}
	return nil
}

// Egress is the key live workers are counted by: the URL without its
// credentials, or Direct. Organizations behind one proxy share its IP.
func Egress(s string) string {
	if s == "" {
		return Direct
	}
	u, err := url.Parse(s)
	if err != nil {
		return "invalid"
	}
	return u.Scheme + "://" + u.Host
}

// Redact shows the URL with its password as ***.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if err != nil {
			return "(an unparsable proxy URL)"
		}
		return s
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
