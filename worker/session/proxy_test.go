package session

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
	"github.com/wa-sidecar/wa-sidecar/worker/emulatorlink"
	"github.com/wa-sidecar/wa-sidecar/worker/testproxy"
)

const (
	proxyUser = "alice"
	proxyPass = "pr0xy-s3cret"
	wrongPass = "wr0ng-s3cret"
)

// logCapture keeps everything a session logged, for the credential checks.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// capturedSession is a session logging at debug level, whatsmeow's lines
// included, into the returned capture (and to stderr with -v).
func capturedSession(t *testing.T) (*Session, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	var w io.Writer = logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log := slog.New(NewLogHandler(w, slog.LevelDebug))
	det := badmac.New()
	det.InstallSignalLogger(log)
	return New(Options{Log: log, Detector: det}), logs
}

// noSecrets fails the test if any log line or err holds a password.
func noSecrets(t *testing.T, logs *logCapture, err error) {
	t.Helper()
	for _, secret := range []string{proxyPass, wrongPass} {
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the proxy password: %v", err)
		}
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("log line shows the proxy password: %s", line)
			}
		}
	}
}

// TestEmulatorThroughProxy pairs with the emulator through each kind of
// proxy and checks that the proxy carried the session, and that a session
// without a proxy leaves the proxies alone.
func TestEmulatorThroughProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	_, base := startEmulator(t)
	ctl := control{t: t, base: base, hc: emulatorlink.HTTPClient(strings.TrimPrefix(base, "http://"))}
	proxies := map[string]*testproxy.Proxy{
		"socks5": testproxy.StartSOCKS5(t, proxyUser, proxyPass),
		"http":   testproxy.StartHTTPConnect(t, proxyUser, proxyPass),
	}
	ctx := context.Background()

	t.Run("direct", func(t *testing.T) {
		sess, logs := capturedSession(t)
		if _, err := sess.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "direct", AuthDir: filepath.Join(t.TempDir(), "direct"), EmulatorUrl: base}); err != nil {
			t.Fatal(err)
		}
		defer sess.Stop(ctx)
		rec := &recorder{}
		go func() { _ = sess.Events(ctx, rec.sink) }()
		rec.waitUntil(t, "a QR code", func(evs []*pb.Event) bool { return count(evs, func(e *pb.Event) bool { return e.GetQr() != nil }) > 0 })
		for name, p := range proxies {
			if p.Carried() != 0 {
				t.Errorf("the %s proxy carried %d connections of a session without a proxy", name, p.Carried())
			}
		}
		if !strings.Contains(logs.String(), `"egress":"direct"`) {
			t.Error(`no log line shows egress "direct"`)
		}
	})

	for name, p := range proxies {
		t.Run(name, func(t *testing.T) {
			sess, logs := capturedSession(t)
			org := "via-" + name
			if _, err := sess.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: org, AuthDir: filepath.Join(t.TempDir(), org), EmulatorUrl: base, Proxy: p.URL}); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			go func() { _ = sess.Events(ctx, rec.sink) }()
			pair(t, rec, ctl)
			if p.Carried() == 0 {
				t.Errorf("paired, but the %s proxy carried no connection", name)
			}
			if err := sess.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), `"egress":"`+proxy.Egress(p.URL)+`"`) {
				t.Errorf("no log line shows egress %s", proxy.Egress(p.URL))
			}
			noSecrets(t, logs, nil)
		})
	}
}

// TestProxyFailures: a proxy that refuses the credentials or does not
// listen fails Start with an error naming the proxy, never its password.
func TestProxyFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the emulator")
	}
	_, base := startEmulator(t)
	socks := testproxy.StartSOCKS5(t, proxyUser, proxyPass)
	connect := testproxy.StartHTTPConnect(t, proxyUser, proxyPass)
	for name, proxyURL := range map[string]string{
		"socks5 wrong password": strings.Replace(socks.URL, proxyPass, wrongPass, 1),
		"http wrong password":   strings.Replace(connect.URL, proxyPass, wrongPass, 1),
		"socks5 dead":           testproxy.DeadURL(t, "socks5", proxyUser, proxyPass),
		"http dead":             testproxy.DeadURL(t, "http", proxyUser, proxyPass),
	} {
		t.Run(name, func(t *testing.T) {
			sess, logs := capturedSession(t)
			ctx := context.Background()
			_, err := sess.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "failing", AuthDir: filepath.Join(t.TempDir(), "failing"), EmulatorUrl: base, Proxy: proxyURL})
			if err == nil {
				sess.Stop(ctx)
				t.Fatal("Start succeeded")
			}
			t.Logf("Start: %v", err)
			if want := "connect through proxy " + proxy.Name(proxyURL) + ":"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if strings.HasSuffix(name, "dead") && !strings.Contains(err.Error(), "refused") {
				t.Errorf("error %q does not say the connection was refused", err)
			}
			noSecrets(t, logs, err)
		})
	}
	if socks.Carried()+connect.Carried() != 0 {
		t.Errorf("proxies carried %d connections with wrong credentials", socks.Carried()+connect.Carried())
	}
}

