package outbox_test

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	supmetrics "github.com/wa-sidecar/wa-sidecar/supervisor/metrics"
	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
)

// benchOutbox is an outbox on a real state.db whose organizations never
// connect, so everything accepted stays queued.
func benchOutbox(b *testing.B) *outbox.Outbox {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	register(b, st, "2")
	cfg := config.Default().Messages
	cfg.MaxRecipients = 100000
	o := outbox.New(outbox.Options{
		Config: cfg, Store: st, Metrics: supmetrics.New(prometheus.NewRegistry(), 5),
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Fleet: outbox.FleetFunc(func(string) (outbox.Worker, bool) { return nil, false }),
	})
	if err := o.Start(bg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { o.Stop(); st.Close() })
	return o
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkEnqueue10k: the latency of each of 10,000 POST-equivalent
// enqueues (committed to state.db) into a growing outbox; p50 and p99 per
// message, ns/op per 10,000.
func BenchmarkEnqueue10k(b *testing.B) {
	o := benchOutbox(b)
	var lat []time.Duration
	round := 0
	for b.Loop() {
		round++
		for i := range 10000 {
			start := time.Now()
			_, _, err := o.Send(bg, "2", outbox.SendRequest{To: fmt.Sprintf("5730%08d", i), Text: "Your order has shipped",
				IdempotencyKey: fmt.Sprintf("order-%d-%d", round, i)})
			lat = append(lat, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	slices.Sort(lat)
	b.ReportMetric(millis(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(millis(lat[len(lat)*99/100]), "p99-ms")
}

// BenchmarkBroadcast10k: the time to accept one broadcast of 10,000
// recipients (validated, deduplicated, committed in one transaction).
func BenchmarkBroadcast10k(b *testing.B) {
	o := benchOutbox(b)
	recipients := make([]string, 10000)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("5731%08d", i)
	}
	for b.Loop() {
		if _, _, err := o.CreateBroadcast(bg, "2", outbox.BroadcastRequest{Recipients: recipients, Text: "December offers"}); err != nil {
			b.Fatal(err)
		}
	}
}
