package statusapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
)

// The report: a page in a browser on the host unlinked a device
// with a text/plain POST from another origin, and read the QR codes
// through DNS rebinding. Key or no key, neither may work.
func TestBrowserPagesCannotDriveTheAPI(t *testing.T) {
	for _, key := range []string{"", testKey} {
		h := newHarness(t, key)
		wantError(t, h.do("POST", "/v1/orgs/2/logout", "{}", "Content-Type", "text/plain", "Origin", "http://evil.example"),
			http.StatusForbidden, "cross_site")
		wantError(t, h.do("POST", "/v1/orgs/2/logout", "", "Sec-Fetch-Site", "cross-site"), http.StatusForbidden, "cross_site")
		wantError(t, h.do("GET", "/v1/orgs", "", "Host", "evil.example"), http.StatusForbidden, "bad_host")
		wantError(t, h.do("GET", "/v1/orgs", "", "Host", "evil.example:8089"), http.StatusForbidden, "bad_host")
		wantError(t, h.do("GET", "/healthz", "", "Origin", "http://evil.example"), http.StatusForbidden, "cross_site")
		if calls := h.fleet.Calls(); len(calls) != 0 {
			t.Fatalf("key %q: the fleet was called: %v", key, calls)
		}
	}
}

func TestLoopbackHostsAndServerSideCallersPass(t *testing.T) {
	h := newHarness(t, testKey)
	for _, host := range []string{"127.0.0.1:8089", "localhost", "LOCALHOST:8089", "127.0.0.2", "[::1]:8089", "::1"} {
		if rec := h.do("GET", "/v1/orgs/2", "", "Host", host); rec.Code != http.StatusOK {
			t.Errorf("Host %s: %d %s", host, rec.Code, rec.Body)
		}
	}
	if rec := h.do("GET", "/v1/orgs/2", "", "Sec-Fetch-Site", "same-origin"); rec.Code != http.StatusOK {
		t.Errorf("same-origin fetch: %d", rec.Code)
	}
}

func TestHostCheckFollowsTheListenAddress(t *testing.T) {
	cases := []struct {
		listen, host string
		allowed      []string
		ok           bool
	}{
		{"10.0.0.5:8089", "10.0.0.5:8089", nil, true},
		{"10.0.0.5:8089", "10.0.0.6:8089", nil, false},
		{"0.0.0.0:8089", "10.0.0.6:8089", nil, true},
		{"0.0.0.0:8089", "sidecar.internal:8089", nil, false},
		{"unix:/run/wa-sidecar/api.sock", "wa-supervisor", nil, true},
		// A Kubernetes Service's name was refused, so the application had
		// to call the Service's IP; api.allowed_hosts lists such names.
		{"0.0.0.0:8089", "wa-sidecar-api.wa-sidecar.svc:8089", []string{"wa-sidecar-api.wa-sidecar.svc"}, true},
		{"0.0.0.0:8089", "WA-SIDECAR-API.wa-sidecar.svc", []string{"wa-sidecar-api.wa-sidecar.svc"}, true},
		{"0.0.0.0:8089", "evil.example:8089", []string{"wa-sidecar-api.wa-sidecar.svc"}, false},
		{"0.0.0.0:8089", "api.wa-sidecar.svc.evil.example", []string{"wa-sidecar.svc"}, false},
	}
	for _, c := range cases {
		g := newGuard(c.listen, nil, c.allowed)
		r := httptest.NewRequest("GET", "/v1/orgs", nil)
		r.Host = c.host
		if err := g.host(r); (err == nil) != c.ok {
			t.Errorf("listen %s, Host %s: %v", c.listen, c.host, err)
		}
	}
}

func TestAllowedOriginGetsCORS(t *testing.T) {
	h := newHarness(t, testKey)
	rec := h.do("OPTIONS", "/v1/orgs/2/start", "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST", "x-api-key", "")
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "X-Api-Key") {
		t.Fatalf("preflight: %d %v", rec.Code, rec.Header())
	}
	rec = h.do("GET", "/v1/orgs/2", "", "Origin", "https://app.example")
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("allowed origin: %d %v", rec.Code, rec.Header())
	}
	wantError(t, h.do("OPTIONS", "/v1/orgs/2/start", "", "Origin", "https://other.example", "Access-Control-Request-Method", "POST"),
		http.StatusForbidden, "cross_site")
}

func TestOriginsAreComparedAsBrowsersSendThem(t *testing.T) {
	g := newGuard("127.0.0.1:8089", []string{"https://App.Example:443/", "http://localhost:3000"}, nil)
	for origin, ok := range map[string]bool{
		"https://app.example": true, "https://app.example:443": true, "http://localhost:3000": true,
		"http://app.example": false, "https://app.example:8443": false, "null": false,
	} {
		r := httptest.NewRequest("GET", "/v1/orgs", nil)
		r.Header.Set("Origin", origin)
		if err := g.crossSite(r); (err == nil) != ok {
			t.Errorf("origin %s: %v", origin, err)
		}
	}
}

func TestBodiesMustBeJSON(t *testing.T) {
	h := newHarness(t, testKey)
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "none"} {
		header := []string{"Content-Type", ct}
		if ct == "none" {
			header = []string{"Content-Type", ""}
		}
		e := wantError(t, h.do("POST", "/v1/orgs/2/pair-phone", `{"phone":"573001234567"}`, header...),
			http.StatusUnsupportedMediaType, "unsupported_media_type")
		if !strings.Contains(e.Error, "application/json") {
			t.Fatalf("%s: %q", ct, e.Error)
		}
	}
	if rec := h.do("POST", "/v1/orgs/2/pair-phone", `{"phone":"573001234567"}`, "Content-Type", "application/json; charset=utf-8"); rec.Code != http.StatusOK {
		t.Fatalf("JSON with a charset: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("POST", "/v1/orgs/2/stop", "", "Content-Type", "text/plain"); rec.Code != http.StatusOK {
		t.Fatalf("no body, any type: %d %s", rec.Code, rec.Body)
	}
	if calls := h.fleet.Calls(); len(calls) != 2 {
		t.Fatalf("calls %v", calls)
	}
}

func TestTooManyOrgsIs409(t *testing.T) {
	h := newHarness(t, testKey)
	h.fleet.err = fmt.Errorf("organization 9: 1000 organizations are registered: %w", fleet.ErrTooManyOrgs)
	e := wantError(t, h.do("POST", "/v1/orgs/9/start", ""), http.StatusConflict, "too_many_orgs")
	if !strings.Contains(e.Error, "max_orgs") {
		t.Fatalf("%q does not name the key", e.Error)
	}
}

// A client may send the token in any case; only the refusal may not vary.
func TestSecFetchSiteIsCaseInsensitive(t *testing.T) {
	g := newGuard("127.0.0.1:8089", nil, nil)
	for value, refused := range map[string]bool{
		"cross-site": true, "CROSS-SITE": true, "Cross-Site": true, " cross-site ": true,
		"same-origin": false, "SAME-ORIGIN": false, "none": false, "same-site": false,
	} {
		r, err := http.NewRequest("POST", "http://127.0.0.1:8089/v1/orgs/2/logout", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Sec-Fetch-Site", value)
		if err := g.crossSite(r); (err != nil) != refused {
			t.Errorf("Sec-Fetch-Site %q: refused = %v, want %v", value, err != nil, refused)
		}
	}
}
