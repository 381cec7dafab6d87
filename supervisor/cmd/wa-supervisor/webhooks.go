package main

import (
	"log/slog"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
	"github.com/wa-sidecar/wa-sidecar/supervisor/metrics"
	"github.com/wa-sidecar/wa-sidecar/supervisor/statusapi"
	"github.com/wa-sidecar/wa-sidecar/supervisor/store"
	"github.com/wa-sidecar/wa-sidecar/supervisor/webhook"
)

// dispatcher is the webhook delivery when webhook.url is set; nil when not.
type dispatcher struct{ *webhook.Dispatcher }

// newDispatcher reads the secret and makes the store keep events, before
// anything can commit one.
func newDispatcher(cfg config.Config, st *store.Store, m *metrics.Metrics, log *slog.Logger) (*dispatcher, error) {
	if cfg.Webhook.URL == "" {
		return nil, nil
	}
	secret, err := cfg.WebhookSecret()
	if err != nil {
		return nil, err
	}
	d := webhook.New(webhook.Options{
		URL: cfg.Webhook.URL, Secret: secret, GiveUpAfter: cfg.Webhook.GiveUpAfter.Duration,
		Store: st, Metrics: m, Log: log,
	})
	st.EnableEvents(cfg.Webhook.Incoming, d.Notify)
	log.Info("webhooks on", "incoming", cfg.Webhook.Incoming, "give_up_after", cfg.Webhook.GiveUpAfter.String())
	return &dispatcher{d}, nil
}

// api is what the status API serves dead letters from: a nil interface,
// not a nil pointer in one, when webhooks are off.
func (d *dispatcher) api() statusapi.Webhooks {
	if d == nil {
		return nil
	}
	return d.Dispatcher
}
