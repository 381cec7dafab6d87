package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Every metric the dashboard and the alert rules query exists on a live
// /metrics once one organization is linked: a renamed or dropped metric
// fails here instead of leaving a panel or an alert silently empty.
func TestDashboardAndRulesQueryLiveMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.link("mx", "573007915330")
	name := regexp.MustCompile(`wa_sidecar_[a-z0-9_]+`)
	queried := map[string][]string{}
	for _, file := range []string{
		"../../monitoring/grafana/wa-sidecar.json",
		"../../monitoring/prometheus/wa-sidecar-rules.yml",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		queried[filepath.Base(file)] = name.FindAllString(string(b), -1)
	}
	// worker_rss_bytes comes with the first health check: polled.
	e.eventually(15*time.Second, "every queried metric on /metrics", func() error {
		resp, err := http.Get(e.metricsURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			return err
		}
		var missing []string
		for file, names := range queried {
			for _, m := range names {
				// Cluster mode's series exist only on a node of a cluster:
				// supervisor/e2e/cluster checks those.
				if strings.HasPrefix(m, "wa_sidecar_cluster_") {
					continue
				}
				family := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if f := strings.TrimSuffix(m, suffix); f != m && families[f] != nil {
						family = f
					}
				}
				if families[family] == nil || len(families[family].Metric) == 0 {
					missing = append(missing, file+": "+m)
				}
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("queried but not on /metrics: %v", slices.Compact(missing))
		}
		return nil
	})
	n := 0
	for _, names := range queried {
		n += len(names)
	}
	if n < 20 {
		t.Fatalf("only %d metric references found: the files were not read as meant", n)
	}
}
