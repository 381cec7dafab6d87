package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/worker/emulator"
	"github.com/wa-sidecar/wa-sidecar/worker/testproxy"
)

// mediaStall turns the emulator media host's upload stall on or off.
func (e *env) mediaStall(on bool) {
	e.t.Helper()
	e.control(http.MethodPut, "/control/media", map[string]bool{"stall": on}, nil)
}

// mediaWait waits until the media host's state passes check.
func (e *env) mediaWait(what string, check func(emulator.MediaState) bool) {
	e.t.Helper()
	e.eventually(60*time.Second, what, func() error {
		var st emulator.MediaState
		e.control(http.MethodGet, "/control/media", nil, &st)
		if !check(st) {
			return fmt.Errorf("media host: %+v", st)
		}
		return nil
	})
}

// An image, a PDF and a voice note arrive byte for byte, each once, across a
// worker kill -9 and a supervisor kill -9 that land mid-upload.
func TestMediaSurvivesKillsMidUpload(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, options{tcp: true, extra: "[media]\nmax_bytes = \"2MiB\"\n"})
	phone := "573007915311"
	e.link("md", phone)
	ctx := context.Background()

	files := []struct{ mime, filename, caption string }{
		{"image/png", "", "the picture"},
		{"application/pdf", "factura.pdf", "your invoice"},
		{"audio/ogg; codecs=opus", "", ""},
	}
	sizes := []int{300_000, 1 << 20, 40_000}
	ids := make([]string, len(files))
	sums := map[string]string{} // media_id -> hex sha256 of the bytes
	for i, f := range files {
		data := make([]byte, sizes[i])
		_, _ = rand.Read(data)
		up, err := e.api.UploadMedia(ctx, "md", data, f.mime, f.filename)
		if err != nil {
			t.Fatalf("upload %s: %v", f.mime, err)
		}
		sum := sha256.Sum256(data)
		if up.MediaID != "sha256:"+hex.EncodeToString(sum[:]) || up.Size != int64(len(data)) {
			t.Fatalf("upload %s answered %+v", f.mime, up)
		}
		ids[i], sums[up.MediaID] = up.MediaID, hex.EncodeToString(sum[:])
	}

	texts := map[string]string{} // WhatsApp ID -> caption
	media := map[string]string{} // WhatsApp ID -> media id
	send := func(i int, to string) {
		m, err := e.api.SendMedia(ctx, "md", to, ids[i], files[i].caption, "")
		if err != nil {
			t.Fatalf("send %s: %v", files[i].mime, err)
		}
		texts[m.WAMessageID], media[m.WAMessageID] = files[i].caption, ids[i]
	}

	// The image's upload stalls; the worker dies in the middle of it.
	e.mediaStall(true)
	send(0, "573001260001")
	e.mediaWait("the image upload in flight", func(st emulator.MediaState) bool { return st.Waiting == 1 })
	first := e.status("md").WorkerPID
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.mediaWait("the upload cut off by the kill", func(st emulator.MediaState) bool { return st.Abandoned == 1 && st.Waiting == 0 })
	// The new worker uploads it again and the PDF waits behind it; the
	// supervisor dies in the middle of that upload, and the worker with it.
	send(1, "573001260002")
	e.eventually(60*time.Second, "a new worker connected", func() error {
		if s := e.status("md"); s.Status != "connected" || s.WorkerPID == first {
			return fmt.Errorf("status %s, worker %d", s.Status, s.WorkerPID)
		}
		return nil
	})
	e.mediaWait("an upload in flight from the new worker", func(st emulator.MediaState) bool { return st.Waiting == 1 })
	e.killSupervisor()
	e.mediaWait("the second upload cut off", func(st emulator.MediaState) bool {
		return st.Abandoned == 2 && st.Waiting == 0 && st.Uploads == 0
	})
	e.mediaStall(false)
	e.startSupervisor()
	send(2, "573001260003")

	e.eventually(90*time.Second, "the three files received", func() error {
		if got := len(e.onlyOurs(phone, texts)); got < 3 {
			return fmt.Errorf("%d received", got)
		}
		return nil
	})
	for _, d := range e.exactlyOnce(phone, texts) {
		want := files[0]
		for i, id := range ids {
			if id == media[d.ID] {
				want = files[i]
			}
		}
		if d.Media == nil || "sha256:"+d.Media.SHA256 != media[d.ID] || d.Media.SHA256 != sums[media[d.ID]] {
			t.Errorf("%s: the recipient decrypted %+v, want the bytes of %s", d.ID, d.Media, media[d.ID])
			continue
		}
		if d.Media.MIME != want.mime || d.Media.Filename != want.filename {
			t.Errorf("%s: the recipient sees %+v, want %s %q", d.ID, d.Media, want.mime, want.filename)
		}
	}
	kinds := map[string]bool{}
	for _, d := range e.deliveries(phone, false) {
		kinds[d.Media.Kind] = true
	}
	if !kinds["image"] || !kinds["document"] || !kinds["voice"] {
		t.Errorf("kinds received: %v, want image, document and voice", kinds)
	}
	for _, m := range e.allMessages("md") {
		if m.Status != "sent" && m.Status != "delivered" {
			t.Errorf("message %s ended %s (%s)", m.ID, m.Status, m.Reason)
		}
	}

	// Bad input to the new route: one JSON 4xx naming what is wrong.
	for _, c := range []struct {
		path, body string
		code       int
		says       string
	}{
		{"/v1/orgs/md/media", `{"data":"%%%","mime":"image/png"}`, 400, "base64"},
		{"/v1/orgs/md/media", `{"data":"aGVsbG8="}`, 400, "mime is missing"},
		{"/v1/orgs/md/media", fmt.Sprintf(`{"data":"%s","mime":"application/pdf"}`, strings.Repeat("A", 3<<20)), 413, "media.max_bytes"},
		{"/v1/orgs/md/messages", `{"to":"573001260004","media":"sha256:` + strings.Repeat("0", 64) + `"}`, 400, "names no uploaded file"},
	} {
		resp, err := e.http.Post(e.apiURL+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Error string }
		decodeErr := jsonDecode(resp, &got)
		if resp.StatusCode != c.code || decodeErr != nil || !strings.Contains(got.Error, c.says) {
			t.Errorf("POST %s: %d %q (%v), want %d naming %q", c.path, resp.StatusCode, got.Error, decodeErr, c.code, c.says)
		}
	}
}

