#!/usr/bin/env bash
# Archives an organization's auth directory and relinks it (a new QR is
# shown): the manual cure for a session stuck on Bad MAC errors. Goes through
# the running daemon (`wa-supervisor clear`), which keeps the archive as
# state_dir/auth_sessions/<org>_corrupted_<unix-ms>.
set -euo pipefail
export LC_ALL=C # byte-wise character ranges in the organization id check

usage() {
	echo "usage: scripts/clear-session.sh [-config FILE] ORG"
	echo "  FILE defaults to /etc/wa-sidecar/config.toml if present, else the repo's config.toml"
	echo "  env WA_SUPERVISOR=path overrides where wa-supervisor is found"
}

cd "$(dirname "$0")/.."
cfg=""
org=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	-config | --config)
		[ $# -ge 2 ] || { echo "clear-session.sh: $1 needs a file" >&2; usage >&2; exit 2; }
		cfg=$2; shift ;;
	-*) echo "clear-session.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
	*)
		[ -z "$org" ] || { echo "clear-session.sh: one organization at a time (got $org and $1)" >&2; usage >&2; exit 2; }
		org=$1 ;;
	esac
	shift
done
[ -n "$org" ] || { echo "clear-session.sh: missing ORG" >&2; usage >&2; exit 2; }
if ! [[ $org =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
	echo "clear-session.sh: invalid organization id \"$org\": use 1-64 of A-Z a-z 0-9 _ -" >&2
	exit 2
fi

if [ -z "$cfg" ]; then
	if [ -e /etc/wa-sidecar/config.toml ]; then cfg=/etc/wa-sidecar/config.toml; else cfg=$PWD/config.toml; fi
fi
[ -r "$cfg" ] || { echo "clear-session.sh: cannot read $cfg (root or group wa-sidecar needed on an installed host)" >&2; exit 1; }

sup=${WA_SUPERVISOR:-}
if [ -z "$sup" ]; then
	for c in "$(command -v wa-supervisor 2>/dev/null || true)" "$PWD/bin/wa-supervisor" /usr/local/bin/wa-supervisor; do
		if [ -n "$c" ] && [ -x "$c" ]; then sup=$c; break; fi
	done
fi
if [ -z "$sup" ] || ! [ -x "$sup" ]; then
	echo "clear-session.sh: wa-supervisor not found (make build, or set WA_SUPERVISOR)" >&2
	exit 1
fi

echo "clearing the session of organization $org via $sup (config $cfg)"
exec "$sup" clear -config "$cfg" "$org"
