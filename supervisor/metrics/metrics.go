// Package metrics exports the supervisor's Prometheus series, prefixed
// wa_sidecar_ and labelled by organization. Labels are bounded on purpose:
// one series per organization (and per status or reason), never per message
// or per JID, so a busy host cannot blow up Prometheus.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wa-sidecar/wa-sidecar/shared/state"
)

const namespace = "wa_sidecar"

// Metrics holds every collector. All methods are safe for concurrent use.
type Metrics struct {
	workersLive       *prometheus.GaugeVec
	liveMu            sync.Mutex
	egresses          map[string]bool
	workersMax        prometheus.Gauge
	startQueueDepth   prometheus.Gauge
	workerStart       prometheus.Histogram
	sendSeconds       prometheus.Histogram
	persistErrors     prometheus.Counter
	broadcastsActive  prometheus.Gauge
	broadcastsStalled prometheus.Gauge
	sendRestricted    *prometheus.GaugeVec
	webhookDeliveries *prometheus.CounterVec
	webhookQueue      prometheus.Gauge
	webhookDead       prometheus.Gauge
	pruned            *prometheus.CounterVec

	orgStatus       *prometheus.GaugeVec
	workerRSS       *prometheus.GaugeVec
	outboxDepth     *prometheus.GaugeVec
	badMACErrors    *prometheus.CounterVec
	badMACTrips     *prometheus.CounterVec
	qrCodes         *prometheus.CounterVec
	messagesSent    *prometheus.CounterVec
	messagesFailed  *prometheus.CounterVec
	sessionsCleared *prometheus.CounterVec
	logouts         *prometheus.CounterVec
	workerRestarts  *prometheus.CounterVec
	decryptFailures *prometheus.CounterVec

	// perOrg lists every vector with an org label, for Forget.
	perOrg []interface {
		DeletePartialMatch(prometheus.Labels) int
	}
}

// New registers the collectors, Go runtime and process ones included, on
// reg. It panics if reg already holds any of them: that is a wiring bug,
// not a runtime condition.
func New(reg prometheus.Registerer, maxLive int) *Metrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		workersLive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "workers_live",
			Help: "Worker processes occupying a live slot, by egress (direct, or the proxy without credentials)."}, []string{"egress"}),
		egresses:        map[string]bool{"direct": true},
		workersMax:      gauge("workers_max", "Configured maximum of live workers (workers.max_live)."),
		startQueueDepth: gauge("start_queue_depth", "Organizations waiting for a live slot or the start gap."),
		workerStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "worker_start_seconds",
			Help: "Time from spawning a worker to its first session state.",
			// Process spawn plus the go-plugin handshake is sub-second; a
			// connect to WhatsApp can take tens of seconds on a bad link.
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120},
		}),
		persistErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "persist_errors_total",
			Help: "Failed commits to state.db; each is retried and /readyz fails until one succeeds."}),
		orgStatus:      gaugeVec("org_status", "1 for the organization's current status, 0 for the others.", "org", "status"),
		workerRSS:      gaugeVec("worker_rss_bytes", "Resident memory of the organization's worker process.", "org"),
		outboxDepth:    gaugeVec("outbox_depth", "Messages queued for sending.", "org"),
		badMACErrors:   counterVec("badmac_errors_total", "Bad MAC decryption failures.", "org"),
		badMACTrips:    counterVec("badmac_trips_total", "Times the Bad MAC counter tripped and the session was archived.", "org"),
		qrCodes:        counterVec("qr_codes_total", "QR codes offered for linking.", "org"),
		messagesSent:   counterVec("messages_sent_total", "Messages WhatsApp acknowledged.", "org"),
		messagesFailed: counterVec("messages_failed_total", "Messages given up on, by reason (expired, cancelled, server_error_N, no_answer, org_deleted).", "org", "reason"),
		sendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "send_seconds",
			Help: "Time from handing a message to the worker to the server's answer, typing included.",
			// A send is a round trip to WhatsApp, plus the typing shown.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
		}),
		broadcastsActive:  gauge("broadcasts_active", "Broadcast jobs sending (each holds one of messages.max_jobs)."),
		broadcastsStalled: gauge("broadcasts_stalled", "Broadcast jobs without progress for messages.stalled_after."),
		sendRestricted:    gaugeVec("send_restricted", "1 while WhatsApp's new-chat restriction (463) holds the organization's messages to new contacts.", "org"),
		sessionsCleared:   counterVec("sessions_cleared_total", "Auth directories archived for a relink, by reason (bad_mac_errors, manual).", "org", "reason"),
		logouts:           counterVec("logouts_total", "Links that ended, by reason.", "org", "reason"),
		workerRestarts:    counterVec("worker_restarts_total", "Worker restarts, by reason.", "org", "reason"),
		decryptFailures:   counterVec("decrypt_failures_total", "Decryption failures other than Bad MAC, by reason.", "org", "reason"),
		webhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "webhook_deliveries_total",
			Help: "Webhook delivery attempts, by result (delivered, failed, dead)."}, []string{"result"}),
		webhookQueue: gauge("webhook_queue_depth", "Webhook events waiting for delivery (dead letters not included)."),
		webhookDead:  gauge("webhook_dead_letters", "Webhook events given up after webhook.give_up_after, until retried."),
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "pruned_rows_total",
			Help: "Rows deleted from state.db after messages.retention, by kind (messages, broadcasts, webhook_events, media)."}, []string{"kind"}),
	}
	for _, result := range []string{"delivered", "failed", "dead"} {
		m.webhookDeliveries.WithLabelValues(result)
	}
	for _, kind := range []string{"messages", "broadcasts", "webhook_events", "media"} {
		m.pruned.WithLabelValues(kind)
	}
	m.perOrg = []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.orgStatus, m.workerRSS, m.outboxDepth, m.badMACErrors, m.badMACTrips, m.qrCodes,
		m.messagesSent, m.messagesFailed, m.sessionsCleared, m.logouts, m.workerRestarts, m.decryptFailures, m.sendRestricted}

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.workersLive, m.workersMax, m.startQueueDepth, m.workerStart, m.persistErrors,
		m.orgStatus, m.workerRSS, m.outboxDepth, m.badMACErrors, m.badMACTrips, m.qrCodes,
		m.messagesSent, m.messagesFailed, m.sessionsCleared, m.logouts, m.workerRestarts, m.decryptFailures,
		m.sendSeconds, m.broadcastsActive, m.broadcastsStalled, m.sendRestricted,
		m.webhookDeliveries, m.webhookQueue, m.webhookDead, m.pruned,
	)
	m.workersMax.Set(float64(maxLive))
	m.workersLive.WithLabelValues("direct")
	return m
}

