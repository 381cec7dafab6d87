// Package session is the worker's side of the plugin contract: one
// organization's whatsmeow client, its SQLite store, and the events the
// supervisor acts on. A worker process holds exactly one Session, because
// whatsmeow's device properties and libsignal's logger are process-global.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	walog "go.mau.fi/whatsmeow/util/log"

	"github.com/wa-sidecar/wa-sidecar/shared/contract"
	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
	"github.com/wa-sidecar/wa-sidecar/shared/fingerprint"
	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/phone/e164"
	"github.com/wa-sidecar/wa-sidecar/shared/private"
	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
	"github.com/wa-sidecar/wa-sidecar/worker/badmac"
	"github.com/wa-sidecar/wa-sidecar/worker/emulatorlink"
	devicefp "github.com/wa-sidecar/wa-sidecar/worker/fingerprint"

	// The store's driver: pure Go, so the worker builds with CGO_ENABLED=0.
	_ "modernc.org/sqlite"
)

// storeDSN carries the pragmas DESIGN.md measured as required: without
// busy_timeout, concurrent store writes failed decryption with SQLITE_BUSY
// and messages were lost.
const storeDSN = "file:%s?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"

// openStore opens authDir/whatsmeow.db, creating both. The store holds the
// device's keys and the message texts in flight: directory 0700, database
// with its -wal/-shm 0600 whatever the umask, also when an older version
// left them readable.
func openStore(ctx context.Context, authDir string, log walog.Logger) (*sqlstore.Container, error) {
	if err := private.Dir(authDir); err != nil {
		return nil, fmt.Errorf("create auth dir: %w", err)
	}
	path := filepath.Join(authDir, "whatsmeow.db")
	if err := private.SQLite(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	container, err := sqlstore.New(ctx, "sqlite", fmt.Sprintf(storeDSN, path), log)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return container, nil
}

// Options are what a Session needs from the process around it.
type Options struct {
	Log *slog.Logger // required
	// Handler, when set, is told the organization ID so that every log line
	// carries it.
	Handler *LogHandler
	// Level, when set, follows StartRequest.log_level.
	Level *slog.LevelVar
	// Detector must already have libsignal's logger installed.
	Detector *badmac.Detector
	Now      func() time.Time // nil means time.Now
}

// Session implements contract.Worker for one organization.
type Session struct {
	opts   Options
	log    *slog.Logger
	scrub  *scrubHandler // log's handler: Start tells it the proxy
	now    func() time.Time
	events *queue

	mu        sync.Mutex
	starting  bool
	stopped   bool
	fp        fingerprint.Fingerprint
	container *sqlstore.Container
	cli       *whatsmeow.Client
	cancel    context.CancelFunc // ends the QR loop
	// linked is the device's JID once known, kept apart from whatsmeow's
	// Store.ID, which whatsmeow clears concurrently when it deletes the device.
	linked types.JID
	loops  sync.WaitGroup // goroutines Stop waits for before closing the store
}

var _ contract.Worker = (*Session)(nil)

// New returns a Session that does nothing until Start.
func New(opts Options) *Session {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	scrub := newScrubHandler(opts.Log.Handler())
	return &Session{opts: opts, log: slog.New(scrub), scrub: scrub, now: now, events: newQueue()}
}

// Start opens the organization's store and connects; progress arrives on
// Events. A Session starts once: the supervisor runs a new process to relink.
func (s *Session) Start(ctx context.Context, req *pb.StartRequest) (*pb.StartResponse, error) {
	started := s.now()
	if err := orgid.Validate(req.OrganizationId); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if err := checkAuthDir(req.AuthDir); err != nil {
		return nil, fmt.Errorf("start %s: %w", req.OrganizationId, err)
	}
	level, setLevel, err := ParseLevel(req.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("start %s: log_level: %w", req.OrganizationId, err)
	}
	if err := proxy.Validate(req.Proxy); err != nil {
		return nil, fmt.Errorf("start %s: proxy: %w", req.OrganizationId, err)
	}
	// Organizations linked before fingerprints were stored keep the derived one.
	fp := fingerprint.Legacy(req.OrganizationId)
	if req.Fingerprint != "" {
		if fp, err = fingerprint.Parse(req.Fingerprint); err != nil {
			return nil, fmt.Errorf("start %s: %w", req.OrganizationId, err)
		}
	}

	s.mu.Lock()
	if s.starting || s.cli != nil || s.stopped {
		s.mu.Unlock()
		return nil, fmt.Errorf("start %s: this worker was already started; the supervisor runs a new process per start", req.OrganizationId)
	}
	s.starting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.starting = false
		s.mu.Unlock()
	}()

	if setLevel && s.opts.Level != nil {
		s.opts.Level.Set(level)
	}
	if s.opts.Handler != nil {
		s.opts.Handler.SetOrg(req.OrganizationId)
	}
	if req.Proxy != "" {
		s.scrub.scrub(req.Proxy)
	}

	// Before NewClient and before any connect: the registration payload is
	// built from these globals.
	devicefp.Apply(fp)
	askNoHistory()

	// Confined before the store opens, so that nothing parsed from the
	// network ever runs in a process that reaches more than this org.
	probe := newProbe(req.AuthDir)
	confined, err := confine(req)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", req.OrganizationId, err)
	}
	if confined.Partial {
		s.log.Warn("sandbox: the kernel lacks part of it", "sandbox", confined.Summary)
	} else {
		s.log.Info("sandbox in force", "sandbox", confined.Summary)
	}

	waLog := s.opts.Detector.WhatsmeowLogger(s.log)
	container, err := openStore(ctx, req.AuthDir, waLog.Sub("Store"))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", req.OrganizationId, err)
	}
	probe(s.log)
	device, err := container.GetFirstDevice(ctx)
	if err != nil {
		container.Close()
		return nil, fmt.Errorf("start %s: load device: %w", req.OrganizationId, err)
	}
	restoring := device.ID != nil
	if req.Restore && !restoring {
		// The supervisor expected a linked device and the store has none:
		// whatsmeow deleted it on a LOGOUT that the supervisor never saved
		// (a full disk, a crash). Connecting now would open a registration
		// and have the server offer a QR seconds after that LOGOUT, which
		// is what the cooldown exists to prevent; so nothing here touches
		// the network. Report it and wait: the supervisor applies the hold
		// and stops this worker, whose Stop closes the store.
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			container.Close()
			return nil, fmt.Errorf("start %s: stopped while starting", req.OrganizationId)
		}
		s.fp, s.container, s.cli = fp, container, newClient(device, waLog.Sub("Client"))
		s.mu.Unlock()
		s.log.Warn("restore found no device in the store; not connecting, waiting for the supervisor",
			"reason", "device_missing", "auth_dir", req.AuthDir)
		return &pb.StartResponse{DeviceMissing: true, Sandbox: confined.Summary}, nil
	}

	cli := newClient(device, waLog.Sub("Client"))
	if req.Proxy != "" {
		// Before Connect, which builds the websocket from these clients. In
		// emulator mode too: Configure replaces the websocket clients, but
		// media must not leave directly, nor through a proxy from the
		// environment, which whatsmeow follows by default.
		if err := cli.SetProxyAddress(req.Proxy); err != nil {
			container.Close()
			return nil, fmt.Errorf("start %s: set proxy %s: %s", req.OrganizationId, proxy.Name(req.Proxy), proxy.Scrub(err.Error(), req.Proxy))
		}
	}
	if req.Proxy != "" && req.EmulatorUrl == "" {
		if err := preflight(ctx, req.Proxy); err != nil {
			container.Close()
			return nil, fmt.Errorf("start %s: %w", req.OrganizationId, throughProxy(err, req.Proxy))
		}
	}
	if req.EmulatorUrl != "" {
		s.log.Warn("THIS WORKER TALKS TO A LOCAL EMULATOR, NOT TO WHATSAPP; messages go nowhere real",
			"emulator_url", req.EmulatorUrl)
		// Configure is the first to reach the emulator (for its root key),
		// so a dead proxy fails here.
		if err := emulatorlink.Configure(cli, req.EmulatorUrl, req.Proxy); err != nil {
			container.Close()
			return nil, fmt.Errorf("start %s: configure emulator: %w", req.OrganizationId, throughProxy(err, req.Proxy))
		}
	}

	// runCtx ends the QR loop on Stop. The client itself runs on whatsmeow's
	// background context instead: cancelling that would abort whatsmeow's
	// own store writes, such as deleting the device after a LoggedOut that
	// the supervisor answers with an immediate Stop. Disconnect ends its
	// work; closing the store waits for statements already running.
	runCtx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		cancel()
		container.Close()
		return nil, fmt.Errorf("start %s: stopped while starting", req.OrganizationId)
	}
	s.fp, s.container, s.cli, s.cancel = fp, container, cli, cancel
	if restoring {
		s.linked = *device.ID
	}
	s.mu.Unlock()
	tr := &translator{now: s.now, ownJID: func() string { return cli.Store.GetJID().String() }, detector: s.opts.Detector}
	cli.AddEventHandler(func(evt any) { s.handle(tr, cli, evt) })

	s.log.Info("starting session", "restoring", restoring, "fingerprint", fp.String(), "auth_dir", req.AuthDir, "egress", proxy.Egress(req.Proxy), "sandbox", confined.Summary)
	if restoring {
		// A linked session whose first dial fails on the network (the
		// host booting before its network, a short outage) keeps retrying
		// with whatsmeow's own backoff instead of failing Start: crash
		// restarts would otherwise use up crash_limit within seconds.
		cli.InitialAutoReconnect = true
		err = cli.Connect()
	} else {
		err = s.startPairing(runCtx, cli, started, time.Duration(req.QrGiveUpAfterMs)*time.Millisecond)
	}
	if err != nil {
		stopErr := s.Stop(context.WithoutCancel(ctx))
		return nil, errors.Join(fmt.Errorf("start %s: %w", req.OrganizationId, throughProxy(err, req.Proxy)), stopErr)
	}
	return &pb.StartResponse{Restoring: restoring, Sandbox: confined.Summary}, nil
}

