#!/usr/bin/env bash
# The wa-sidecar story on this machine, no WhatsApp needed: a local emulator
# plays WhatsApp and the phone, a real supervisor runs a real worker.
# QR -> scan -> connected -> Bad MAC storm -> archive -> new QR -> LOGOUT ->
# cooldown -> relink -> send a message. Everything started here is stopped
# on exit.
# Run through `make demo` (which builds bin/ first).
set -euo pipefail

usage() {
	echo "usage: scripts/demo.sh   (after make build)"
	echo "  env PAUSE=0 skips the pauses; KEEP=1 keeps the emulator and supervisor running at the end, until Ctrl-C"
	echo "  WEBHOOK=URL posts the events there, signed with a new secret (e.g. http://127.0.0.1:8000/webhook, the Django example)"
}
case "${1:-}" in
-h | --help) usage; exit 0 ;;
"") ;;
*) echo "demo: unexpected argument: $1" >&2; usage >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
bin=$PWD/bin
for b in wa-supervisor wa-worker wa-emulator; do
	[ -x "$bin/$b" ] || { echo "demo: $bin/$b missing: run make build (or make demo)" >&2; exit 1; }
done

pause=${PAUSE:-1}
org=demo
phone=573007915262
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
# Ctrl-C is how a demo ends (KEEP=1 waits for it): say so and exit 0, so
# that make reports no "Error 130". The emulator and the supervisor got
# the same SIGINT from the terminal; cleanup waits for them to finish.
trap 'printf "\ndemo: interrupted; stopping everything it started\n"; exit 0' INT
trap 'exit 143' TERM

# Bold headings on a terminal only: in a log or a pipe the escape codes
# would be noise.
bold="" plain=""
if [ -t 1 ]; then
	bold=$(tput bold 2>/dev/null || true)
	plain=$(tput sgr0 2>/dev/null || true)
fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; [ "$pause" = 0 ] || sleep 1; }
die() { echo "demo: $*" >&2; echo "--- supervisor log (last 30 lines) ---" >&2; tail -n 30 "$work/supervisor.log" >&2; exit 1; }

# poll CMD... until it succeeds or 60 s pass.
poll() {
	local what=$1; shift
	for _ in $(seq 600); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	die "timed out waiting for $what"
}

say "Starting the WhatsApp emulator on a free loopback port"
"$bin/wa-emulator" -addr 127.0.0.1:0 2>"$work/emulator.log" &
pids+=($!)
poll "the emulator" grep -q 'emulator listening' "$work/emulator.log"
emu=$(sed -n 's/.*msg="emulator listening".* addr=\([0-9.:]*\).*/\1/p' "$work/emulator.log" | head -n 1)
echo "emulator at http://$emu"

