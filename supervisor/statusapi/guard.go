package statusapi

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
)

// guard keeps web pages in a browser on this host from driving or reading
// the API, key or no key: a page may send simple cross-site requests
// (text/plain bodies, no preflight) and, through DNS rebinding, even read
// the answers under its own host name.
type guard struct {
	origins []string
	// hosts are the names api.allowed_hosts adds to the Host check.
	hosts []string
	// listenHost is the IP the API listens on ("" for a unix socket, where
	// no browser can reach it and the Host header means nothing).
	listenHost  string
	unspecified bool
}

func newGuard(listen string, origins, hosts []string) guard {
	g := guard{hosts: hosts}
	for _, o := range origins {
		g.origins = append(g.origins, normalOrigin(o))
	}
	if _, unix := config.IsUnixListen(listen); unix {
		return g
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return g
	}
	g.listenHost = host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		g.unspecified = true
	}
	return g
}

// crossSite refuses a request from a browser page whose origin is not
// listed; server-side callers (Django, the CLI) send no Origin. Header
// values are compared as HTTP tokens, without case: a client that sends
// "CROSS-SITE" must not pass where "cross-site" is refused.
func (g guard) crossSite(r *http.Request) *apiError {
	origin := r.Header.Get("Origin")
	crossSite := strings.EqualFold(strings.TrimSpace(r.Header.Get("Sec-Fetch-Site")), "cross-site")
	if origin == "" && !crossSite {
		return nil
	}
	if origin != "" && slices.Contains(g.origins, normalOrigin(origin)) {
		return nil
	}
	shown := origin
	if shown == "" {
		shown = "an unnamed origin"
	}
	return &apiError{status: http.StatusForbidden, code: "cross_site",
		msg: "a cross-site request from " + truncate(shown) + " is refused; list the origin in api.allowed_origins to allow it"}
}

// host refuses a Host header that names something other than this API: a
// DNS rebinding page reaches 127.0.0.1 under its own host name.
func (g guard) host(r *http.Request) *apiError {
	if g.listenHost == "" {
		return nil
	}
	name := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if strings.EqualFold(name, "localhost") || name == g.listenHost ||
		slices.ContainsFunc(g.hosts, func(h string) bool { return strings.EqualFold(h, name) }) {
		return nil
	}
	if ip := net.ParseIP(name); ip != nil && (ip.IsLoopback() || g.unspecified) {
		return nil
	}
	return &apiError{status: http.StatusForbidden, code: "bad_host",
		msg: "Host " + truncate(r.Host) + " is not this API's address; use " + g.listenHost + ", localhost or a loopback IP, or list the name in api.allowed_hosts"}
}

// cors answers for a listed origin: the headers that let its page read the
// answer, and the preflight of a JSON or keyed request.
func (g guard) cors(w http.ResponseWriter, r *http.Request) (preflight bool) {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(g.origins, normalOrigin(origin)) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	h.Set("Access-Control-Allow-Headers", "Content-Type, X-Api-Key")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// normalOrigin writes an origin the way browsers send it: lower case, no
// default port, no trailing slash, so "https://App.Example:443/" in the
// config matches "https://app.example" in the header.
func normalOrigin(o string) string {
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil || u.Host == "" {
		return o
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host
}

// jsonBody refuses a request that has a body of another type: only a JSON
// body is read, and a text/plain one is what a page can send without a
// preflight.
func jsonBody(r *http.Request) *apiError {
	if r.ContentLength == 0 {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
		msg: "a request body must be Content-Type: application/json (got " + truncate(ct) + ")"}
}

// truncate keeps a caller's header short in an answer.
func truncate(s string) string {
	const max = 100
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
