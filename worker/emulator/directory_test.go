package emulator

import (
	"encoding/json"
	"net/http"
	"testing"
)

// The directory route takes a number and {"on_whatsapp"}, answers bad
// input with a JSON 4xx, and a number marked off can be put back.
func TestDirectoryControl(t *testing.T) {
	h := newHarness(t)
	h.control(http.MethodPut, "/control/directory/+573001234567", map[string]bool{"on_whatsapp": false}, http.StatusOK, nil)
	if h.srv.onWhatsApp("573001234567") || !h.srv.onWhatsApp("573001234568") {
		t.Fatal("the directory does not hold what was marked")
	}
	h.control(http.MethodPut, "/control/directory/573001234567", map[string]bool{"on_whatsapp": true}, http.StatusOK, nil)
	if !h.srv.onWhatsApp("573001234567") {
		t.Fatal("a number put back is still off WhatsApp")
	}
	for _, c := range []struct {
		method, path string
		body         any
		status       int
	}{
		{http.MethodPut, "/control/directory/12", map[string]bool{"on_whatsapp": false}, http.StatusBadRequest},
		{http.MethodPut, "/control/directory/573001234567", map[string]string{}, http.StatusBadRequest},
		{http.MethodPut, "/control/directory/573001234567", json.RawMessage(`{"on_whatsapp":"no"}`), http.StatusBadRequest},
		{http.MethodPost, "/control/directory/573001234567", map[string]bool{"on_whatsapp": false}, http.StatusMethodNotAllowed},
	} {
		var e map[string]string
		h.control(c.method, c.path, c.body, c.status, &e)
		if e["error"] == "" {
			t.Errorf("%s %s: no JSON error", c.method, c.path)
		}
	}
}
