package statusapi

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/lifecycle"
	"github.com/wa-sidecar/wa-sidecar/supervisor/mediastore"
	"github.com/wa-sidecar/wa-sidecar/supervisor/metrics"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

// mediaServer is the API with a real outbox and media library, files of at
// most maxBytes.
func mediaServer(t *testing.T, maxBytes int64) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveOrg(t.Context(), lifecycle.Record{ID: "2", Status: state.Queued, Run: true}, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lib, err := mediastore.Open(filepath.Join(dir, "media"), st, log)
	if err != nil {
		t.Fatal(err)
	}
	ob := outbox.New(outbox.Options{Config: config.Default().Messages, Store: st, Metrics: metrics.New(prometheus.NewRegistry(), 5),
		Log: log, Media: lib, Fleet: outbox.FleetFunc(func(string) (outbox.Worker, bool) { return nil, false })})
	if err := ob.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(decorated{newFakeFleet(), ob}, Options{Listen: "127.0.0.1:0", Log: log, Outbox: ob,
		Media: lib, MediaMaxBytes: maxBytes}))
	t.Cleanup(func() { srv.Close(); ob.Stop(); st.Close() })
	return srv
}

func TestUploadAndSendMedia(t *testing.T) {
	srv := mediaServer(t, 1000)
	pdf := base64.StdEncoding.EncodeToString([]byte("%PDF-1.7 factura"))
	body := fmt.Sprintf(`{"data":%q,"mime":"application/pdf","filename":"factura.pdf"}`, pdf)
	code, got := post(t, srv.URL+"/v1/orgs/2/media", body)
	want := mediastore.ID([]byte("%PDF-1.7 factura"))
	if code != http.StatusCreated || got["media_id"] != want || got["size"] != float64(16) || got["mime"] != "application/pdf" || got["filename"] != "factura.pdf" {
		t.Fatalf("upload: %d %v", code, got)
	}
	if code, again := post(t, srv.URL+"/v1/orgs/2/media", body); code != http.StatusCreated || again["media_id"] != want {
		t.Fatalf("the same bytes again: %d %v", code, again)
	}
	code, msg := post(t, srv.URL+"/v1/orgs/2/messages", fmt.Sprintf(`{"to":"573001230001","media":%q,"text":"your invoice"}`, want))
	if code != http.StatusAccepted || msg["media"] != want {
		t.Fatalf("media message: %d %v", code, msg)
	}
	code, job := post(t, srv.URL+"/v1/orgs/2/broadcasts", fmt.Sprintf(`{"recipients":["573001230001","573001230002"],"media":%q}`, want))
	if code != http.StatusAccepted || job["media"] != want || job["total"] != float64(2) {
		t.Fatalf("media broadcast: %d %v", code, job)
	}
}

// Every bad input gets one JSON 4xx that names what is wrong.
func TestMediaBadInputs(t *testing.T) {
	srv := mediaServer(t, 1000)
	ok := base64.StdEncoding.EncodeToString([]byte("hello"))
	unknown := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct {
		name, path, body string
		code             int
		says             string
	}{
		{"bad base64", "/v1/orgs/2/media", `{"data":"not base64!","mime":"image/png"}`, 400, "data is not standard base64"},
		{"missing data", "/v1/orgs/2/media", `{"mime":"image/png"}`, 400, "data is missing"},
		{"missing mime", "/v1/orgs/2/media", fmt.Sprintf(`{"data":%q}`, ok), 400, "mime is missing"},
		{"bad mime", "/v1/orgs/2/media", fmt.Sprintf(`{"data":%q,"mime":"pdf"}`, ok), 400, `mime "pdf"`},
		{"path in filename", "/v1/orgs/2/media", fmt.Sprintf(`{"data":%q,"mime":"application/pdf","filename":"../x.pdf"}`, ok), 400, "filename"},
		{"just over max_bytes", "/v1/orgs/2/media", fmt.Sprintf(`{"data":%q,"mime":"application/pdf"}`, base64.StdEncoding.EncodeToString(make([]byte, 1001))), 413, "media.max_bytes allows 1000"},
		{"far over max_bytes", "/v1/orgs/2/media", fmt.Sprintf(`{"data":%q,"mime":"application/pdf"}`, base64.StdEncoding.EncodeToString(make([]byte, 200_000))), 413, "media.max_bytes"},
		{"unknown field", "/v1/orgs/2/media", fmt.Sprintf(`{"data":%q,"mime":"image/png","name":"x"}`, ok), 400, "name"},
		{"unknown org", "/v1/orgs/99/media", fmt.Sprintf(`{"data":%q,"mime":"image/png"}`, ok), 404, "99"},
		{"unknown media id", "/v1/orgs/2/messages", fmt.Sprintf(`{"to":"573001230001","media":%q}`, unknown), 400, "media: " + unknown + " names no uploaded file"},
		{"malformed media id", "/v1/orgs/2/messages", `{"to":"573001230001","media":"factura.pdf"}`, 400, "media: must be a media_id"},
		{"unknown media in broadcast", "/v1/orgs/2/broadcasts", fmt.Sprintf(`{"recipients":["573001230001"],"media":%q}`, unknown), 400, "names no uploaded file"},
	} {
		code, got := post(t, srv.URL+c.path, c.body)
		msg, _ := got["error"].(string)
		if code != c.code || !strings.Contains(msg, c.says) {
			t.Errorf("%s: %d %v, want %d saying %q", c.name, code, got, c.code, c.says)
		}
	}
}
