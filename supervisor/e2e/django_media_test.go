package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
)

// postFile submits the form with one attached file, as a browser sends a
// multipart form, asking for the JSON answer.
func (d *djangoServer) postFile(path string, form url.Values, field, name, mime string, data []byte, out any) int {
	d.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, vs := range form {
		for _, v := range vs {
			_ = w.WriteField(k, v)
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, name))
	h.Set("Content-Type", mime)
	part, err := w.CreatePart(h)
	if err != nil {
		d.t.Fatal(err)
	}
	_, _ = part.Write(data)
	_ = w.Close()
	req, _ := http.NewRequest(http.MethodPost, d.url+path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Accept", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("django POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		d.t.Fatalf("django POST %s: %s: %v", path, resp.Status, err)
	}
	return resp.StatusCode
}

// The example's send form takes an attached file: a PDF picked in the
// browser reaches the recipient byte for byte as a document with its name
// and the text as caption, once, however often the form is sent.
func TestDjangoSendsAFile(t *testing.T) {
	needDjango(t)
	t.Parallel()
	const org, phone, to = "djm", "573007915401", "573001234568"
	e := newEnvWith(t, options{tcp: true})
	e.link(org, phone)
	d := startDjango(t, djangoConfig{api: e.apiURL, org: org})

	pdf := append([]byte("%PDF-1.7\n"), make([]byte, 200_000)...)
	_, _ = rand.Read(pdf[9:])
	form := d.form()
	form.Set("to", to)
	form.Set("text", "Your invoice #1042")
	var first, again statusapi.MessageBody
	if code := d.postFile("/send", form, "attachment", "factura.pdf", "application/pdf", pdf, &first); code != http.StatusAccepted || first.Media == "" {
		t.Fatalf("send with a file: %d %+v", code, first)
	}
	if code := d.postFile("/send", form, "attachment", "factura.pdf", "application/pdf", pdf, &again); code != http.StatusAccepted || again.ID != first.ID {
		t.Fatalf("the same form again: %d %+v, want message %s", code, again, first.ID)
	}
	sum := sha256.Sum256(pdf)
	e.eventually(30*time.Second, "the recipient to show the file", func() error {
		got := e.deliveries(phone, false)
		if len(got) != 1 {
			return fmt.Errorf("the recipient shows %d messages", len(got))
		}
		m := got[0].Media
		if got[0].ID != first.WAMessageID || got[0].Text != "Your invoice #1042" || m == nil ||
			m.Kind != "document" || m.Filename != "factura.pdf" || m.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("the recipient shows %+v %+v", got[0], m)
		}
		return nil
	})
}