// startPairing opens the first QR round here, so that a failed connect is
// Start's error, and leaves the following rounds to the loop.
func (s *Session) startPairing(ctx context.Context, cli *whatsmeow.Client, start time.Time, giveUpAfter time.Duration) error {
	if giveUpAfter <= 0 {
		giveUpAfter = defaultQRGiveUp
	}
	ch, err := qrRound(ctx, cli)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errors.New("stopped while starting")
	}
	s.loops.Add(1) // under mu: Stop's Wait must not race an Add
	s.mu.Unlock()
	go func() {
		defer s.loops.Done()
		s.qrLoop(ctx, cli, ch, start, giveUpAfter)
	}()
	return nil
}

// checkAuthDir rejects paths the supervisor would never build: it joins
// state_dir and the org ID, which gives a clean path. Anything else is a bug
// or an attack, and the directory is about to be created.
func checkAuthDir(dir string) error {
	switch {
	case dir == "":
		return errors.New("auth_dir is empty")
	case filepath.Clean(dir) != dir:
		return fmt.Errorf("auth_dir %q is not a clean path (want %q)", dir, filepath.Clean(dir))
	case !filepath.IsAbs(dir) && (dir == ".." || strings.HasPrefix(dir, "../")):
		return fmt.Errorf("auth_dir %q leaves the working directory", dir)
	case strings.ContainsAny(dir, "?#"):
		// They would end the SQLite URI's path.
		return fmt.Errorf("auth_dir %q contains '?' or '#'", dir)
	}
	return nil
}

