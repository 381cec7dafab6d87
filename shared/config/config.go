// Package config holds wa-sidecar's configuration: the types that mirror
// config.toml, their defaults, and a loader that rejects unknown keys and
// names the key of every bad value.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/wa-sidecar/wa-sidecar/shared/orgid"
	"github.com/wa-sidecar/wa-sidecar/shared/phone"
	"github.com/wa-sidecar/wa-sidecar/shared/proxy"
)

// Duration is a time.Duration written as a Go duration string ("2s", "5m").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use Go syntax such as \"2s\", \"5m\", \"1h\")", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Config is the whole configuration file.
type Config struct {
	StateDir     string   `toml:"state_dir"`
	WorkerBinary string   `toml:"worker_binary"`
	LogLevel     string   `toml:"log_level"`
	API          API      `toml:"api"`
	Metrics      Metrics  `toml:"metrics"`
	Workers      Workers  `toml:"workers"`
	BadMAC       BadMAC   `toml:"badmac"`
	Logout       Logout   `toml:"logout"`
	QR           QR       `toml:"qr"`
	Messages     Messages `toml:"messages"`
	Media        Media    `toml:"media"`
	Webhook      Webhook  `toml:"webhook"`
	WhatsApp     WhatsApp `toml:"whatsapp"`
	Cluster      Cluster  `toml:"cluster"`
	Orgs         []Org    `toml:"org"`
}

