package statusapi

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/supervisor/fleet"
	"github.com/wa-sidecar/wa-sidecar/supervisor/mediastore"
	"github.com/wa-sidecar/wa-sidecar/supervisor/move"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// documentedOperations reads "METHOD /path" of every operation in
// openapi.json. The validity of the document is conformance's test; this
// needs only its shape.
func documentedOperations(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "post", "put", "patch", "delete", "head", "options":
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

// everyRoute is the route table with every optional part on: the outbox,
// webhooks, media, contacts, moves and cluster mode with the node-to-node
// routes serve.go mounts. The handlers are never called.
func everyRoute() []string {
	s := &server{fleet: newFakeFleet(), outbox: (*outbox.Outbox)(nil), webhooks: (*webhook.Dispatcher)(nil),
		media: (*mediastore.Library)(nil), contacts: (*outbox.Outbox)(nil), mover: (*move.Service)(nil),
		cluster: &fakeCluster{}, internal: (&move.Local{}).Routes()}
	var served []string
	for _, r := range s.routes() {
		served = append(served, r.method+" "+r.pattern)
	}
	slices.Sort(served)
	return served
}

func TestEveryServedRouteIsDocumented(t *testing.T) {
	documented := documentedOperations(t)
	for _, r := range everyRoute() {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in openapi.json", r)
		}
	}
}

func TestEveryDocumentedRouteIsServed(t *testing.T) {
	served := everyRoute()
	for _, op := range documentedOperations(t) {
		if !slices.Contains(served, op) {
			t.Errorf("%s is in openapi.json but not served", op)
		}
	}
}

// errorCodes reads the Error schema's codes from openapi.json, each with
// its description ("409: a hold ...").
func errorCodes(t *testing.T) (enum []string, descriptions map[string]string) {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Enum         []string          `json:"enum"`
							Descriptions map[string]string `json:"x-enumDescriptions"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	code := doc.Components.Schemas.Error.Properties.Code
	return code.Enum, code.Descriptions
}

// TestErrorCodesAreDocumented reads the codes the package answers with
// from its source, and those of the move (its route's errors and the
// node-to-node routes'), and compares them with the document's enum both
// ways.
func TestErrorCodesAreDocumented(t *testing.T) {
	documented, descriptions := errorCodes(t)
	if len(descriptions) != len(documented) {
		t.Errorf("openapi.json describes %d codes in x-enumDescriptions and lists %d in enum", len(descriptions), len(documented))
	}
	var files []string
	for _, glob := range []string{"*.go", filepath.Join("..", "move", "*.go")} {
		matched, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, matched...)
	}
	codeREs := []*regexp.Regexp{
		regexp.MustCompile(`\b[cC]ode:\s+"([a-z_]+)"`),
		// The move's internal routes: l.answer(w, r, id, status, nil, code, err).
		regexp.MustCompile(`\banswer\(w, r, id, http\.\w+, nil, "([a-z_]+)"`),
	}
	// bad_request is what wire.go derives from the status text of the
	// 400s net/http answers by itself.
	used := []string{"bad_request"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range codeREs {
			for _, m := range re.FindAllStringSubmatch(string(src), -1) {
				used = append(used, m[1])
			}
		}
	}
	for _, c := range []string{"move_failed", "too_large", "not_owner"} {
		if !slices.Contains(used, c) {
			t.Fatalf("%s not found in the source: the patterns no longer match how codes are written", c)
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %v in the source: the pattern no longer matches how codes are written", used)
	}
	for _, c := range used {
		if !slices.Contains(documented, c) {
			t.Errorf("code %q is answered but not in openapi.json's Error.code enum", c)
		}
	}
	for _, c := range documented {
		if !slices.Contains(used, c) {
			t.Errorf("code %q is in openapi.json but nothing answers it", c)
		}
	}
}

func TestOpenAPIIsServedWithoutKeyBehindTheGuards(t *testing.T) {
	h := newHarness(t, testKey)
	h.fleet.setReady(fleet.ErrBooting)
	rec := h.do("GET", "/v1/openapi.json", "", "x-api-key", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 without a key and while booting; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if rec.Body.String() != string(OpenAPI) {
		t.Error("the body is not the embedded openapi.json")
	}
	wantError(t, h.do("GET", "/v1/openapi.json", "", "Host", "evil.example"), http.StatusForbidden, "bad_host")
	wantError(t, h.do("GET", "/v1/openapi.json", "", "Origin", "https://evil.example"), http.StatusForbidden, "cross_site")
	wantError(t, h.do("POST", "/v1/openapi.json", ""), http.StatusMethodNotAllowed, "method_not_allowed")
}

// TestAPIPageAgreesWithTheDocument checks docs/api.md's error table
// against openapi.json, and that its curl examples with a body say JSON
// (the server answers 415 otherwise).
func TestAPIPageAgreesWithTheDocument(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	rowRE := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9]{3}) \\|")
	rows := map[string]string{}
	for _, m := range rowRE.FindAllStringSubmatch(string(page), -1) {
		rows[m[1]] = m[2]
	}
	enum, descriptions := errorCodes(t)
	for _, code := range enum {
		status, ok := rows[code]
		switch {
		case !ok:
			t.Errorf("docs/api.md's error table lacks %s", code)
		case !strings.HasPrefix(descriptions[code], status):
			t.Errorf("docs/api.md gives %s HTTP %s; openapi.json says %q", code, status, descriptions[code])
		}
	}
	for code := range rows {
		if !slices.Contains(enum, code) {
			t.Errorf("docs/api.md lists %s, which openapi.json does not", code)
		}
	}
	for _, line := range strings.Split(string(page), "\n") {
		if strings.Contains(line, "curl ") && strings.Contains(line, " -d ") && !strings.Contains(line, "Content-Type: application/json") {
			t.Errorf("docs/api.md: a curl with a body lacks -H 'Content-Type: application/json': %s", line)
		}
	}
}
