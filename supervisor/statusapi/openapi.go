package statusapi

import (
	_ "embed"
	"net/http"
)

// openAPIPath serves the document that describes this API.
const openAPIPath = "/v1/openapi.json"

// OpenAPI is the OpenAPI 3.1 document of this API, written by hand and
// checked against the route table (openapi_test.go) and against every
// answer the e2e suite receives.
//
//go:embed openapi.json
var OpenAPI []byte

// ungated reports whether a path answers without the API key and before
// the state is loaded: the probes, and the document, which holds nothing
// secret and which tools fetch before they know the key. The Host and
// Origin guards still apply to them.
func ungated(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == openAPIPath
}

func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(OpenAPI)
}
