package cluster

import "github.com/prometheus/client_golang/prometheus"

// MoveResults are the values of cluster_moves_total's result label (the
// move package's Result values); each exists from the start so that
// alerts never see a gap.
var MoveResults = []string{"ok", "failed", "unfinished", "unknown"}

type clusterMetrics struct {
	members prometheus.Gauge
	owned   prometheus.Gauge
	etcdUp  prometheus.Gauge
	moves   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *clusterMetrics {
	m := &clusterMetrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wa_sidecar_cluster_members",
			Help: "Live nodes of the cluster as this node last saw them in etcd."}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wa_sidecar_cluster_owned_orgs",
			Help: "Organizations this node owns."}),
		etcdUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wa_sidecar_cluster_etcd_up",
			Help: "1 when this node's last etcd probe was answered, 0 while it runs fail static."}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wa_sidecar_cluster_moves_total",
			Help: "Moves of an organization off this node, by result."}, []string{"result"}),
	}
	for _, r := range MoveResults {
		m.moves.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.members, m.owned, m.etcdUp, m.moves)
	}
	return m
}
