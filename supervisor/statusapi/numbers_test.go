package statusapi

import (
	"net/http"
	"testing"
)

// A number is accepted in the spellings people write and answered as its
// E.164 digits; one the phone-number library refuses is a 400 whose
// sentence names it and says why.
func TestNumbersOverHTTP(t *testing.T) {
	srv, _ := outboxServer(t, 100)
	code, m := post(t, srv.URL+"/v1/orgs/2/messages", `{"to":"+57 300 123 4567","text":"hi"}`)
	if code != http.StatusAccepted || m["to"] != "573001234567" {
		t.Fatalf("+57 300 123 4567: %d %v, want 202 to 573001234567", code, m)
	}
	code, b := post(t, srv.URL+"/v1/orgs/2/broadcasts", `{"recipients":["+57 300 123 4567","573001234567","57 300 765 4321"],"text":"hi"}`)
	if code != http.StatusAccepted || b["total"] != float64(2) {
		t.Fatalf("three spellings of two numbers: %d %v, want 202 with total 2", code, b)
	}
	for _, c := range []struct{ path, body, want string }{
		{"/v1/orgs/2/messages", `{"to":"+57 300 123 45","text":"hi"}`,
			`to: phone number "+57 300 123 45" is not a valid number for +57 (CO)`},
		{"/v1/orgs/2/messages", `{"to":"(300) 123-4567","text":"hi"}`,
			`to: phone number "(300) 123-4567" is too short for +30 (GR); with no default_country set, a number is read country code first`},
		{"/v1/orgs/2/messages", `{"to":"","text":"hi"}`, `to: phone number is empty`},
		{"/v1/orgs/2/broadcasts", `{"recipients":["573001234567","+999 123","call me"],"text":"hi"}`,
			`recipients: phone number "+999 123" has no valid country code; phone number "call me" has letters: write it in digits (spaces, dashes, dots and parentheses may stay)`},
	} {
		code, body := post(t, srv.URL+c.path, c.body)
		if code != http.StatusBadRequest || body["code"] != "bad_body" || body["error"] != c.want {
			t.Errorf("%s %s: %d %v\nwant 400 bad_body %q", c.path, c.body, code, body, c.want)
		}
	}
}
