package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
	"github.com/wa-sidecar/wa-sidecar/supervisor/apiclient"
)

// needChromium returns Debian's chromium, skipping the test without it
// except in CI, where .ci/run installs it and its absence is a failure.
func needChromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "" {
		t.Skipf("no chromium (apt-get install chromium): %v", err)
	}
	t.Fatalf("no chromium: %v", err)
	return ""
}

// browser starts a headless Chromium with a new empty profile and returns
// a tab's context; the cleanup closes the browser and waits for it.
func browser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox, // the test may run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1000, 1400),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Straight to 127.0.0.1, whatever proxy the environment names.
		chromedp.Flag("no-proxy-server", true),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs browser steps with a deadline, failing the test with what.
func do(t *testing.T, ctx context.Context, timeout time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("chromium: %s: %v", what, err)
	}
}

// submit runs steps that end in a form's submission and waits for the
// page the server answers: its status must be 200.
func submit(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("chromium: %s: %v", what, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("chromium: %s: the page answered %d %s", what, resp.Status, resp.StatusText)
	}
}

// get runs one browser action that returns a value, with a deadline.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("chromium: %s: %v", what, err)
	}
	return v
}

// until waits for a JavaScript expression to become true in the page.
func until(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout))
}

// The example's organization page in headless Chromium, against a real
// supervisor, workers and the emulator: Start shows a QR, the emulated
// phone scans it, the page turns connected by itself (a screenshot of it
// is saved), and the send form, with text and with a file, queues
// messages that the outbox shows delivered and the recipient's phone has.
func TestDjangoPageInChromium(t *testing.T) {
	exe := needChromium(t)
	needDjango(t)
	t.Parallel()
	const org, phone, typed, to = "djc", "573007915420", "+57 300 123 4569", "573001234569"
	key := rand.Text()
	e := newEnvWith(t, options{tcp: true, before: withAPIKey(key)})
	e.api = apiclient.New(strings.TrimPrefix(e.apiURL, "http://"), key)
	d := startDjango(t, djangoConfig{api: e.apiURL, apiKey: key, org: org})
	tab := browser(t, exe)
	shots := t.TempDir()

	submit(t, tab, "open the page", chromedp.Navigate(d.url+"/"))
	// Before Start the page says what to press, not the API's route.
	do(t, tab, 30*time.Second, "see the page say to press Start",
		until(`document.querySelector("#error").textContent.includes("not registered yet: press Start / link")`, 20*time.Second))
	submit(t, tab, "press Start", chromedp.Click(chromedp.CSS(`#start`)))
	do(t, tab, 40*time.Second, "see a QR",
		until(`document.querySelector("#qr").src.startsWith("data:image/png;base64,") && !document.querySelector("#qr").hidden`,
			30*time.Second),
	)
	if status := get(t, tab, "read the status", chromedp.Text(chromedp.CSS(`#status`))); status != string(state.QRRequired) {
		t.Fatalf("the page shows status %q beside its QR, want %s", status, state.QRRequired)
	}

	// The emulated phone has no camera: it scans the code behind the QR
	// the page shows.
	var s state.Snapshot
	if code := d.getJSON("/status.json", &s); code != http.StatusOK || s.QRCode == "" {
		t.Fatalf("status.json: %d %+v", code, s)
	}
	e.control(http.MethodPost, "/control/scan", map[string]string{"qr_code": s.QRCode, "phone": phone}, nil)

	do(t, tab, 40*time.Second, "see the page turn connected",
		until(`document.querySelector("#status").textContent === "connected" && document.querySelector("#qr").hidden`,
			30*time.Second))
	if detail := get(t, tab, "read the JID", chromedp.Text(chromedp.CSS(`#detail`))); !strings.HasPrefix(detail, "as "+phone+":") {
		t.Fatalf("the connected page says %q, want as %s:...", detail, phone)
	}
	savePNG(t, filepath.Join(shots, "linked.png"), get(t, tab, "screenshot", chromedp.FullScreenshot(100)))
	e.status(org) // notes the worker's pid for the leak check at the end

	// A text through the form: the page comes back naming the message,
	// and its outbox row turns delivered without a reload.
	const text = "Your order #1042 has shipped"
	submit(t, tab, "send a text with the form",
		chromedp.SendKeys(chromedp.CSS(`#id_to`), typed),
		chromedp.SendKeys(chromedp.CSS(`#id_text`), text),
		chromedp.Click(chromedp.CSS(`#send button`)))
	do(t, tab, 60*time.Second, "see the text delivered in the outbox",
		chromedp.WaitVisible(chromedp.CSS(`#sent`)),
		until(`(() => { const r = document.querySelector("#outbox tbody tr[data-id]");
			return r !== null && /^(delivered|read)/.test(r.querySelector(".status").textContent) &&
				r.querySelector(".text").textContent === `+strconv.Quote(text)+` &&
				/^(delivered|read)/.test(document.querySelector("#sent .status").textContent); })()`,
			45*time.Second),
	)
	// A file with a caption, picked in the file field.
	img := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(img, tinyPNG(t), 0o600); err != nil {
		t.Fatal(err)
	}
	submit(t, tab, "send a file with the form",
		chromedp.SendKeys(chromedp.CSS(`#id_to`), typed),
		chromedp.SendKeys(chromedp.CSS(`#id_text`), "The photo"),
		chromedp.SetUploadFiles(chromedp.CSS(`#id_attachment`), []string{img}),
		chromedp.Click(chromedp.CSS(`#send button`)))
	do(t, tab, 60*time.Second, "see both messages delivered in the outbox",
		until(`document.querySelectorAll("#outbox tbody tr[data-id]").length === 2 &&
			[...document.querySelectorAll("#outbox tbody tr[data-id] .status")].every(td => /^(delivered|read)/.test(td.textContent))`,
			45*time.Second),
	)
	savePNG(t, filepath.Join(shots, "sent.png"), get(t, tab, "screenshot", chromedp.FullScreenshot(100)))

	got := e.deliveries(phone, false)
	if len(got) != 2 || got[0].To != to || got[0].Text != text || got[0].Media != nil ||
		got[1].To != to || got[1].Text != "The photo" || got[1].Media == nil || got[1].Media.Kind != "image" {
		t.Fatalf("the recipient shows %+v, want the text and then the photo to %s", got, to)
	}
}

// savePNG writes a PNG (checked to decode) and logs where.
func savePNG(t *testing.T, path string, b []byte) {
	t.Helper()
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// tinyPNG is a 16x16 image to attach.
func tinyPNG(t *testing.T) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range 16 {
		m.Set(i, i, color.RGBA{R: 200, A: 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(fmt.Errorf("encode a PNG: %w", err))
	}
	return b.Bytes()
}
