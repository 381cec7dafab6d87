// Package emulator is a local stand-in for WhatsApp's multidevice server.
//
// It speaks the real protocol (Noise XX with a test certificate chain,
// binary XML nodes, Signal-encrypted messages) to the unchanged whatsmeow
// client, so that the worker and the end-to-end tests exercise pairing,
// login, decryption failures and logouts without reaching WhatsApp. A fake
// phone signs pairings; emulated peers keep their own Signal stores. Tests
// and operators drive it through the JSON control API under /control/ (the
// contract is the table in the design notes, ../shared/DESIGN.md from the
// repository root). Three endpoints are not in that table yet:
// GET /control/unknown-iqs lists the iqs the emulator did not understand,
// which a test run should treat as a failure; POST /control/pair-code with
// { "phone", "code" } is the phone's user typing the code that
// Client.PairPhone returned for that phone (paircode.go), answering { "jid" }
// like /control/scan, or 409 for a wrong code; POST
// /control/devices/{phone}/ban with { "seconds", "code" } (both optional,
// 60 and 101) bans the device temporarily: its next login and every login
// for the following seconds get <failure reason="402" code expire>
// (whatsmeow's events.TemporaryBan), later ones succeed; a connected device
// is disconnected so that its reconnect is that login.
//
// Media (media.go, mediarecv.go): the media_conn iq names an HTTPS media
// host with its own test CA (GET /control/media-host gives its address and
// CA) that takes whatsmeow's encrypted uploads; a recipient of a media
// message downloads the file there, verifies and decrypts it, and the
// /sent view shows its kind, MIME type, size, file name and the SHA-256 of
// the decrypted bytes. PUT /control/media { "stall": true } holds every
// upload's answer so that a test can kill the sender mid-upload.
//
// History (history.go): once a newly linked device has uploaded its
// prekeys, its phone uploads a history blob (32 KiB of decoded history by
// default) to the media host and sends the device a history sync
// notification, as WhatsApp does. GET /control/history lists every
// notification with the device's hist_sync receipt and the blob's
// downloads; PUT /control/history { "bytes": n } sizes the history of later
// links (0: none). GET /control/devices shows the DeviceProps each device
// registered with (device_props), the history it asked for included.
//
// Point a client at it with Configure. Every number other than the
// device's own is an emulated peer with one device; messages to and from
// peers need the device to be online (the emulator keeps no offline queue),
// and retry receipts are counted but not answered with a resend.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.mau.fi/whatsmeow/socket"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/util/keys"

	// The emulated peers' Signal stores live in SQLite, as the worker's do.
	_ "modernc.org/sqlite"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Logger receives one structured event per line; nil means slog.Default().
	Logger *slog.Logger
	// CloseGrace is how long the server keeps a connection open after a
	// stream:error or failure when the client does not close it first.
	// Zero means one second.
	CloseGrace time.Duration
}

// Server is the emulated WhatsApp server. Create it with New.
type Server struct {
	log        *slog.Logger
	closeGrace time.Duration
	root       *keys.KeyPair
	static     *keys.KeyPair
	certChain  []byte

	storeDir string
	peerDB   *sqlstore.Container
	media    *mediaHost

	httpServer *http.Server

	mu          sync.Mutex
	conns       map[*conn]struct{}
	pairing     map[string]*conn // QR ref -> connection that offered it
	codePairing map[string]*conn // phone number -> connection that asked for a pairing code for it
	phones      map[string]*phone
	unknownIQs  []string
	retryCounts map[string]int // message id -> retry receipts received
	// registrations counts the pair-device offers made: each one is a new
	// registration the server opened and a QR the client could show.
	registrations int
	closed        bool
	// offWhatsApp holds the numbers PUT /control/directory marked as
	// having no WhatsApp account.
	offWhatsApp map[string]bool
	// historyBytes sizes the history each new link is sent (0: none);
	// history is every notification sent (history.go).
	historyBytes int
	history      []*sentHistory
	// background counts the goroutines Close waits for before it closes
	// the stores they use.
	background sync.WaitGroup

	// peersMu guards peers separately so that creating a peer's store (a
	// database write) does not hold up the protocol paths under mu.
	peersMu sync.Mutex
	peers   map[string]*peer
}