// handle runs inside whatsmeow's event dispatch: it must not block.
func (s *Session) handle(tr *translator, cli *whatsmeow.Client, evt any) {
	ev := tr.translate(evt)
	if ev == nil {
		s.logUntranslated(evt)
		return
	}
	if _, ok := evt.(*events.Disconnected); ok && s.linkedJID().IsEmpty() {
		// Not linked: whatsmeow does not reconnect by itself here, the QR
		// loop opens the next round; "disconnected, reconnecting by itself"
		// would be a wrong status upstream.
		s.log.Info("disconnected while waiting for a QR scan")
		return
	}
	s.logEvent(ev)
	switch e := evt.(type) {
	case *events.PairSuccess:
		s.setLinked(e.ID)
	case *events.LoggedOut:
		s.afterLogout(cli, ev)
		return
	case *events.StreamReplaced:
		// whatsmeow already expects the disconnect and will not reconnect;
		// closing our side too means a slow server close cannot turn into a
		// plain disconnect and an auto-reconnect (EMULATOR.md's race). The
		// supervisor decides what happens next, in a new process.
		go cli.Disconnect()
	}
	s.publish(ev)
}

func (s *Session) linkedJID() types.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.linked
}

func (s *Session) setLinked(jid types.JID) {
	s.mu.Lock()
	s.linked = jid
	s.mu.Unlock()
}

