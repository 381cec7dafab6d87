package suite

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/wa-sidecar/wa-sidecar/bench/report"
)

// pdfSize is the document the media rows send: 1 MiB, a typical invoice
// with a scan in it.
const pdfSize = 1 << 20

var (
	rowMediaSent      = report.Row{Name: "1 MiB PDF: POST /media + message → sent", Unit: "ms"}
	rowMediaBroadcast = report.Row{Name: "broadcast of 10,000 with media: enqueue, 1 POST", Unit: "ms"}
)

// pdf is pdfSize bytes that start as a PDF does; neither the supervisor
// nor the emulator parses them.
func pdf() []byte {
	head := []byte("%PDF-1.4\n")
	return append(head, bytes.Repeat([]byte{'x'}, pdfSize-len(head))...)
}

// mediaSend uploads the PDF for a connected organization and sends it to
// another linked organization's phone, timing from the upload's POST to
// the message's status showing it sent: the store, the number check, the
// bytes over the contract, the upload to the emulator's media host and the
// send.
func (r *run) mediaSend(ctx context.Context, org, to string) error {
	data := pdf()
	start := time.Now()
	up, err := r.api.UploadMedia(ctx, org, data, "application/pdf", "factura.pdf")
	if err != nil {
		return fmt.Errorf("upload %d bytes for %s: %w", len(data), org, err)
	}
	m, err := r.api.SendMedia(ctx, org, to, up.MediaID, "Your invoice", "")
	if err != nil {
		return fmt.Errorf("send %s from %s: %w", up.MediaID, org, err)
	}
	deadline := time.Now().Add(waitLong)
	for {
		got, err := r.api.Message(ctx, org, m.ID)
		seen := time.Now()
		if err != nil {
			return fmt.Errorf("wait for media message %s of %s: %w", m.ID, org, err)
		}
		switch got.Status {
		case "sent", "delivered", "read":
			r.tab.Add(rowMediaSent, colValue, ms(seen.Sub(start)))
			return nil
		case "failed":
			return fmt.Errorf("media message %s of %s failed: %s", m.ID, org, got.Reason)
		}
		if seen.After(deadline) {
			return fmt.Errorf("media message %s of %s not sent after %s: %s", m.ID, org, waitLong, got.Status)
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// mediaBroadcast times one POST /broadcasts of `enqueues` recipients
// naming the PDF, into the stopped outbox organization: one request
// queues them all, so it is one figure per run, not a percentile.
func (r *run) mediaBroadcast(ctx context.Context) error {
	up, err := r.api.UploadMedia(ctx, outboxOrg, pdf(), "application/pdf", "factura.pdf")
	if err != nil {
		return fmt.Errorf("upload for %s: %w", outboxOrg, err)
	}
	recipients := make([]string, enqueues)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("5735%08d", i)
	}
	start := time.Now()
	if _, err := r.api.CreateMediaBroadcast(ctx, outboxOrg, recipients, up.MediaID, "December catalogue"); err != nil {
		return fmt.Errorf("media broadcast to %d: %w", len(recipients), err)
	}
	r.tab.Add(rowMediaBroadcast, colValue, ms(time.Since(start)))
	return nil
}
