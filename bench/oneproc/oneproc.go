// Package oneproc is the model wa-sidecar's process per organization is
// measured against: K WhatsApp sessions as K whatsmeow clients inside one
// process, sharing one SQLite store, as wuzapi and GOWA run them. Each
// client reaches the emulator the way a worker does (emulatorlink, whatsmeow's
// sqlstore on modernc sqlite with the worker's pragmas), so the two models
// differ in how sessions are spread over processes and little else.
package oneproc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"

	"github.com/wa-sidecar/wa-sidecar/worker/emulator/emuctl"
	"github.com/wa-sidecar/wa-sidecar/worker/emulatorlink"

	// The store's driver, the worker's: pure Go.
	_ "modernc.org/sqlite"
)

// storeDSN is worker/session's: the same pragmas, so that the store costs
// what it costs a worker.
const storeDSN = "file:%s?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"

// Sessions are the linked clients and their store.
type Sessions struct {
	store   *sqlstore.Container
	clients []*whatsmeow.Client
}

// Link opens the store in dir and links one new device per phone through
// the emulator at emulatorURL, all at once; it returns when every client
// is connected, or with the first failure after closing what it opened.
func Link(ctx context.Context, emulatorURL, dir string, phones []string) (*Sessions, error) {
	store, err := sqlstore.New(ctx, "sqlite", fmt.Sprintf(storeDSN, filepath.Join(dir, "whatsmeow.db")), waLog.Noop)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", dir, err)
	}
	s := &Sessions{store: store}
	// Configured one after the other: the first Configure sets whatsmeow's
	// process-global certificate root, which handshakes read.
	for _, phone := range phones {
		cli := whatsmeow.NewClient(store.NewDevice(), waLog.Noop)
		if err := emulatorlink.Configure(cli, emulatorURL, ""); err != nil {
			return nil, errors.Join(fmt.Errorf("configure client for %s: %w", phone, err), s.Close())
		}
		s.clients = append(s.clients, cli)
	}
	ctl := emuctl.New(emulatorURL)
	errs := make([]error, len(phones))
	var wg sync.WaitGroup
	for i, phone := range phones {
		wg.Go(func() { errs[i] = pair(ctx, ctl, s.clients[i], phone) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// pair connects cli for a QR code, has phone scan the first one and waits
// for the connection as the new device that follows the pairing.
func pair(ctx context.Context, ctl *emuctl.Client, cli *whatsmeow.Client, phone string) error {
	connected := make(chan struct{})
	var once sync.Once
	cli.AddEventHandler(func(evt any) {
		if _, ok := evt.(*events.Connected); ok {
			once.Do(func() { close(connected) })
		}
	})
	// The channel must exist before Connect or the first codes are missed.
	qrs, err := cli.GetQRChannel(ctx)
	if err != nil {
		return fmt.Errorf("pair %s: open QR channel: %w", phone, err)
	}
	first := make(chan string, 1)
	go func() {
		// Drained to the end, so that whatsmeow never waits on a full channel.
		for item := range qrs {
			if item.Event == whatsmeow.QRChannelEventCode {
				select {
				case first <- item.Code:
				default:
				}
			}
		}
	}()
	if err := cli.Connect(); err != nil {
		return fmt.Errorf("pair %s: connect: %w", phone, err)
	}
	var code string
	select {
	case code = <-first:
	case <-ctx.Done():
		return fmt.Errorf("pair %s: no QR code: %w", phone, ctx.Err())
	}
	if err := ctl.Scan(ctx, code, phone); err != nil {
		return fmt.Errorf("pair %s: %w", phone, err)
	}
	select {
	case <-connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pair %s: not connected after the scan: %w", phone, ctx.Err())
	}
}

// Close disconnects every client and closes the store.
func (s *Sessions) Close() error {
	for _, cli := range s.clients {
		cli.Disconnect()
	}
	if err := s.store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}
