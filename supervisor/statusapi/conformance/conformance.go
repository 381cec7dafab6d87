// Package conformance checks the status API's answers against its OpenAPI
// document (statusapi.OpenAPI), so that the document cannot drift from what
// the server sends: the e2e suite passes every answer it receives through
// a Transport.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// Checker holds the parsed document.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
}

// Load parses statusapi.OpenAPI and checks that it is a valid OpenAPI 3.1
// document.
func Load() (*Checker, error) {
	return Parse(statusapi.OpenAPI)
}

// Parse reads an OpenAPI 3.1 document and validates it.
func Parse(raw []byte) (*Checker, error) {
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("parse openapi document: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("openapi document is version %q, not 3.1", doc.OpenAPI)
	}
	// NewRouter validates the document with the 3.1 rules first.
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	return &Checker{doc: doc, router: router}, nil
}

// Operations returns every "METHOD /path" the document describes.
func (c *Checker) Operations() []string {
	var ops []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(ops)
	return ops
}

// Check reports how an answer to req differs from the document: an
// undocumented status, a body that does not match its schema, a missing
// required header. An answer to a request the document has no route for
// must be a 400, 404 or 405 with the error object.
func (c *Checker) Check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	// The router answers a path or method it lacks with a RouteError.
	var unrouted *routers.RouteError
	if errors.As(err, &unrouted) {
		return c.checkUnrouted(req, status, body)
	}
	if err != nil {
		return fmt.Errorf("%s %s: find route: %w", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s (route %s %s) answered %d, which openapi.json does not allow: %s\nbody: %s",
			req.Method, req.URL.Path, route.Method, route.Path, status, strings.Join(reasons(err), "; "), clip(body))
	}
	return nil
}

func (c *Checker) checkUnrouted(req *http.Request, status int, body []byte) error {
	fail := func(why string, a ...any) error {
		return fmt.Errorf("%s %s has no route in openapi.json and answered %d: %s\nbody: %s",
			req.Method, req.URL.Path, status, fmt.Sprintf(why, a...), clip(body))
	}
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
	default:
		return fail("an unknown route must answer 400, 404 or 405")
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fail("the body is not JSON: %v", err)
	}
	schema := c.doc.Components.Schemas["Error"]
	if schema == nil || schema.Value == nil {
		return fail("openapi.json has no components.schemas.Error")
	}
	if err := schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fail("the body is not the error object: %v", err)
	}
	return nil
}

// reasons flattens a validation error into one short line per mismatch;
// kin-openapi's own messages repeat the whole schema.
func reasons(err error) []string {
	var out []string
	switch e := err.(type) {
	case nil:
		return nil
	case *openapi3filter.ResponseError:
		inner := reasons(e.Err)
		if len(inner) == 0 {
			return []string{e.Reason}
		}
		for _, r := range inner {
			out = append(out, e.Reason+": "+r)
		}
		return out
	case *openapi3.SchemaError:
		// allOf and the like say in Origin where their branch failed; a
		// format's Origin is only the pattern, and this error has the place.
		if inner := reasons(e.Origin); len(inner) > 0 && strings.HasPrefix(inner[0], "at /") {
			return inner
		}
		return []string{"at /" + strings.Join(e.JSONPointer(), "/") + ": " + e.Reason}
	case openapi3.MultiError:
		for _, inner := range e {
			out = append(out, reasons(inner)...)
		}
		return out
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			out = append(out, reasons(inner)...)
		}
		return out
	}
	if inner := errors.Unwrap(err); inner != nil {
		return reasons(inner)
	}
	return []string{err.Error()}
}

func clip(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// Transport checks every answer that passes through it and hands the
// caller the answer unchanged; Report receives each mismatch.
type Transport struct {
	Next    http.RoundTripper
	Checker *Checker
	Report  func(error)
}

// maxBody bounds what is read of an answer to check it; the status API's
// largest answers (a page of 500 messages) are far smaller.
const maxBody = 16 << 20

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Next.RoundTrip(req)
	if err != nil || req.Method == http.MethodHead {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s %s to check it: %w", req.Method, req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.Checker.Check(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Report(err)
	}
	return resp, nil
}
