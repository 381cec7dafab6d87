package statusapi

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wa-sidecar/wa-sidecar/supervisor/outbox"
)

// BenchmarkAPIWithFullOutbox: the status API over loopback HTTP while
// organization 2 has 100,000 queued messages. Each op is one request of
// every kind Django makes; p99 per kind is reported in ms.
func BenchmarkAPIWithFullOutbox(b *testing.B) {
	srv, ob := outboxServer(b, 100000)
	recipients := make([]string, 10000)
	var anyMessage string
	for job := range 10 {
		for i := range recipients {
			recipients[i] = fmt.Sprintf("57300%07d", job*len(recipients)+i)
		}
		if _, _, err := ob.CreateBroadcast(b.Context(), "2", outbox.BroadcastRequest{Recipients: recipients, Text: "offer"}); err != nil {
			b.Fatal(err)
		}
	}
	if c := ob.Counts("2"); c.Queued != 100000 {
		b.Fatalf("%d queued", c.Queued)
	}
	page, err := ob.Messages(b.Context(), "2", outbox.Filter{Limit: 1})
	if err != nil || len(page) == 0 {
		b.Fatal(err)
	}
	anyMessage = page[0].ID

	kinds := []struct{ name, method, path, body string }{
		{"status", "GET", "/v1/orgs/2", ""},
		{"list", "GET", "/v1/orgs/2/messages", ""},
		{"queued", "GET", "/v1/orgs/2/messages?status=queued&limit=100", ""},
		{"message", "GET", "/v1/orgs/2/messages/" + anyMessage, ""},
		{"broadcasts", "GET", "/v1/orgs/2/broadcasts", ""},
		{"send", "POST", "/v1/orgs/2/messages", `{"to":"573009999999","text":"Your code is 1234"}`},
	}
	lat := make([][]time.Duration, len(kinds))
	for b.Loop() {
		for k, c := range kinds {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat[k] = append(lat[k], time.Since(start))
			if resp.StatusCode/100 != 2 {
				b.Fatalf("%s: HTTP %d", c.name, resp.StatusCode)
			}
		}
	}
	for k, c := range kinds {
		slices.Sort(lat[k])
		b.ReportMetric(float64(lat[k][len(lat[k])*99/100])/float64(time.Millisecond), c.name+"-p99-ms")
	}
}
