#!/usr/bin/env bash
# Restarts the wa-sidecar service and waits until its status API answers.
# The supervisor closes every worker on SIGTERM and restarts them through its
# start queue (staggered, at most workers.max_live at once), so every
# organization reconnects: do it when that is acceptable.
set -euo pipefail

usage() {
	echo "usage: scripts/clean-restart.sh [-config FILE] [-timeout SECONDS]"
	echo "  FILE defaults to /etc/wa-sidecar/config.toml; SECONDS (default 90) is how long to wait for the API"
	echo "  env WA_SUPERVISOR=path overrides where wa-supervisor is found; WA_SIDECAR_UNIT the unit (wa-sidecar)"
}

cfg=/etc/wa-sidecar/config.toml
timeout=90
unit=${WA_SIDECAR_UNIT:-wa-sidecar}
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	-config | --config)
		[ $# -ge 2 ] || { echo "clean-restart.sh: $1 needs a file" >&2; usage >&2; exit 2; }
		cfg=$2; shift ;;
	-timeout | --timeout)
		[ $# -ge 2 ] || { echo "clean-restart.sh: $1 needs a number of seconds" >&2; usage >&2; exit 2; }
		timeout=$2; shift ;;
	*) echo "clean-restart.sh: unexpected argument: $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
if ! [[ $timeout =~ ^[0-9]{1,5}$ ]] || [ "$timeout" -eq 0 ]; then
	echo "clean-restart.sh: -timeout must be a whole number of seconds > 0, got \"$timeout\"" >&2
	exit 2
fi
[ -r "$cfg" ] || { echo "clean-restart.sh: cannot read $cfg (root or group wa-sidecar needed)" >&2; exit 1; }

sup=${WA_SUPERVISOR:-}
if [ -z "$sup" ]; then
	for c in "$(command -v wa-supervisor 2>/dev/null || true)" /usr/local/bin/wa-supervisor; do
		if [ -n "$c" ] && [ -x "$c" ]; then sup=$c; break; fi
	done
fi
if [ -z "$sup" ] || ! [ -x "$sup" ]; then
	echo "clean-restart.sh: wa-supervisor not found (set WA_SUPERVISOR)" >&2
	exit 1
fi

echo "restarting $unit"
# Type=notify: this returns once the new supervisor has sent READY=1, or fails.
systemctl restart "$unit"

deadline=$((SECONDS + timeout))
out=""
while :; do
	if out=$("$sup" status -config "$cfg" 2>&1); then
		echo "$unit is healthy:"
		echo "$out"
		exit 0
	fi
	if systemctl is-failed --quiet "$unit"; then
		echo "clean-restart.sh: $unit failed to start" >&2
		break
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "clean-restart.sh: $unit not healthy after ${timeout}s; last answer: $out" >&2
		break
	fi
	sleep 2
done
systemctl status --no-pager --lines=0 "$unit" >&2 || true
journalctl -u "$unit" -n 20 --no-pager >&2 || true
exit 1
