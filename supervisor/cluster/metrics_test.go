package cluster

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsLintAndExistFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	// Every move result has its series before the first move.
	if n := testutil.CollectAndCount(m.moves); n != len(MoveResults) {
		t.Errorf("%d move series, want %d", n, len(MoveResults))
	}
	c := &Cluster{metrics: m}
	c.CountMove("ok")
	if v := testutil.ToFloat64(m.moves.WithLabelValues("ok")); v != 1 {
		t.Errorf("moves{ok} = %v", v)
	}
}