// New creates a server with a fresh static key and certificate chain and an
// empty SQLite store (in a temporary directory) for the emulated peers.
func New(opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	grace := opts.CloseGrace
	if grace == 0 {
		grace = time.Second
	}
	s := &Server{
		log:         log.With("component", "wa-emulator"),
		closeGrace:  grace,
		root:        processRootKey(),
		static:      keys.NewKeyPair(),
		conns:       make(map[*conn]struct{}),
		pairing:     make(map[string]*conn),
		codePairing: make(map[string]*conn),
		phones:      make(map[string]*phone),
		peers:       make(map[string]*peer),
		retryCounts: make(map[string]int),

		historyBytes: defaultHistoryBytes,
	}
	var err error
	if s.certChain, err = buildCertChain(s.root, *s.static.Pub); err != nil {
		return nil, err
	}
	if s.storeDir, err = os.MkdirTemp("", "wa-emulator-"); err != nil {
		return nil, fmt.Errorf("create peer store directory: %w", err)
	}
	dsn := "file:" + filepath.Join(s.storeDir, "peers.db") +
		"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	s.peerDB, err = sqlstore.New(context.Background(), "sqlite", dsn, waLogger(s.log.With("part", "peer-store")))
	if err != nil {
		_ = os.RemoveAll(s.storeDir)
		return nil, fmt.Errorf("open peer store: %w", err)
	}
	if s.media, err = newMediaHost(s.log); err != nil {
		_ = s.peerDB.Close()
		_ = os.RemoveAll(s.storeDir)
		return nil, err
	}
	return s, nil
}

// RootKey is the public key of the test certificate root; clients must trust
// it in place of WhatsApp's (whatsmeow.WACertPubKey).
func (s *Server) RootKey() [32]byte {
	return *s.root.Pub
}

// UnknownIQs lists the iqs (as "xmlns type child") that the emulator did not
// understand, in arrival order. A whatsmeow upgrade that adds a query shows
// up here; tests should fail when it is not empty.
func (s *Server) UnknownIQs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unknownIQs)
}

// RetryReceipts is how many retry receipts devices sent for the message
// with that id: whatsmeow sends one for each message it cannot decrypt.
func (s *Server) RetryReceipts(messageID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retryCounts[messageID]
}

// Handler serves the websocket at /ws/chat, the control API under
// /control/, and the media host's /mms/ routes: a worker in emulator mode
// reaches the media host through this one address, as it reaches the
// websocket (plain HTTP where WhatsApp has TLS), so that its sandbox needs
// no port beyond the emulator's.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws/chat", s.serveWebsocket)
	mux.HandleFunc("POST /mms/{type}/{token}", s.media.handleUpload)
	mux.HandleFunc("GET /mms/{type}/{token}", s.media.handleDownload)
	s.registerControl(mux)
	return mux
}

// Listen listens on addr (e.g. "127.0.0.1:7000") and serves until Close.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Serve serves on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return errors.New("emulator is closed")
	}
	s.httpServer = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	srv := s.httpServer
	s.mu.Unlock()
	s.log.Info("emulator listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// Close stops serving, drops every client connection and deletes the peer store.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.httpServer
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	var errs []error
	if srv != nil {
		errs = append(errs, srv.Close())
	}
	for _, c := range conns {
		c.close()
		<-c.done
	}
	s.background.Wait()
	errs = append(errs, s.media.close(), s.peerDB.Close(), os.RemoveAll(s.storeDir))
	return errors.Join(errs...)
}

func (s *Server) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// whatsmeow sends Origin: https://web.whatsapp.com (socket.Origin).
		OriginPatterns: []string{"web.whatsapp.com"},
	})
	if err != nil {
		s.log.Warn("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(int64(len(socket.WAConnHeader) + socket.FrameLengthSize + socket.FrameMaxSize))
	c := newConn(s, ws, r.RemoteAddr)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer s.dropConn(c)
	c.run()
}

func (s *Server) dropConn(c *conn) {
	c.close()
	s.mu.Lock()
	delete(s.conns, c)
	for ref, pc := range s.pairing {
		if pc == c {
			delete(s.pairing, ref)
		}
	}
	for number, pc := range s.codePairing {
		if pc == c {
			delete(s.codePairing, number)
		}
	}
	if c.device != nil && c.device.conn == c {
		c.device.conn = nil
	}
	s.mu.Unlock()
	close(c.done)
}

// Registrations is how many registrations (pair-device offers, the QR
// codes' source) the server has opened since it started: a test proves with
// it that a client never asked for one.
func (s *Server) Registrations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.registrations
}

func (s *Server) recordUnknownIQ(what string) {
	s.mu.Lock()
	s.unknownIQs = append(s.unknownIQs, what)
	s.mu.Unlock()
}
