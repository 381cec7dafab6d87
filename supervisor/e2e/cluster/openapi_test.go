package clustere2e

import (
	"net/http"
	"sync"

	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi/conformance"
)

// contract is openapi.json, parsed once for the whole package.
var openAPI = sync.OnceValues(conformance.Load)

// newAPIClient is the client the tests call the nodes' APIs with: every
// answer, proxied or not, is checked against openapi.json, and a mismatch
// fails the test naming the route, the status and what does not match. The
// caller gets the answer unchanged.
func (e *Env) newAPIClient() *http.Client {
	c, err := openAPI()
	if err != nil {
		e.T.Fatalf("openapi.json: %v", err)
	}
	return &http.Client{Transport: &conformance.Transport{Next: http.DefaultTransport, Checker: c, Report: func(err error) {
		e.T.Errorf("a node's answer does not match openapi.json: %v", err)
	}}}
}
