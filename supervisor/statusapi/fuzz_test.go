package statusapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// bodyRoutes are the routes that read a request body.
var bodyRoutes = []struct{ method, path string }{
	{"POST", "/v1/orgs/2/start"},
	{"POST", "/v1/orgs/2/pair-phone"},
	{"POST", "/api/clear-corrupted-session"},
	{"POST", "/v1/orgs/2/stop"},
	{"POST", "/v1/orgs/2/clear"},
	{"POST", "/v1/orgs/2/logout"},
	{"DELETE", "/v1/orgs/2"},
}

// Whatever a caller sends, the answer is JSON, a caller's mistake is a 4xx
// naming it, and the fleet sees only valid IDs and phone numbers.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{`{}`, `{"force":true}`, `{"phone":"573001234567"}`, `{"organization_id":2}`,
		`{"organization_id":"../x"}`, `{"phone":"+57"}`, `[]`, `{"a":1} {}`, "\xff", `{"force":1e999}`} {
		for i := range bodyRoutes {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		h := newHarness(t, testKey)
		r := bodyRoutes[int(route)%len(bodyRoutes)]
		rec := h.do(r.method, r.path, body)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rec.Body)
		}
		if rec.Code >= 400 {
			var e ErrorBody
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Code == "" || e.Error == "" || strings.Contains(e.Error, "\n") {
				t.Fatalf("error answer %q", rec.Body)
			}
		}
		for _, c := range h.fleet.Calls() {
			if strings.HasPrefix(c, "pair-phone") && rec.Code == http.StatusOK {
				if f := strings.Fields(c); len(f) != 3 || len(f[2]) < 7 || strings.Trim(f[2], "0123456789") != "" {
					t.Fatalf("the fleet got %q", c)
				}
			}
		}
	})
}
