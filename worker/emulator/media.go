package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"

	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
)

// maxUpload bounds one encrypted upload: WhatsApp's document ceiling plus
// the padding and MAC.
const maxUpload = 100<<20 + 1<<10

// mediaHost is the emulator's stand-in for WhatsApp's media servers
// (mmg.whatsapp.net): an HTTPS server with its own test CA that takes
// whatsmeow's encrypted uploads (upload.go: POST /mms/{type}/{token}, the
// token being the base64url SHA-256 of the body) and serves them back to
// the emulated recipients. The media_conn iq names it as the only host.
type mediaHost struct {
	log    *slog.Logger
	addr   string // host:port, what media_conn announces
	caPEM  []byte
	pool   *x509.CertPool
	server *http.Server
	client *http.Client

	mu      sync.Mutex
	blobs   map[string][]byte // path -> encrypted bytes
	stall   bool
	release chan struct{} // closed when stalling ends
	waiting int           // uploads held by the stall right now
	uploads int           // uploads stored
	// abandoned counts uploads whose client went before the answer.
	abandoned int
	// downloads and downloaded count the GETs of each path and their bytes.
	downloads  map[string]int
	downloaded map[string]int64
}

func newMediaHost(log *slog.Logger) (*mediaHost, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("media host key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wa-emulator media test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("media host certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("media host certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("media host listen: %w", err)
	}
	m := &mediaHost{
		log:        log.With("part", "media-host"),
		addr:       ln.Addr().String(),
		caPEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool:       x509.NewCertPool(),
		blobs:      make(map[string][]byte),
		release:    make(chan struct{}),
		downloads:  make(map[string]int),
		downloaded: make(map[string]int64),
	}
	m.pool.AddCert(cert)
	m.client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.pool}}}
	close(m.release)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /mms/{type}/{token}", m.handleUpload)
	mux.HandleFunc("GET /mms/{type}/{token}", m.handleDownload)
	m.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}
	go func() {
		if err := m.server.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("media host stopped", "err", err)
		}
	}()
	return m, nil
}

func (m *mediaHost) close() error {
	m.client.CloseIdleConnections()
	return m.server.Close()
}

// mediaConn answers whatsmeow's media_conn query (mediaconn.go).
func (m *mediaHost) mediaConn() waBinary.Node {
	return waBinary.Node{Tag: "media_conn", Attrs: waBinary.Attrs{
		"auth": "emulator-media-auth", "ttl": "300", "auth_ttl": "21600", "max_buckets": "12",
	}, Content: []waBinary.Node{{Tag: "host", Attrs: waBinary.Attrs{"hostname": m.addr}}}}
}

func (m *mediaHost) handleUpload(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUpload))
	if err != nil {
		http.Error(w, "upload unreadable: "+err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	if base64.URLEncoding.EncodeToString(sum[:]) != r.PathValue("token") {
		http.Error(w, "token is not the SHA-256 of the upload", http.StatusBadRequest)
		return
	}
	if r.URL.Query().Get("auth") == "" {
		http.Error(w, "no auth", http.StatusUnauthorized)
		return
	}
	m.mu.Lock()
	release := m.release
	m.waiting++
	m.mu.Unlock()
	// A stalled upload holds its answer, so a test can kill the sender
	// while the upload is in flight.
	select {
	case <-release:
	case <-r.Context().Done():
	}
	m.mu.Lock()
	m.waiting--
	m.mu.Unlock()
	if r.Context().Err() != nil {
		m.mu.Lock()
		m.abandoned++
		m.mu.Unlock()
		m.log.Info("upload abandoned by the client", "path", r.URL.Path)
		return
	}
	m.mu.Lock()
	m.blobs[r.URL.Path] = body
	m.uploads++
	m.mu.Unlock()
	m.log.Info("upload stored", "path", r.URL.Path, "bytes", len(body))
	writeJSON(w, http.StatusOK, map[string]string{
		"url": "https://" + m.addr + r.URL.Path, "direct_path": r.URL.Path,
	})
}

func (m *mediaHost) handleDownload(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	body, ok := m.blobs[r.URL.Path]
	if ok {
		m.downloads[r.URL.Path]++
		m.downloaded[r.URL.Path] += int64(len(body))
	}
	m.mu.Unlock()
	if !ok {
		http.Error(w, "no such media", http.StatusNotFound)
		return
	}
	_, _ = w.Write(body)
}

// put stores a blob the emulator itself uploaded (a phone's history).
func (m *mediaHost) put(path string, body []byte) {
	m.mu.Lock()
	m.blobs[path] = body
	m.mu.Unlock()
}

// downloadsOf is how often path was downloaded, and how many bytes that made.
func (m *mediaHost) downloadsOf(path string) (int, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.downloads[path], m.downloaded[path]
}

// MediaState is GET/PUT /control/media.
type MediaState = emuctl.MediaState

func (m *mediaHost) state() MediaState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MediaState{Stall: m.stall, Waiting: m.waiting, Uploads: m.uploads, Abandoned: m.abandoned}
}

func (m *mediaHost) setStall(stall bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if stall == m.stall {
		return
	}
	m.stall = stall
	if stall {
		m.release = make(chan struct{})
	} else {
		close(m.release)
	}
}

// handleMediaHost is GET /control/media-host: where the media host listens
// and the PEM of its test CA, which a worker in emulator mode trusts for
// media only.
func (s *Server) handleMediaHost(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"host": s.media.addr, "ca_pem": string(s.media.caPEM)})
}

// handleMedia is GET /control/media, and PUT with { "stall": bool } to hold
// every upload's answer until stalling is turned off (or the client goes).
func (s *Server) handleMedia(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		var body struct {
			Stall *bool `json:"stall"`
		}
		if !readJSON(w, r, &body) {
			return
		}
		if body.Stall == nil {
			writeError(w, http.StatusBadRequest, "stall is required")
			return
		}
		s.media.setStall(*body.Stall)
	default:
		w.Header().Set("Allow", "GET, PUT")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not supported; use GET or PUT", r.Method, r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, s.media.state())
}
