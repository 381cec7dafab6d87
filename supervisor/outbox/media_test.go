package outbox_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// A media message goes out as SendMedia with the file's bytes, read at send
// time, its type and name, the text as caption and the fixed WhatsApp ID.
func TestMediaMessageCarriesTheFile(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	pdf := bytes.Repeat([]byte("%PDF-1.7 invoice "), 1000)
	info, err := h.lib.Put(bg, pdf, "application/pdf", "factura.pdf", h.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := h.o.Send(bg, "2", outbox.SendRequest{To: "573001112222", Media: info.ID, Text: "your invoice"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Media != info.ID {
		t.Fatalf("message names media %q, want %q", m.Media, info.ID)
	}
	h.connect("2", true)
	h.until("the media send", func() bool { return h.status("2", m.ID).Status == outbox.Sent })
	got := h.w.mediaSent()
	if len(got) != 1 || len(h.w.sent()) != 0 {
		t.Fatalf("worker got %d media and %d text sends, want 1 and 0", len(got), len(h.w.sent()))
	}
	r := got[0]
	if !bytes.Equal(r.Data, pdf) || r.Mime != "application/pdf" || r.Filename != "factura.pdf" || r.Caption != "your invoice" || r.Id != m.WAID || r.To != "573001112222" {
		t.Errorf("SendMedia = to %s id %s mime %s name %s caption %q, %d bytes", r.To, r.Id, r.Mime, r.Filename, r.Caption, len(r.Data))
	}
}

// A media id that is malformed or names nothing is refused at acceptance,
// naming the field; a file gone by send time fails its message, unsent.
func TestMediaRefusalsAndMissingFile(t *testing.T) {
	h := newHarness(t, testMessages(), "")
	var input *outbox.InputError
	for _, id := range []string{"factura.pdf", "sha256:ABC", "sha256:" + strings.Repeat("0", 64)} {
		_, _, err := h.o.Send(bg, "2", outbox.SendRequest{To: "573001112222", Media: id})
		if !errors.As(err, &input) || input.Field != "media" {
			t.Errorf("media %q: %v, want an input error naming media", id, err)
		}
	}
	if _, _, err := h.o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: []string{"573001112222"}, Media: "sha256:" + strings.Repeat("1", 64)}); !errors.As(err, &input) || input.Field != "media" {
		t.Errorf("broadcast with unknown media: %v", err)
	}
	info, err := h.lib.Put(bg, []byte("\x89PNG fake"), "image/png", "", h.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := h.o.Send(bg, "2", outbox.SendRequest{To: "573001112222", Media: info.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(filepath.Dir(h.st.Path()), "media", strings.TrimPrefix(info.ID, "sha256:"))); err != nil {
		t.Fatal(err)
	}
	h.connect("2", true)
	h.until("the message to fail", func() bool { return h.status("2", m.ID).Status == outbox.Failed })
	if got := h.status("2", m.ID); got.Reason != outbox.ReasonMediaMissing || len(h.w.mediaSent()) != 0 {
		t.Errorf("message = %s %s after %d sends, want failed media_missing, unsent", got.Status, got.Reason, len(h.w.mediaSent()))
	}
}