// afterLogout makes sure the store no longer holds the removed device before
// the supervisor hears of the LoggedOut: whatsmeow deletes it too, but in a
// goroutine that races the supervisor's Stop. A store that kept the device
// would restore it on the next start and be logged out again, forever.
func (s *Session) afterLogout(cli *whatsmeow.Client, ev *pb.Event) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	jid, container := s.linked, s.container
	s.loops.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.loops.Done()
		cli.Disconnect() // as for StreamReplaced
		if !jid.IsEmpty() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Deleting by JID with a device of our own: whatsmeow's Device is
			// being cleared by whatsmeow at the same time.
			if err := container.DeleteDevice(ctx, &store.Device{ID: &jid}); err != nil {
				s.log.Error("delete logged-out device from the store", "jid", jid.String(), "error", err)
			}
		}
		s.publish(ev)
	}()
}

func (s *Session) publish(ev *pb.Event) {
	if !s.events.publish(ev) {
		s.log.Error("event dropped: nobody has drained the event stream", "event", fmt.Sprintf("%T", ev.Kind))
	}
}

func (s *Session) logEvent(ev *pb.Event) {
	switch k := ev.Kind.(type) {
	case *pb.Event_BadMac:
		s.log.Warn("Bad MAC: message failed MAC verification with every session state", "message_id", k.BadMac.MessageId, "sender", k.BadMac.Sender)
	case *pb.Event_DecryptFailure:
		s.log.Warn("message could not be decrypted", "message_id", k.DecryptFailure.MessageId, "sender", k.DecryptFailure.Sender, "reason", k.DecryptFailure.Reason)
	case *pb.Event_MessageReceived:
		s.log.Debug("message received", "message_id", k.MessageReceived.MessageId)
	case *pb.Event_LoggedOut:
		s.log.Warn("logged out by WhatsApp", "on_connect", k.LoggedOut.OnConnect, "reason", k.LoggedOut.Reason)
	case *pb.Event_StreamReplaced:
		s.log.Warn("session replaced by another connection with the same keys")
	case *pb.Event_TemporaryBan:
		s.log.Warn("temporarily banned", "code", k.TemporaryBan.Code, "expires_at_unix_ms", k.TemporaryBan.ExpiresAtUnixMs)
	case *pb.Event_ConnectFailure:
		s.log.Warn("connect failed", "reason", k.ConnectFailure.Reason, "message", k.ConnectFailure.Message)
	case *pb.Event_Connected:
		s.log.Info("connected", "jid", k.Connected.Jid)
	case *pb.Event_PairSuccess:
		s.log.Info("paired", "jid", k.PairSuccess.Jid, "platform", k.PairSuccess.Platform)
	case *pb.Event_Disconnected:
		s.log.Info("disconnected; whatsmeow reconnects by itself")
	}
}

