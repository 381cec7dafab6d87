package e2e

import (
	"net/http"
	"sync"

	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi/conformance"
)

// contract is openapi.json, parsed once for the whole suite.
var contract = sync.OnceValues(conformance.Load)

// newAPI is the suite's API client: every answer it receives is checked
// against openapi.json, and a mismatch fails the test.
func (e *env) newAPI(listen, key string) *apiclient.Client {
	return apiclient.New(listen, key, apiclient.WithTransport(e.conforming))
}

// conforming wraps a transport so that each answer through it is checked
// against openapi.json; the test fails naming the route, the status and
// what does not match, and the caller gets the answer unchanged.
func (e *env) conforming(next http.RoundTripper) http.RoundTripper {
	c, err := contract()
	if err != nil {
		e.t.Fatalf("openapi.json: %v", err)
	}
	return &conformance.Transport{Next: next, Checker: c, Report: func(err error) {
		e.t.Errorf("the API's answer does not match openapi.json: %v", err)
	}}
}
