package clustere2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/cluster"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// The calls the tests make to the nodes' APIs, metrics, and the emulator.

// Response is an API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Code is the error code of an error answer.
func (r Response) Code() string {
	var b struct{ Code string }
	_ = json.Unmarshal(r.Body, &b)
	return b.Code
}

// Do calls the node's API with the API key.
func (n *Node) Do(method, path string, body any) Response {
	return n.DoWith(method, path, body, map[string]string{"x-api-key": APIKey})
}

// DoWith calls the node's API with the given headers only.
func (n *Node) DoWith(method, path string, body any, headers map[string]string) Response {
	t := n.env.T
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := n.env.api.Do(req)
	if err != nil {
		t.Fatalf("node %s %s %s: %v", n.Name, method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Status is GET /v1/orgs/{org} through n; it fails the test unless 200.
func (n *Node) Status(org string) state.Snapshot {
	t := n.env.T
	t.Helper()
	r := n.Do(http.MethodGet, "/v1/orgs/"+org, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("status of %s through %s: %d %s", org, n.Name, r.Status, r.Body)
	}
	var s state.Snapshot
	r.JSON(t, &s)
	return s
}

// List is GET /v1/orgs through n.
func (n *Node) List() []state.Snapshot {
	t := n.env.T
	t.Helper()
	r := n.Do(http.MethodGet, "/v1/orgs", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("list through %s: %d %s", n.Name, r.Status, r.Body)
	}
	var s []state.Snapshot
	r.JSON(t, &s)
	return s
}

// HasMetric reports whether n exposes at least one series of the family.
func (n *Node) HasMetric(name string) bool {
	n.env.T.Helper()
	fam, ok := n.families()[name]
	return ok && len(fam.Metric) > 0
}

func (n *Node) families() map[string]*dto.MetricFamily {
	t := n.env.T
	t.Helper()
	resp, err := http.Get(n.MetricsURL)
	if err != nil {
		t.Fatalf("scrape %s: %v", n.Name, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics of %s: %v", n.Name, err)
	}
	return families
}

// Metric returns the value of the series name{labels} on n, 0 if absent.
func (n *Node) Metric(name string, labels map[string]string) float64 {
	t := n.env.T
	t.Helper()
	fam, ok := n.families()[name]
	if !ok {
		return 0
	}
next:
	for _, m := range fam.Metric {
		for _, l := range m.Label {
			if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	return 0
}

// Owner is orgs/<org> as the answer's X-Wa-Sidecar-Node header names it.
func (n *Node) Owner(org string) string {
	n.env.T.Helper()
	return n.Do(http.MethodGet, "/v1/orgs/"+org, nil).Header.Get(cluster.NodeHeader)
}

// StartOrg is POST /v1/orgs/{org}/start through n; it fails unless 2xx.
func (n *Node) StartOrg(org string) state.Snapshot {
	t := n.env.T
	t.Helper()
	r := n.Do(http.MethodPost, "/v1/orgs/"+org+"/start", nil)
	if r.Status/100 != 2 {
		t.Fatalf("start %s through %s: %d %s", org, n.Name, r.Status, r.Body)
	}
	var s state.Snapshot
	r.JSON(t, &s)
	return s
}

// Eventually polls check until it returns nil or the timeout passes.
func (e *Env) Eventually(timeout time.Duration, what string, check func() error) {
	e.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitStatus polls org through n until it is in want.
func (n *Node) WaitStatus(org string, want state.Status, timeout time.Duration) state.Snapshot {
	n.env.T.Helper()
	var s state.Snapshot
	n.env.Eventually(timeout, fmt.Sprintf("%s to be %s (through %s)", org, want, n.Name), func() error {
		s = n.Status(org)
		if s.Status != want {
			return fmt.Errorf("status is %s (last event %s, error %q)", s.Status, s.LastEvent, s.LastError)
		}
		return nil
	})
	return s
}

// Link starts org through n, scans its QR with phone and waits until it
// is connected; it returns the JID.
func (n *Node) Link(org, phone string) string {
	t := n.env.T
	t.Helper()
	n.StartOrg(org)
	qr := n.WaitStatus(org, state.QRRequired, 30*time.Second)
	var resp struct{ JID string }
	n.env.Control(http.MethodPost, "/control/scan", map[string]string{"qr_code": qr.QRCode, "phone": phone}, &resp)
	s := n.WaitStatus(org, state.Connected, 30*time.Second)
	if !strings.HasPrefix(s.JID, phone) {
		t.Fatalf("%s connected with JID %q, want phone %s", org, s.JID, phone)
	}
	return s.JID
}

// Control calls the emulator's control API.
func (e *Env) Control(method, path string, body, out any) {
	e.T.Helper()
	if err := emuctl.New(e.EmuURL).Do(context.Background(), method, path, body, out); err != nil {
		e.T.Fatal(err)
	}
}