// SetStatus sets the organization's current status to 1 and every other
// one to 0, so that dashboards and alerts see a 0 rather than a missing
// series when a state is left.
func (m *Metrics) SetStatus(org string, s state.Status) {
	for _, other := range state.All {
		if other != s {
			m.orgStatus.WithLabelValues(org, string(other)).Set(0)
		}
	}
	m.orgStatus.WithLabelValues(org, string(s)).Set(1)
	// Counters labelled by org alone start at 0 as soon as the org is known,
	// so increase() in alerts sees the first Bad MAC, trip or sent message
	// instead of a series that is born at 1.
	for _, c := range []*prometheus.CounterVec{m.badMACErrors, m.badMACTrips, m.qrCodes, m.messagesSent} {
		c.WithLabelValues(org)
	}
	// Labelled by reason too: the reasons every organization can meet, so
	// a dashboard panel shows 0 rather than "No data" until the first one.
	for vec, reasons := range map[*prometheus.CounterVec][]string{
		m.messagesFailed:  {"expired", "cancelled", "no_answer"},
		m.sessionsCleared: {"bad_mac_errors", "manual"},
		m.logouts:         {"device_removed", "manual"},
		m.workerRestarts:  {"crash", "unhealthy", "start_failed"},
	} {
		for _, reason := range reasons {
			vec.WithLabelValues(org, reason)
		}
	}
	m.outboxDepth.WithLabelValues(org)
	m.sendRestricted.WithLabelValues(org)
}

// Forget deletes every series of org, for an organization that was deleted;
// otherwise its last values would be scraped forever.
func (m *Metrics) Forget(org string) {
	for _, v := range m.perOrg {
		v.DeletePartialMatch(prometheus.Labels{"org": org})
	}
}

// SetLive sets the number of workers in a live slot on each egress; an
// egress seen before and now empty shows 0 rather than vanishing.
func (m *Metrics) SetLive(byEgress map[string]int) {
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	for e := range m.egresses {
		if _, ok := byEgress[e]; !ok {
			m.workersLive.WithLabelValues(e).Set(0)
		}
	}
	for e, n := range byEgress {
		m.egresses[e] = true
		m.workersLive.WithLabelValues(e).Set(float64(n))
	}
}