# WEBHOOK=URL: the supervisor posts its events there, signed with a new
# secret that the receiver reads from the same file (the Django example's
# WA_SIDECAR_WEBHOOK_SECRET_FILE).
webhook=""
if [ -n "${WEBHOOK:-}" ]; then
	case "$WEBHOOK" in
	*'"'* | *\\*) echo "demo: WEBHOOK=$WEBHOOK: a URL has no quote or backslash" >&2; exit 2 ;;
	http://* | https://*) ;;
	*) echo "demo: WEBHOOK=$WEBHOOK: want an http:// or https:// URL" >&2; exit 2 ;;
	esac
	(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/webhook_secret")
	webhook="[webhook]
url = \"$WEBHOOK\"
secret_file = \"$work/webhook_secret\""
fi

cat >"$work/config.toml" <<EOF
state_dir = "$work/state"
worker_binary = "$bin/wa-worker"
[api]
listen = "unix:$work/api.sock"
[metrics]
listen = "127.0.0.1:0"
[workers]
start_jitter = ["0s", "200ms"]
start_gap = "500ms"
[badmac]
reset_after = "60s"
restart_delay = "2s"
[logout]
cooldown = "10s"
[whatsapp.emulator]
url = "http://$emu"
$webhook
EOF

say "Starting the supervisor (its JSON log goes to $work/supervisor.log)"
"$bin/wa-supervisor" serve -config "$work/config.toml" 2>"$work/supervisor.log" &
pids+=($!)
poll "the supervisor" grep -q '"supervisor ready"' "$work/supervisor.log"
metrics=$(sed -n 's/.*"msg":"supervisor ready".*"metrics":"\([^"]*\)".*/\1/p' "$work/supervisor.log" | head -n 1)
echo "status API on unix:$work/api.sock, metrics on http://$metrics/metrics"

sup() { "$bin/wa-supervisor" "$@" -config "$work/config.toml"; }
# field NAME prints a string field of the organization's status object.
field() { sup status -json "$org" | sed -n "s/^  \"$1\": \"\([^\"]*\)\",\{0,1\}$/\1/p"; }
status_is() { [ "$(field status)" = "$1" ]; }
emulator() { curl -fsS -X POST -H 'Content-Type: application/json' "http://$emu/control/$1" -d "${2:-{\}}"; echo; }
scan() {
	poll "a QR code" status_is qr_required
	# qr follows the code until the link; through a pipe it prints each
	# code instead of clearing the screen, which keeps the story visible.
	sup qr "$org" | cat &
	local qr=$!
	say "The emulated phone $phone scans that QR"
	emulator scan "{\"qr_code\":\"$(field qr_code)\",\"phone\":\"$phone\"}"
	wait "$qr" || die "wa-supervisor qr did not see the link"
	poll "the link" status_is connected
	echo "status: $(field status), jid: $(field jid)"
}

say "Django asks for a session: wa-supervisor start $org"
sup start "$org" >/dev/null
scan

say "WhatsApp delivers 5 messages whose MAC is corrupted (a Bad MAC storm)"
emulator "devices/$phone/badmac" '{"count":5}'
poll "the trip" sh -c "'$bin/wa-supervisor' status -json $org -config '$work/config.toml' | grep -q '\"trips\": 1'"
grep -o '"msg":"bad MAC[^"]*"[^}]*' "$work/supervisor.log" | tail -n 3
say "The corrupted auth directory was archived, not deleted:"
poll "the archive" sh -c "ls '$work/state/auth_sessions' | grep -q '${org}_corrupted_'"
ls "$work/state/auth_sessions"

say "A clean worker starts after the restart delay and offers a new QR"
scan

say "WhatsApp ends the link (LOGOUT, device_removed)"
emulator "devices/$phone/logout"
poll "logged_out" status_is logged_out
echo "status: logged_out, cooldown until $(field cooldown_until); no automatic restart"

say "Linking again right away is refused during the cooldown:"
if sup start "$org"; then die "start was accepted during the cooldown"; fi

say "After the cooldown the organization may link again"
poll "the cooldown to end" sup start "$org"
scan

recipient=573001234567
text="Your order #1042 has shipped"
say "Django sends a notification: wa-supervisor send -wait $org $recipient '$text'"
sup send -wait "$org" "$recipient" "$text"

say "The recipient's phone shows what $phone sent:"
sent=$(curl -fsS "http://$emu/control/devices/$phone/sent")
echo "$sent"
case "$sent" in
*"\"to\":\"$recipient\",\"text\":\"$text\""*) ;;
*) die "the recipient does not show the message" ;;
esac

if [ "${KEEP:-0}" = 1 ]; then
	say "Still running (KEEP=1): organization $org is linked to phone $phone. In another terminal, try:"
	cat <<EOF
  bin/wa-supervisor status -config $work/config.toml
  bin/wa-supervisor send -wait -config $work/config.toml $org 573001234568 "Hello again"
  printf '573001230001\\n573001230002\\n' | bin/wa-supervisor broadcast -config $work/config.toml $org - "December offers"
  bin/wa-supervisor logs -n 20 -log $work/supervisor.log $org
  curl -s --unix-socket $work/api.sock http://localhost/v1/orgs/$org   # the status API
  curl -s http://$metrics/metrics | grep '^wa_sidecar_'   # Prometheus metrics
  curl -s http://$emu/control/devices/$phone/sent   # what the phone sent
The Django example (examples/django/README.md) against this demo:
  export WA_SIDECAR_API=unix:$work/api.sock
  export EMU=http://$emu   # the emulator, whose control API scans a QR (step 4 there)
EOF
	if [ -n "${WEBHOOK:-}" ]; then
		echo "  export WA_SIDECAR_WEBHOOK_SECRET_FILE=$work/webhook_secret   # the events go to $WEBHOOK"
	fi
	echo "Ctrl-C stops everything."
	wait "${pids[1]}" || true
fi

say "Done: everything started by this demo is being stopped"