// API is the local status API that Django polls.
type API struct {
	Listen     string `toml:"listen"`
	APIKeyFile string `toml:"api_key_file"`
	// AllowedOrigins are the browser origins ("https://app.example") whose
	// requests the API accepts; every other cross-site request is refused.
	AllowedOrigins []string `toml:"allowed_origins"`
	// AllowedHosts are more names the Host header may carry (a Kubernetes
	// Service's, a reverse proxy's); the listen address, localhost and the
	// loopback IPs always pass. The Host check is the defence against DNS
	// rebinding, so list only names whose DNS you control.
	AllowedHosts []string `toml:"allowed_hosts"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Listen string `toml:"listen"`
}

// Workers bounds how many worker processes live at once and how they start.
type Workers struct {
	// MaxOrgs bounds the registered organizations: each costs a store row,
	// a fingerprint and, when it runs, a process.
	MaxOrgs int `toml:"max_orgs"`
	MaxLive int `toml:"max_live"`
	// MaxLivePerEgress caps the live workers that leave through one IP
	// (direct, or one proxy): WhatsApp tolerates about five per IP.
	MaxLivePerEgress int         `toml:"max_live_per_egress"`
	StartGap         Duration    `toml:"start_gap"`
	StartJitter      [2]Duration `toml:"start_jitter"`
	HealthInterval   Duration    `toml:"health_interval"`
	CrashBackoff     [2]Duration `toml:"crash_backoff"`
	CrashLimit       int         `toml:"crash_limit"`
	StopTimeout      Duration    `toml:"stop_timeout"`
	// MemoryLimit is each worker's GOMEMLIMIT ("12MiB"); empty: none.
	MemoryLimit string `toml:"memory_limit"`
	// Sandbox is how each worker confines itself before it opens its store
	// (Landlock, seccomp, limits): "best_effort" applies what the kernel
	// offers and logs the rest, "require" refuses to start a worker that
	// cannot be confined, "off" applies nothing.
	Sandbox string `toml:"sandbox"`
}

// BadMAC is the policy for repeated "Bad MAC" decryption failures.
type BadMAC struct {
	Limit            int      `toml:"limit"`
	MinSenders       int      `toml:"min_senders"`
	ResetAfter       Duration `toml:"reset_after"`
	KeepArchives     int      `toml:"keep_archives"`
	RestartDelay     Duration `toml:"restart_delay"`
	StormTrips       int      `toml:"storm_trips"`
	StormMaxCooldown Duration `toml:"storm_max_cooldown"`
}

// Logout is the policy after WhatsApp ends a link.
type Logout struct {
	Cooldown Duration `toml:"cooldown"`
}

// QR bounds how long an unscanned QR keeps a slot.
type QR struct {
	GiveUpAfter Duration `toml:"give_up_after"`
}

// Messages paces outgoing messages and bounds broadcasts.
type Messages struct {
	MinInterval     Duration    `toml:"min_interval"`
	PerMinute       int         `toml:"per_minute"`
	Jitter          [2]Duration `toml:"jitter"`
	Typing          [2]Duration `toml:"typing"`
	ExpireAfter     Duration    `toml:"expire_after"`
	MaxJobs         int         `toml:"max_jobs"`
	StalledAfter    Duration    `toml:"stalled_after"`
	MaxRecipients   int         `toml:"max_recipients"`
	RestrictBackoff Duration    `toml:"restrict_backoff"`
	// Retention is how long final messages, finished broadcasts and dead
	// letters stay in state.db.
	Retention Duration `toml:"retention"`
	// DailyLimit is how many messages an organization sends in one local
	// day (0 = no limit); a newly linked number ramps up to it from
	// WarmupFirstDay over WarmupDays (0 = no ramp).
	DailyLimit     int    `toml:"daily_limit"`
	WarmupDays     int    `toml:"warmup_days"`
	WarmupFirstDay int    `toml:"warmup_first_day"`
	QuietHours     string `toml:"quiet_hours"`
	Timezone       string `toml:"timezone"`
	// DefaultCountry is the ISO 3166 region whose numbers callers may
	// write without their country code; "" = numbers are international.
	DefaultCountry string `toml:"default_country"`
	// CheckNumbers asks WhatsApp whether a number never checked has an
	// account before its first send; CheckTTL is how long an answer holds.
	CheckNumbers bool     `toml:"check_numbers"`
	CheckTTL     Duration `toml:"check_ttl"`
}

// Webhook is the optional callback that gets the supervisor's events.
type Webhook struct {
	URL        string `toml:"url"`
	SecretFile string `toml:"secret_file"`
	// Incoming also posts the text messages organizations receive.
	Incoming    bool     `toml:"incoming"`
	GiveUpAfter Duration `toml:"give_up_after"`
}

// WhatsApp holds where workers connect to.
type WhatsApp struct {
	Emulator *Emulator `toml:"emulator"`
}

// Emulator points workers at the local test emulator instead of WhatsApp.
type Emulator struct {
	URL string `toml:"url"`
}

// Org is an organization kept running from boot.
type Org struct {
	ID string `toml:"id"`
	// Proxy is where the organization's worker connects through; empty:
	// direct. It applies from the organization's next start.
	Proxy string `toml:"proxy"`
	// Timezone overrides messages.timezone for this organization.
	Timezone string `toml:"timezone"`
	// DefaultCountry overrides messages.default_country for this
	// organization's numbers.
	DefaultCountry string `toml:"default_country"`
}

// maxLive is workers.max_live's default: WhatsApp grows suspicious of more
// sessions from one IP.
const maxLive = 5

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		StateDir:     "./var",
		WorkerBinary: "./bin/wa-worker",
		LogLevel:     "info",
		API:          API{Listen: "127.0.0.1:8089", AllowedOrigins: []string{}, AllowedHosts: []string{}},
		Metrics:      Metrics{Listen: "127.0.0.1:9189"},
		Workers: Workers{
			MaxOrgs:          1000,
			MaxLive:          maxLive,
			MaxLivePerEgress: 5,
			StartGap:         Duration{2 * time.Second},
			StartJitter:      [2]Duration{{time.Second}, {3 * time.Second}},
			HealthInterval:   Duration{30 * time.Second},
			CrashBackoff:     [2]Duration{{time.Second}, {5 * time.Minute}},
			CrashLimit:       5,
			StopTimeout:      Duration{10 * time.Second},
			Sandbox:          "best_effort",
		},
		BadMAC: BadMAC{
			Limit:            5,
			MinSenders:       1,
			ResetAfter:       Duration{60 * time.Second},
			KeepArchives:     3,
			RestartDelay:     Duration{2 * time.Second},
			StormTrips:       3,
			StormMaxCooldown: Duration{time.Hour},
		},
		Logout: Logout{Cooldown: Duration{5 * time.Minute}},
		QR:     QR{GiveUpAfter: Duration{10 * time.Minute}},
		Messages: Messages{
			MinInterval:     Duration{2 * time.Second},
			PerMinute:       20,
			Jitter:          [2]Duration{{0}, {time.Second}},
			ExpireAfter:     Duration{24 * time.Hour},
			MaxJobs:         2,
			StalledAfter:    Duration{10 * time.Minute},
			MaxRecipients:   10000,
			RestrictBackoff: Duration{time.Hour},
			Retention:       Duration{720 * time.Hour},
			DailyLimit:      1000,
			WarmupDays:      14,
			WarmupFirstDay:  30,
			Timezone:        "UTC",
			CheckNumbers:    true,
			CheckTTL:        Duration{168 * time.Hour},
		},
		Media:   Media{MaxBytes: Size{16 << 20}},
		Webhook: Webhook{GiveUpAfter: Duration{24 * time.Hour}},
		Cluster: defaultCluster(),
	}
}

// Load reads the file at path over the defaults and validates the result.
// Relative paths in it (state_dir, worker_binary, files) are taken relative
// to the current directory, as an operator running `make run` expects.
func Load(path string) (Config, error) {
	cfg := Default()
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			key := ""
			if perr.LastKey != "" {
				key = perr.LastKey + ": "
			}
			return Config{}, fmt.Errorf("config %s: line %d: %s%s", path, perr.Position.Line, key, perr.Message)
		}
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if !md.IsDefined("cluster", "capacity") {
		cfg.Cluster.Capacity = cfg.Workers.MaxLive
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		// The file was just read whole by the decoder; reading it again
		// only places the key, so an error here leaves out the line.
		data, _ := os.ReadFile(path)
		var msgs []string
		for _, k := range undecoded {
			// An unknown table's keys are unknown too; naming the table says it.
			if len(k) > 1 && slices.ContainsFunc(undecoded, func(p toml.Key) bool { return p.String() == k[:len(k)-1].String() }) {
				continue
			}
			msgs = append(msgs, unknownKey(k.String(), data))
		}
		return Config{}, fmt.Errorf("config %s: %s", path, strings.Join(msgs, "; "))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks every value and names the first key that is wrong.
func (c *Config) Validate() error {
	check := []struct {
		key string
		err error
	}{
		{"state_dir", nonEmpty(c.StateDir)},
		{"worker_binary", nonEmpty(c.WorkerBinary)},
		{"log_level", oneOf(c.LogLevel, "debug", "info", "warn", "error")},
		{"api.listen", listenAddr(c.API.Listen)},
		{"metrics.listen", listenAddr(c.Metrics.Listen)},
		{"api.allowed_origins", origins(c.API.AllowedOrigins)},
		{"api.allowed_hosts", hostNames(c.API.AllowedHosts)},
		{"workers.max_orgs", atLeast(c.Workers.MaxOrgs, 1)},
		{"workers.max_live", atLeast(c.Workers.MaxLive, 1)},
		{"workers.max_live_per_egress", atLeast(c.Workers.MaxLivePerEgress, 1)},
		{"workers.start_gap", nonNegative(c.Workers.StartGap)},
		{"workers.start_jitter", durationRange(c.Workers.StartJitter)},
		{"workers.health_interval", positive(c.Workers.HealthInterval)},
		{"workers.crash_backoff", durationRange(c.Workers.CrashBackoff)},
		{"workers.crash_limit", atLeast(c.Workers.CrashLimit, 1)},
		{"workers.stop_timeout", positive(c.Workers.StopTimeout)},
		{"workers.memory_limit", memoryLimit(c.Workers.MemoryLimit)},
		{"workers.sandbox", oneOf(c.Workers.Sandbox, "best_effort", "require", "off")},
		{"badmac.limit", atLeast(c.BadMAC.Limit, 1)},
		{"badmac.min_senders", atLeast(c.BadMAC.MinSenders, 1)},
		{"badmac.reset_after", positive(c.BadMAC.ResetAfter)},
		{"badmac.keep_archives", atLeast(c.BadMAC.KeepArchives, 0)},
		{"badmac.restart_delay", nonNegative(c.BadMAC.RestartDelay)},
		{"badmac.storm_trips", atLeast(c.BadMAC.StormTrips, 1)},
		{"badmac.storm_max_cooldown", nonNegative(c.BadMAC.StormMaxCooldown)},
		{"logout.cooldown", nonNegative(c.Logout.Cooldown)},
		{"qr.give_up_after", positive(c.QR.GiveUpAfter)},
		{"messages.min_interval", nonNegative(c.Messages.MinInterval)},
		{"messages.per_minute", between(c.Messages.PerMinute, 1, 600)},
		{"messages.jitter", durationRange(c.Messages.Jitter)},
		{"messages.typing", typingRange(c.Messages.Typing)},
		{"messages.expire_after", positive(c.Messages.ExpireAfter)},
		{"messages.max_jobs", atLeast(c.Messages.MaxJobs, 1)},
		{"messages.stalled_after", positive(c.Messages.StalledAfter)},
		{"messages.max_recipients", between(c.Messages.MaxRecipients, 1, 100000)},
		{"messages.restrict_backoff", positive(c.Messages.RestrictBackoff)},
		{"messages.retention", atLeastDuration(c.Messages.Retention, MinRetention)},
		{"messages.daily_limit", atLeast(c.Messages.DailyLimit, 0)},
		{"messages.warmup_days", atLeast(c.Messages.WarmupDays, 0)},
		{"messages.warmup_first_day", atLeast(c.Messages.WarmupFirstDay, 1)},
		{"messages.quiet_hours", quietHours(c.Messages.QuietHours)},
		{"messages.timezone", timezone(c.Messages.Timezone)},
		{"messages.default_country", phone.CheckRegion(c.Messages.DefaultCountry)},
		{"media.max_bytes", mediaMaxBytes(c.Media.MaxBytes)},
		{"messages.check_ttl", atLeastDuration(c.Messages.CheckTTL, time.Minute)},
		{"webhook.url", optionalURL(c.Webhook.URL)},
		{"webhook.secret_file", secretWith(c.Webhook.URL, c.Webhook.SecretFile)},
		{"webhook.give_up_after", positive(c.Webhook.GiveUpAfter)},
	}
	for _, ch := range check {
		if ch.err != nil {
			return fmt.Errorf("%s: %w", ch.key, ch.err)
		}
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	if c.Cluster.Enabled() && len(c.Orgs) > 0 {
		return fmt.Errorf("org[0]: [[org]] entries would start on every node of a cluster; in cluster mode register organizations with POST /v1/orgs/{id}/start")
	}
	if c.WhatsApp.Emulator != nil {
		if err := requiredURL(c.WhatsApp.Emulator.URL); err != nil {
			return fmt.Errorf("whatsapp.emulator.url: %w", err)
		}
	}
	seen := map[string]bool{}
	for i, o := range c.Orgs {
		if err := orgid.Validate(o.ID); err != nil {
			return fmt.Errorf("org[%d].id: %w", i, err)
		}
		if seen[o.ID] {
			return fmt.Errorf("org[%d].id: organization %q is listed twice", i, o.ID)
		}
		seen[o.ID] = true
		if err := proxy.Validate(o.Proxy); err != nil {
			return fmt.Errorf("org[%d].proxy: %w", i, err)
		}
		if o.Timezone != "" {
			if err := timezone(o.Timezone); err != nil {
				return fmt.Errorf("org[%d].timezone: %w", i, err)
			}
		}
		if err := phone.CheckRegion(o.DefaultCountry); err != nil {
			return fmt.Errorf("org[%d].default_country: %w", i, err)
		}
	}
	return nil
}

// DefaultCountries maps the organizations listed with their own
// default_country to it; every other organization, including those
// registered through the API, uses messages.default_country.
func (c *Config) DefaultCountries() map[string]string {
	out := map[string]string{}
	for _, o := range c.Orgs {
		if o.DefaultCountry != "" {
			out[o.ID] = o.DefaultCountry
		}
	}
	return out
}

// AuthDir is where the worker of org keeps its whatsmeow store.
func (c *Config) AuthDir(org string) string {
	return filepath.Join(c.StateDir, "auth_sessions", org)
}

// APIKey returns the key callers must send in x-api-key: from the
// environment variable WA_SIDECAR_API_KEY, else from api.api_key_file, else
// empty (dev mode, allowed on loopback only).
func (c *Config) APIKey() (string, error) {
	if k := strings.TrimSpace(os.Getenv("WA_SIDECAR_API_KEY")); k != "" {
		return k, nil
	}
	if c.API.APIKeyFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.API.APIKeyFile)
	if err != nil {
		return "", fmt.Errorf("api.api_key_file: %w", err)
	}
	k := strings.TrimSpace(string(b))
	if k == "" {
		return "", fmt.Errorf("api.api_key_file: %s is empty", c.API.APIKeyFile)
	}
	return k, nil
}

// WebhookSecret reads the key that signs webhook bodies from
// webhook.secret_file, with surrounding white space trimmed (the newline
// that echo or an editor leaves is not part of it): receivers must trim
// the same way, as README and the Python client say.
func (c *Config) WebhookSecret() ([]byte, error) {
	b, err := os.ReadFile(c.Webhook.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("webhook.secret_file: %w", err)
	}
	k := strings.TrimSpace(string(b))
	if len(k) < 16 {
		return nil, fmt.Errorf("webhook.secret_file: %s holds %d characters; use at least 16 (e.g. openssl rand -hex 32)", c.Webhook.SecretFile, len(k))
	}
	return []byte(k), nil
}

// IsUnixListen reports whether a listen address names a unix socket, and
// its path.
func IsUnixListen(addr string) (string, bool) {
	p, ok := strings.CutPrefix(addr, "unix:")
	return p, ok
}

// IsLoopback reports whether a listen address can only be reached from this
// host: a unix socket or a loopback IP.
func IsLoopback(addr string) bool {
	if _, ok := IsUnixListen(addr); ok {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