// logUntranslated keeps the whatsmeow events that explain trouble visible
// in the logs even though the contract has no event for them.
func (s *Session) logUntranslated(evt any) {
	switch e := evt.(type) {
	case *events.PairError:
		s.log.Warn("pairing failed locally", "error", e.Error)
	case *events.StreamError:
		s.log.Warn("unknown stream error from the server", "code", e.Code)
	case *events.KeepAliveTimeout:
		s.log.Warn("keepalive timed out", "errors", e.ErrorCount)
	case *events.CATRefreshError:
		s.log.Warn("CAT refresh failed", "error", e.Error)
	case *events.Message:
		if n := historyNotification(e); n != nil {
			s.log.Info("history sync notification acknowledged, not downloaded",
				"sync_type", n.GetSyncType().String(), "blob_bytes", n.GetFileLength())
		}
	}
}

// Events streams events to sink until the session stops (nil), ctx ends or
// sink fails. Events from before the call were kept for it.
func (s *Session) Events(ctx context.Context, sink func(*pb.Event) error) error {
	if err := s.events.subscribe(ctx, sink); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return nil
}

// Ping reports the process's health and whether the session is online.
func (s *Session) Ping(context.Context) (*pb.PingResponse, error) {
	rss, err := residentBytes()
	if err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	cli := s.client()
	return &pb.PingResponse{
		Pid:       int32(os.Getpid()),
		RssBytes:  rss,
		Connected: cli != nil && cli.IsConnected() && cli.IsLoggedIn(),
	}, nil
}

// Stop disconnects, closes the store and ends the event stream. It keeps
// the auth store and may be called more than once.
func (s *Session) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	cli, container, cancel := s.cli, s.container, s.cancel
	s.mu.Unlock()

	if cancel != nil {
		cancel()
	}
	s.waitLoops(ctx)
	if cli != nil {
		cli.Disconnect()
	}
	var err error
	if container != nil {
		if cerr := container.Close(); cerr != nil {
			err = fmt.Errorf("stop: close store: %w", cerr)
		}
	}
	s.events.close()
	s.log.Info("session stopped", "dropped_events", s.events.droppedCount())
	return err
}

// Logout unlinks this device on WhatsApp's side and deletes the local
// device; the supervisor archives the directory and decides about a relink.
func (s *Session) Logout(ctx context.Context) error {
	cli := s.client()
	if cli == nil {
		return errors.New("logout: session not started")
	}
	if err := cli.Logout(ctx); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	s.log.Info("logged out on request")
	return nil
}

// PairPhone asks WhatsApp for an 8-character code to type on the phone. The
// device announces itself as the same browser and OS its QR registration
// uses, so the two paths do not give one organization two fingerprints.
func (s *Session) PairPhone(ctx context.Context, phone string) (string, error) {
	if err := e164.Validate(phone); err != nil {
		return "", fmt.Errorf("pair phone: %w", err)
	}
	cli := s.client()
	switch {
	case cli == nil:
		return "", errors.New("pair phone: session not started")
	case cli.Store.GetJID() != types.EmptyJID:
		return "", errors.New("pair phone: this device is already linked")
	case !cli.IsConnected():
		return "", errors.New("pair phone: not connected to WhatsApp yet; retry in a few seconds")
	}
	s.mu.Lock()
	fp := s.fp
	s.mu.Unlock()
	code, err := cli.PairPhone(ctx, phone, true, devicefp.PairClient(fp), fp.DisplayName())
	if err != nil {
		return "", fmt.Errorf("pair phone: %w", err)
	}
	s.log.Info("pairing code issued")
	return code, nil
}

// waitLoops waits for the session's goroutines, but not past ctx: a QR
// round stuck dialing must not keep the process from exiting.
func (s *Session) waitLoops(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.loops.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("stopping without waiting for the session's goroutines", "error", ctx.Err())
	}
}

func (s *Session) client() *whatsmeow.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cli
}
