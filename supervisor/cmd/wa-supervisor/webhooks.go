package main

import (
	"fmt"
	"log/slog"
	"os"

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
	warnLooseSecret(cfg.Webhook.SecretFile, log)
	d := webhook.New(webhook.Options{
		URL: cfg.Webhook.URL, Secret: secret, GiveUpAfter: cfg.Webhook.GiveUpAfter.Duration,
		Store: st, Metrics: m, Log: log,
	})
	st.EnableEvents(cfg.Webhook.Incoming, d.Notify)
	log.Info("webhooks on", "incoming", cfg.Webhook.Incoming, "give_up_after", cfg.Webhook.GiveUpAfter.String())
	return &dispatcher{d}, nil
}

// warnLooseSecret warns when the webhook secret's file can be read by its
// group or by others: anyone who can read it can forge the events the
// operator's receiver trusts. A warning, not a refusal: a secret shared
// with the receiver through a group (its own service user) is a choice.
func warnLooseSecret(path string, log *slog.Logger) {
	info, err := os.Stat(path)
	if err != nil {
		return // it was just read; a file gone meanwhile is not this check's business
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("webhook.secret_file is readable by group or others, who could forge signed webhooks; chmod 600 it",
			"path", path, "mode", fmt.Sprintf("%04o", perm))
	}
}

// api is what the status API serves dead letters from: a nil interface,
// not a nil pointer in one, when webhooks are off.
func (d *dispatcher) api() statusapi.Webhooks {
	if d == nil {
		return nil
	}
	return d.Dispatcher
}