// TestWhatsAppThroughProxy: without an emulator, whatsmeow's websocket asks
// the organization's proxy for web.whatsapp.com. The test proxies carry
// nothing off loopback, so the start fails there, naming the proxy.
func TestWhatsAppThroughProxy(t *testing.T) {
	for name, p := range map[string]*testproxy.Proxy{
		"socks5": testproxy.StartSOCKS5(t, proxyUser, proxyPass),
		"http":   testproxy.StartHTTPConnect(t, proxyUser, proxyPass),
	} {
		t.Run(name, func(t *testing.T) {
			sess, logs := capturedSession(t)
			ctx := context.Background()
			_, err := sess.Start(ctx, &pb.StartRequest{Sandbox: "off", OrganizationId: "real", AuthDir: filepath.Join(t.TempDir(), "real"), Proxy: p.URL})
			if err == nil {
				sess.Stop(ctx)
				t.Fatal("Start reached WhatsApp through a proxy that carries nothing off loopback")
			}
			t.Logf("Start: %v", err)
			if got := p.Refused(); !slices.Contains(got, "web.whatsapp.com") {
				t.Errorf("the proxy was asked for %v, want web.whatsapp.com", got)
			}
			if want := "connect through proxy " + proxy.Name(p.URL) + ":"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			noSecrets(t, logs, err)
		})
	}
}

// TestCredentialsScrubbed covers texts that quote the proxy URL, which the
// libraries in use do not produce today but may tomorrow.
func TestCredentialsScrubbed(t *testing.T) {
	proxyURL := "socks5://" + proxyUser + ":" + proxyPass + "@10.0.0.1:1080"
	leaky := errors.New("dial " + proxyURL + ": refused")

	err := throughProxy(leaky, proxyURL)
	if !strings.Contains(err.Error(), "connect through proxy socks5://10.0.0.1:1080: ") || strings.Contains(err.Error(), proxyPass) {
		t.Errorf("throughProxy = %q", err)
	}
	if got := throughProxy(leaky, ""); got != leaky {
		t.Errorf("without a proxy the error changed: %v", got)
	}

	logs := &logCapture{}
	scrub := newScrubHandler(slog.NewJSONHandler(logs, nil))
	log := slog.New(scrub)
	early := log.With("lib", "whatsmeow") // derived before Start, as whatsmeow's is not
	scrub.scrub(proxyURL)
	early.Info("connect failed: "+proxyURL, "error", leaky, "url", proxyURL, slog.Group("g", "inner", proxyURL), "n", 3)
	log.With("proxy", proxyURL).Warn("x")
	out := logs.String()
	if strings.Contains(out, proxyPass) || strings.Count(out, "***") != 5 {
		t.Errorf("scrubbed log:\n%s", out)
	}
	if !strings.Contains(out, `"n":3`) || !strings.Contains(out, `"lib":"whatsmeow"`) {
		t.Errorf("scrubbing changed other attributes:\n%s", out)
	}
}

// preflight reaches WhatsApp's websocket host only through the proxy, so a
// linked device's start fails on a dead or refusing proxy instead of
// leaving whatsmeow to retry it unseen in the background.
func TestPreflight(t *testing.T) {
	refusing := testproxy.StartSOCKS5(t, proxyUser, proxyPass)
	if err := preflight(context.Background(), refusing.URL); err == nil {
		t.Fatal("a proxy that carries nothing off loopback let the preflight through")
	}
	if got := refusing.Refused(); !slices.Contains(got, "web.whatsapp.com") {
		t.Fatalf("the proxy was asked for %v", got)
	}
	if err := preflight(context.Background(), testproxy.DeadURL(t, "http", proxyUser, proxyPass)); err == nil {
		t.Fatal("a dead proxy let the preflight through")
	}
}

// Any user information is a secret to the scrubber, not only a password:
// a token as the user name ("TOKEN@", "TOKEN:@") or a password without a
// user name (":p@"), in the message, in attributes and in derived loggers.
func TestScrubHidesAnyUserinfo(t *testing.T) {
	for _, c := range []struct{ url, secret string }{
		{"socks5://u:p@10.0.0.1:1080", "u:p@"},
		{"http://sk_live_TOKEN@10.0.0.1:8080", "sk_live_TOKEN"},
		{"http://sk_live_TOKEN:@10.0.0.1:8080", "sk_live_TOKEN"},
		{"socks5://:pw-only-secret@10.0.0.1:1080", "pw-only-secret"},
	} {
		logs := &logCapture{}
		scrub := newScrubHandler(slog.NewJSONHandler(logs, nil))
		log := slog.New(scrub)
		early := log.With("lib", "whatsmeow")
		scrub.scrub(c.url)
		leaky := errors.New(`Get "` + c.url + `": proxyconnect tcp: refused`)
		early.Info("connect failed: "+c.url, "error", leaky, "url", c.url)
		log.With("proxy", c.url).Warn("x")
		err := throughProxy(leaky, c.url)
		for what, text := range map[string]string{"log": logs.String(), "error": err.Error()} {
			if strings.Contains(text, c.secret) || !strings.Contains(text, "***@") {
				t.Errorf("%s: the %s shows %q:\n%s", c.url, what, c.secret, text)
			}
		}
	}
}