func jsonDecode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// An organization behind a SOCKS5 proxy uploads its media through it too
// (the upload is a connection of its own, to the media host), and a 6 MiB
// file crosses the supervisor-worker contract, beyond gRPC's 4 MiB default.
func TestMediaGoesThroughTheProxy(t *testing.T) {
	t.Parallel()
	socks := testproxy.StartSOCKS5(t, "carol", "socks-pw-m3d1")
	e := newEnvWith(t, options{tcp: true})
	if code, body := e.startWith("mp", map[string]string{"proxy": socks.URL}); code != http.StatusAccepted {
		t.Fatalf("start: %d %s", code, body)
	}
	phone := "573007915312"
	e.scanQR("mp", phone)
	ctx := context.Background()
	data := make([]byte, 6<<20)
	_, _ = rand.Read(data)
	up, err := e.api.UploadMedia(ctx, "mp", data, "image/jpeg", "")
	if err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "the websocket through the proxy settled", func() error {
		if e.status("mp").Status != "connected" {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	before := socks.Carried()
	m, err := e.api.SendMedia(ctx, "mp", "573001280001", up.MediaID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	e.waitMessages("mp", []string{m.ID}, 30*time.Second, "sent", "delivered")
	got := e.deliveries(phone, false)
	sum := sha256.Sum256(data)
	if len(got) != 1 || got[0].Media == nil || got[0].Media.SHA256 != hex.EncodeToString(sum[:]) || got[0].Media.Kind != "image" {
		t.Fatalf("the recipient got %+v", got)
	}
	if socks.Carried() == before {
		t.Fatal("the upload did not go through the organization's proxy")
	}
	if refused := socks.Refused(); len(refused) > 0 {
		t.Fatalf("the worker asked the proxy for %v", refused)
	}
}
