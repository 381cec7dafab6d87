package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// sendMediaToEmulator sends an image, a PDF and a voice note from a linked
// session; the emulated recipient downloads each from the emulator's HTTPS
// media host, verifies and decrypts it, and must see the very bytes sent,
// as the kind the MIME type names.
func sendMediaToEmulator(t *testing.T, sess *Session, ctl control) {
	t.Helper()
	files := []struct {
		id, mime, filename, caption, kind string
		size                              int
	}{
		{"3EB0MEDIAIMAGE01", "image/png", "", "a picture", "image", 70_000},
		{"3EB0MEDIAPDF0001", "application/pdf", "factura.pdf", "your invoice", "document", 200_001},
		{"3EB0MEDIAVOICE01", "audio/ogg; codecs=opus", "", "", "voice", 5_000},
	}
	want := map[string]string{}
	for _, f := range files {
		data := make([]byte, f.size)
		_, _ = rand.Read(data)
		sum := sha256.Sum256(data)
		want[f.id] = hex.EncodeToString(sum[:])
		out, err := sess.SendMedia(context.Background(), &pb.SendMediaRequest{
			To: emuPeer, Id: f.id, Data: data, Mime: f.mime, Filename: f.filename, Caption: f.caption,
		})
		if err != nil || out.Id != f.id || out.ServerError != 0 {
			t.Fatalf("SendMedia %s: %v %v", f.id, out, err)
		}
	}
	var delivered []emuctl.Delivery
	ctl.get(fmt.Sprintf("/control/devices/%s/sent", emuPhone), &delivered)
	got := map[string]emuctl.Delivery{}
	for _, d := range delivered {
		got[d.ID] = d
	}
	for _, f := range files {
		d, ok := got[f.id]
		switch {
		case !ok || d.Media == nil:
			t.Errorf("%s: recipient has no media: %+v", f.id, d)
		case d.Media.SHA256 != want[f.id] || d.Media.Size != int64(f.size):
			t.Errorf("%s: recipient decrypted %s (%d bytes), sent %s (%d)", f.id, d.Media.SHA256, d.Media.Size, want[f.id], f.size)
		case d.Media.Kind != f.kind || d.Media.MIME != f.mime || d.Media.Filename != f.filename || d.Text != f.caption:
			t.Errorf("%s: recipient sees %+v %+v, want kind %s, %s, %q, caption %q", f.id, d, d.Media, f.kind, f.mime, f.filename, f.caption)
		}
	}
}