// SetQueueDepth sets the number of organizations waiting to start.
func (m *Metrics) SetQueueDepth(n int) { m.startQueueDepth.Set(float64(n)) }

// BadMACError counts one Bad MAC decryption failure.
func (m *Metrics) BadMACError(org string) { m.badMACErrors.WithLabelValues(org).Inc() }

// BadMACTrip counts one trip of the Bad MAC counter.
func (m *Metrics) BadMACTrip(org string) { m.badMACTrips.WithLabelValues(org).Inc() }

// SessionCleared counts an archived auth directory; reason is
// bad_mac_errors or manual.
func (m *Metrics) SessionCleared(org, reason string) {
	m.sessionsCleared.WithLabelValues(org, reason).Inc()
}

// Logout counts an ended link.
func (m *Metrics) Logout(org, reason string) { m.logouts.WithLabelValues(org, reason).Inc() }

// WorkerRestart counts a restart; reason is crash, unhealthy, bad_mac,
// banned_expired, qr_timeout and the like.
func (m *Metrics) WorkerRestart(org, reason string) {
	m.workerRestarts.WithLabelValues(org, reason).Inc()
}

// SetRSS sets the resident memory of the organization's worker.
func (m *Metrics) SetRSS(org string, bytes int64) {
	m.workerRSS.WithLabelValues(org).Set(float64(bytes))
}

// QRCode counts a QR code offered.
func (m *Metrics) QRCode(org string) { m.qrCodes.WithLabelValues(org).Inc() }

// ObserveStart records how long a worker took to start.
func (m *Metrics) ObserveStart(d time.Duration) { m.workerStart.Observe(d.Seconds()) }

// MessageSent counts a message WhatsApp acknowledged.
func (m *Metrics) MessageSent(org string) { m.messagesSent.WithLabelValues(org).Inc() }

// MessageFailed counts a message given up on.
func (m *Metrics) MessageFailed(org, reason string) {
	m.messagesFailed.WithLabelValues(org, reason).Inc()
}

// ObserveSend records one send's round trip.
func (m *Metrics) ObserveSend(d time.Duration) { m.sendSeconds.Observe(d.Seconds()) }

// SetBroadcasts sets the broadcast jobs sending and stalled.
func (m *Metrics) SetBroadcasts(sending, stalled int) {
	m.broadcastsActive.Set(float64(sending))
	m.broadcastsStalled.Set(float64(stalled))
}

// SetSendRestricted marks the organization held by the new-chat restriction.
func (m *Metrics) SetSendRestricted(org string, restricted bool) {
	v := 0.0
	if restricted {
		v = 1
	}
	m.sendRestricted.WithLabelValues(org).Set(v)
}

// SetOutboxDepth sets the number of messages queued for org.
func (m *Metrics) SetOutboxDepth(org string, n int) {
	m.outboxDepth.WithLabelValues(org).Set(float64(n))
}

// DecryptFailure counts a decryption failure that is not a Bad MAC (no
// session, unavailable, database busy), kept apart so that it never feeds
// the Bad MAC policy's picture.
func (m *Metrics) DecryptFailure(org, reason string) {
	m.decryptFailures.WithLabelValues(org, reason).Inc()
}

// WebhookDelivery counts one delivery attempt by its result.
func (m *Metrics) WebhookDelivery(result string) { m.webhookDeliveries.WithLabelValues(result).Inc() }

// SetWebhookQueue sets the events waiting for delivery and the dead letters.
func (m *Metrics) SetWebhookQueue(waiting, dead int) {
	m.webhookQueue.Set(float64(waiting))
	m.webhookDead.Set(float64(dead))
}

// Pruned counts n rows of kind (messages, broadcasts, webhook_events, media)
// deleted after messages.retention.
func (m *Metrics) Pruned(kind string, n int) { m.pruned.WithLabelValues(kind).Add(float64(n)) }

// PersistError counts a commit to state.db that failed.
func (m *Metrics) PersistError() { m.persistErrors.Inc() }

// Handler serves g in the Prometheus exposition format. A collector that
// fails (the process collector on an unusual kernel, say) costs its own
// series, not the whole scrape.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
