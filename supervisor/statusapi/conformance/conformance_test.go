package conformance

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if v := c.doc.OpenAPI; v != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", v)
	}
	if n := len(c.Operations()); n < 20 {
		t.Errorf("the document has %d operations; the API has more than 20", n)
	}
}

func TestParseRefusesADocumentThatIsNot31(t *testing.T) {
	if _, err := Parse([]byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{}}`)); err == nil {
		t.Error("a 3.0 document was accepted")
	}
	if _, err := Parse([]byte(`{"openapi":"3.1.0","info":{"title":"t"},"paths":{}}`)); err == nil {
		t.Error("a document without info.version was accepted")
	}
}

const connected = `{"organization_id":"2","status":"connected","jid":"573007915262:12@s.whatsapp.net",
"connected_since":"2026-01-02T03:04:05.123456789Z","retry_count":0,"bad_mac":{"count":0,"last_error_at":null,"trips":0},
"cooldown_until":null,"worker_pid":42,"egress":"direct","outbox":{"queued":0,"sent_today":1,"failed_today":0},
"send_restricted_until":null,"sending":{"limit_today":0,"sent_today":1,"next_window":null}}`

func TestCheckNamesWhatDoesNotMatch(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	get := httptest.NewRequest("GET", "http://wa-supervisor/v1/orgs/2", nil)
	json := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		body   string
		want   string // "" = conforms
	}{
		{"a status object", get, 200, connected, ""},
		{"an unknown field", get, 200, strings.Replace(connected, `"egress"`, `"surprise":1,"egress"`, 1), "surprise"},
		{"a status outside the enum", get, 200, strings.Replace(connected, `"connected"`, `"linked"`, 1), "status"},
		{"a missing required field", get, 200, strings.Replace(connected, `"egress":"direct",`, "", 1), "at /egress"},
		{"a time that is not RFC 3339", get, 200, strings.Replace(connected, `"cooldown_until":null`, `"cooldown_until":"soon"`, 1), "at /cooldown_until"},
		{"an undocumented status", get, 418, `{"error":"x","code":"internal"}`, "418"},
		{"an undocumented code", get, 404, `{"error":"x","code":"gone"}`, "at /code"},
		{"a documented error", get, 404, `{"error":"organization 2 is not registered","code":"unknown_org"}`, ""},
		{"a code of another status", get, 404, `{"error":"x","code":"booting"}`, "at /code"},
		{"an unknown route", httptest.NewRequest("GET", "http://wa-supervisor/v2/x", nil), 404, `{"error":"no route","code":"not_found"}`, ""},
		{"an unknown route's odd answer", httptest.NewRequest("GET", "http://wa-supervisor/v2/x", nil), 200, `{}`, "no route"},
		{"a wrong method", httptest.NewRequest("PUT", "http://wa-supervisor/v1/orgs/2", nil), 405, `{"error":"PUT is not allowed","code":"method_not_allowed"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Check(tc.req, tc.status, json, []byte(tc.body))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Error("accepted")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestCheckWantsRetryAfterOn503(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://wa-supervisor/v1/orgs", nil)
	body := []byte(`{"error":"the supervisor is still loading its state; retry in a second","code":"booting"}`)
	with := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "Retry-After": {"1"}}
	if err := c.Check(req, 503, with, body); err != nil {
		t.Errorf("503 booting with Retry-After refused: %v", err)
	}
	without := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	if err := c.Check(req, 503, without, body); err == nil || !strings.Contains(err.Error(), "Retry-After") {
		t.Errorf("503 without Retry-After: %v, want an error naming the header", err)
	}
}

func TestTransportReportsAndPassesTheAnswerOn(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"fine"}`))
	}))
	defer srv.Close()
	var reports []error
	client := &http.Client{Transport: &Transport{Next: http.DefaultTransport, Checker: c, Report: func(err error) { reports = append(reports, err) }}}
	resp, err := client.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	if b.String() != `{"status":"fine"}` {
		t.Errorf("body = %q, want the server's", b.String())
	}
	if len(reports) != 1 || !strings.Contains(reports[0].Error(), "GET /healthz") {
		t.Errorf("reports = %v, want one naming GET /healthz", reports)
	}
}
