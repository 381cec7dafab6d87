package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRepoConfigIsTheDefault(t *testing.T) {
	cfg, err := Load("../../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if cfg.Workers != def.Workers || cfg.BadMAC != def.BadMAC || !reflect.DeepEqual(cfg.API, def.API) || cfg.QR != def.QR || cfg.Messages != def.Messages || cfg.Media != def.Media {
		t.Errorf("config.toml drifted from Default():\n%+v\n%+v", cfg, def)
	}
	if cfg.WhatsApp.Emulator != nil {
		t.Error("config.toml must not point at the emulator")
	}
}

func TestLoadValues(t *testing.T) {
	cfg, err := Load(write(t, `
state_dir = "/tmp/x"
[workers]
start_jitter = ["0s", "10ms"]
[whatsapp.emulator]
url = "http://127.0.0.1:7000"
[messages]
default_country = "US"
[[org]]
id = "2"
default_country = "CO"
[[org]]
id = "abc"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers.StartJitter[1].Duration != 10*time.Millisecond || len(cfg.Orgs) != 2 || cfg.WhatsApp.Emulator.URL != "http://127.0.0.1:7000" {
		t.Errorf("unexpected %+v", cfg)
	}
	if cfg.Media.MaxBytes.Bytes != 16<<20 {
		t.Errorf("default media.max_bytes lost: %d", cfg.Media.MaxBytes.Bytes)
	}
	if cfg.Workers.MaxLive != 5 {
		t.Errorf("default max_live lost: %d", cfg.Workers.MaxLive)
	}
	if got := cfg.DefaultCountries(); !reflect.DeepEqual(got, map[string]string{"2": "CO"}) || cfg.Messages.DefaultCountry != "US" {
		t.Errorf("default countries: %v, host-wide %q", got, cfg.Messages.DefaultCountry)
	}
	if got := cfg.AuthDir("2"); got != filepath.Join("/tmp/x", "auth_sessions", "2") {
		t.Errorf("AuthDir = %s", got)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	cases := map[string]string{
		"unknown top":    "colour = 1\n",
		"unknown nested": "[workers]\nmax_lives = 3\n",
		"bad duration":   "[badmac]\nreset_after = \"soon\"\n",
		"negative":       "[workers]\nstart_gap = \"-1s\"\n",
		"bad range":      "[workers]\nstart_jitter = [\"3s\", \"1s\"]\n",
		"bad id":         "[[org]]\nid = \"../etc\"\n",
		"dup id":         "[[org]]\nid = \"2\"\n[[org]]\nid = \"2\"\n",
		"zero max_live":  "[workers]\nmax_live = 0\n",
		"bad listen":     "[api]\nlisten = \"8089\"\n",
		"bad emulator":   "[whatsapp.emulator]\nurl = \"ftp://x\"\n",
		"syntax":         "state_dir = \n",
		"wrong type":     "[workers]\nmax_live = \"five\"\n",
		"bad log level":  "log_level = \"loud\"\n",
		"bad origin":     "[api]\nallowed_origins = [\"https://a.example/path\"]\n",
		"host port":      "[api]\nallowed_hosts = [\"wa-sidecar-api:8089\"]\n",
		"host scheme":    "[api]\nallowed_hosts = [\"http://wa-sidecar-api\"]\n",
		"host empty":     "[api]\nallowed_hosts = [\"\"]\n",
		"zero max_orgs":  "[workers]\nmax_orgs = 0\n",
		"min_senders":    "[badmac]\nmin_senders = 0\n",
		"webhook scheme": "[webhook]\nurl = \"ftp://django\"\nsecret_file = \"s\"\n",
		"webhook secret": "[webhook]\nurl = \"http://127.0.0.1:8000/hook\"\n",
		"webhook give":   "[webhook]\ngive_up_after = \"0s\"\n",
		"org proxy":      "[[org]]\nid = \"2\"\nproxy = \"ftp://u:pw@h:21\"\n",
		"per egress":     "[workers]\nmax_live_per_egress = 0\n",
		"memory limit":   "[workers]\nmemory_limit = \"12 MB\"\n",
		"memory tiny":    "[workers]\nmemory_limit = \"4MiB\"\n",
		"sandbox":        "[workers]\nsandbox = \"strict\"\n",
		"retention":      "[messages]\nretention = \"59s\"\n",
		"no retention":   "[messages]\nretention = \"0s\"\n",
		"daily limit":    "[messages]\ndaily_limit = -1\n",
		"warmup days":    "[messages]\nwarmup_days = -1\n",
		"warmup first":   "[messages]\nwarmup_first_day = 0\n",
		"quiet shape":    "[messages]\nquiet_hours = \"21:00\"\n",
		"quiet hour":     "[messages]\nquiet_hours = \"25:00-08:00\"\n",
		"quiet empty":    "[messages]\nquiet_hours = \"08:00-08:00\"\n",
		"timezone":       "[messages]\ntimezone = \"Mars/Olympus\"\n",
		"org timezone":   "[[org]]\nid = \"2\"\ntimezone = \"Bogota\"\n",
		"country":        "[messages]\ndefault_country = \"Colombia\"\n",
		"country case":   "[messages]\ndefault_country = \"co\"\n",
		"org country":    "[[org]]\nid = \"2\"\ndefault_country = \"XX\"\n",
		"media size":     "[media]\nmax_bytes = \"16 MB\"\n",
		"media zero":     "[media]\nmax_bytes = \"0MiB\"\n",
		"media huge":     "[media]\nmax_bytes = \"1GiB\"\n",
		"check_ttl":      "[messages]\ncheck_ttl = \"0s\"\n",
		"check_numbers":  "[messages]\ncheck_numbers = \"yes\"\n",
	}
	want := map[string]string{
		"unknown top":    "colour",
		"unknown nested": "workers.max_lives",
		"bad duration":   "badmac.reset_after",
		"negative":       "workers.start_gap",
		"bad range":      "workers.start_jitter",
		"bad id":         "org[0].id",
		"dup id":         "org[1].id",
		"zero max_live":  "workers.max_live",
		"bad listen":     "api.listen",
		"bad emulator":   "whatsapp.emulator.url",
		"syntax":         "line 1",
		"wrong type":     "max_live",
		"bad log level":  "log_level",
		"bad origin":     "api.allowed_origins",
		"host port":      "api.allowed_hosts",
		"host scheme":    "api.allowed_hosts",
		"host empty":     "api.allowed_hosts",
		"zero max_orgs":  "workers.max_orgs",
		"min_senders":    "badmac.min_senders",
		"webhook scheme": "webhook.url",
		"webhook secret": "webhook.secret_file",
		"webhook give":   "webhook.give_up_after",
		"org proxy":      "org[0].proxy",
		"per egress":     "workers.max_live_per_egress",
		"memory limit":   "workers.memory_limit",
		"memory tiny":    "at least 8MiB",
		"sandbox":        "workers.sandbox",
		"retention":      "messages.retention: 59s is below the minimum 1m0s",
		"no retention":   "messages.retention",
		"daily limit":    "messages.daily_limit",
		"warmup days":    "messages.warmup_days",
		"warmup first":   "messages.warmup_first_day",
		"quiet shape":    "messages.quiet_hours",
		"quiet hour":     "messages.quiet_hours",
		"quiet empty":    "messages.quiet_hours",
		"timezone":       "messages.timezone",
		"org timezone":   "org[0].timezone",
		"country":        `messages.default_country: "Colombia" is not an ISO 3166 region`,
		"country case":   `messages.default_country: "co": write the region in capitals, "CO"`,
		"org country":    `org[0].default_country: "XX" is not an ISO 3166 region`,
		"media size":     "max_bytes",
		"media zero":     "media.max_bytes",
		"media huge":     "media.max_bytes: 1073741824 bytes is outside 1 byte to 100MiB",
		"check_ttl":      "messages.check_ttl: 0s is below the minimum 1m0s",
		"check_numbers":  "check_numbers",
	}
	for name, body := range cases {
		_, err := Load(write(t, body))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: error %q does not name %q", name, err, want[name])
		}
		if strings.Count(err.Error(), "\n") > 3 {
			t.Errorf("%s: error is not short: %q", name, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8089": true, "[::1]:1": true, "localhost:1": true, "unix:/run/x.sock": true,
		"0.0.0.0:8089": false, "10.0.0.1:1": false, ":8089": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}

func TestAPIKey(t *testing.T) {
	cfg := Default()
	t.Setenv("WA_SIDECAR_API_KEY", "")
	if k, err := cfg.APIKey(); k != "" || err != nil {
		t.Fatalf("dev mode: %q %v", k, err)
	}
	cfg.API.APIKeyFile = write(t, "  secret\n")
	if k, _ := cfg.APIKey(); k != "secret" {
		t.Fatalf("file key %q", k)
	}
	t.Setenv("WA_SIDECAR_API_KEY", "env")
	if k, _ := cfg.APIKey(); k != "env" {
		t.Fatalf("env key %q", k)
	}
	t.Setenv("WA_SIDECAR_API_KEY", "")
	cfg.API.APIKeyFile = filepath.Join(t.TempDir(), "missing")
	if _, err := cfg.APIKey(); err == nil || !strings.Contains(err.Error(), "api.api_key_file") {
		t.Fatalf("missing file: %v", err)
	}
}

// A proxy no start could use fails the load with one line naming the key
// and what is wrong, never its password.
func TestLoadRefusesImpossibleProxies(t *testing.T) {
	for proxyURL, want := range map[string]string{
		"socks5://u:s3cret@h:99999":                            `org[0].proxy: port "99999" is not a number from 1 to 65535`,
		"socks5://u:s3cret@h:0":                                `org[0].proxy: port "0" is not a number from 1 to 65535`,
		"http://u:s3cret@h:70000":                              `org[0].proxy: port "70000" is not a number from 1 to 65535`,
		"socks5://u:s3cret@:1080":                              "org[0].proxy: needs a host and a port",
		"socks5://u:s3cret@" + strings.Repeat("b", 254) + ":1": "org[0].proxy: host name is 254 characters long: at most 253",
	} {
		_, err := Load(write(t, "[[org]]\nid = \"2\"\nproxy = \""+proxyURL+"\"\n"))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v, want %q", proxyURL, err, want)
		}
	}
}

func TestQuietHoursAndZones(t *testing.T) {
	q, err := ParseQuietHours("21:30-08:00")
	if err != nil || q != (QuietHours{Start: 21*60 + 30, End: 8 * 60, Set: true}) {
		t.Errorf("21:30-08:00 = %+v, %v", q, err)
	}
	if q, err := ParseQuietHours(""); err != nil || q.Set {
		t.Errorf(`"" = %+v, %v`, q, err)
	}
	cfg, err := Load(write(t, "[messages]\ntimezone = \"Europe/Berlin\"\n[[org]]\nid = \"2\"\ntimezone = \"America/Bogota\"\n[[org]]\nid = \"3\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	def, orgs, err := cfg.Zones()
	if err != nil || def.String() != "Europe/Berlin" || orgs["2"].String() != "America/Bogota" || orgs["3"] != nil {
		t.Errorf("zones %v %v %v", def, orgs, err)
	}
}
