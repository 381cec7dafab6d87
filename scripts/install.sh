#!/usr/bin/env bash
# Installs wa-sidecar as a systemd service on this host:
#   /usr/local/bin/wa-supervisor, /usr/local/lib/wa-sidecar/wa-worker,
#   system user wa-sidecar, /etc/wa-sidecar/{config.toml,api_key} (kept if
#   present), /etc/systemd/system/wa-sidecar.service, enabled and started.
# State lives in /var/lib/wa-sidecar, the API socket in /run/wa-sidecar/api.sock.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: scripts/install.sh [--dry-run] [--no-build] [--no-start]
  --dry-run   print every step instead of doing it (needs no root)
  --no-build  use bin/ as it is (e.g. `make build` as yourself, then sudo this)
  --no-start  install and enable, but do not start or restart the service
env: DESTDIR=/some/dir stages the files there (no user, no chown, no systemctl).
EOF
}

dry=false
build=true
start=true
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) usage; exit 0 ;;
	-n | --dry-run) dry=true ;;
	--no-build) build=false ;;
	--no-start) start=false ;;
	*) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

cd "$(dirname "$0")/.."
repo=$PWD
dest=${DESTDIR:-}
staged=false
[ -n "$dest" ] && staged=true

user=wa-sidecar
bindir=/usr/local/bin
libdir=/usr/local/lib/wa-sidecar
docdir=/usr/local/share/doc/wa-sidecar
etc=/etc/wa-sidecar
state=/var/lib/wa-sidecar
sock=/run/wa-sidecar/api.sock
unitdir=/etc/systemd/system

if ! $dry && ! $staged && [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: must run as root (or try --dry-run, or DESTDIR=...)" >&2
	exit 1
fi

# run CMD...: do it, or print it under --dry-run.
run() {
	if $dry; then
		printf '+'; printf ' %q' "$@"; printf '\n'
	else
		"$@"
	fi
}
# host CMD...: a step that changes the host (users, ownership, systemd):
# skipped when staging into DESTDIR.
host() {
	if $staged; then
		printf 'skip (DESTDIR):'; printf ' %q' "$@"; printf '\n'
	else
		run "$@"
	fi
}

step() { echo "==> $*"; }

# 1. Build.
if $build; then
	step "build"
	run make build
fi
if ! $dry; then
	for b in bin/wa-supervisor bin/wa-worker; do
		[ -x "$b" ] || { echo "install.sh: $b is missing: run make build first" >&2; exit 1; }
	done
fi

# 2. User.
step "system user $user"
if getent passwd "$user" >/dev/null 2>&1; then
	echo "user $user exists"
else
	host useradd --system --user-group --home-dir "$state" --no-create-home \
		--shell /usr/sbin/nologin --comment "wa-sidecar WhatsApp sessions" "$user"
fi

# 3. Binaries. wa-worker is only ever started by the supervisor, so it is not on PATH.
step "binaries"
run install -d -m 0755 "$dest$bindir" "$dest$libdir" "$dest$docdir" "$dest$docdir/docs"
run install -m 0755 bin/wa-supervisor "$dest$bindir/wa-supervisor"
run install -m 0755 bin/wa-worker "$dest$libdir/wa-worker"
run install -m 0644 README.md "$dest$docdir/README.md"
run install -m 0644 docs/*.md "$dest$docdir/docs/"

# 4. Configuration directory: root owns it, the service reads it.
step "configuration in $etc"
run install -d -m 0750 "$dest$etc"
host chown root:"$user" "$dest$etc"

# The repo's config.toml with the paths of an installed host. Every
# replacement must happen exactly once, else config.toml changed shape and
# this script needs updating.
render_config() {
	awk -v state="$state" -v worker="$libdir/wa-worker" -v sock="unix:$sock" -v key="$etc/api_key" '
		/^\[/ { section = $0; sub(/[ \t]*#.*/, "", section) }
		section == "" && /^state_dir[ \t]*=/     { print "state_dir = \"" state "\""; n++; next }
		section == "" && /^worker_binary[ \t]*=/ { print "worker_binary = \"" worker "\""; n++; next }
		section == "[api]" && /^listen[ \t]*=/       { print "listen = \"" sock "\""; n++; next }
		section == "[api]" && /^api_key_file[ \t]*=/ { print "api_key_file = \"" key "\""; n++; next }
		{ print }
		END { if (n != 4) { print "install.sh: expected 4 keys to rewrite in config.toml, found " n > "/dev/stderr"; exit 1 } }
	' "$repo/config.toml"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render_config >"$tmp/config.toml"

if [ -e "$dest$etc/config.toml" ]; then
	echo "$etc/config.toml exists: kept (compare with the repo's config.toml after an upgrade)"
else
	if $dry; then
		echo "would write $etc/config.toml (0640 root:$user): the repo's config.toml with"
		diff "$repo/config.toml" "$tmp/config.toml" | sed -n 's/^> /    /p' || true
	fi
	run install -m 0640 "$tmp/config.toml" "$dest$etc/config.toml"
	host chown root:"$user" "$dest$etc/config.toml"
fi

if [ -e "$dest$etc/api_key" ]; then
	echo "$etc/api_key exists: kept"
else
	# 32 random bytes as hex; Django sends it as the x-api-key header. No
	# newline after it: a client that sends the file's content as it is
	# would send an invalid header value.
	if ! $dry; then
		(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$tmp/api_key")
	fi
	echo "new random API key in $etc/api_key (0640 root:$user); give it to the Django settings"
	run install -m 0640 "$tmp/api_key" "$dest$etc/api_key"
	host chown root:"$user" "$dest$etc/api_key"
fi

# 5. Unit.
step "systemd unit"
run install -d -m 0755 "$dest$unitdir"
run install -m 0644 systemd/wa-sidecar.service "$dest$unitdir/wa-sidecar.service"
host systemctl daemon-reload
if $start; then
	if ! $staged && systemctl is-active --quiet wa-sidecar 2>/dev/null; then
		host systemctl enable wa-sidecar
		echo "wa-sidecar is running the old binaries: scripts/clean-restart.sh loads the new ones"
		echo "(a restart reconnects every organization; do it when that is acceptable)"
	else
		host systemctl enable --now wa-sidecar
	fi
else
	host systemctl enable wa-sidecar
fi

step "done"
echo "status: wa-supervisor status -config $etc/config.toml"
echo "logs:   journalctl -u wa-sidecar -f"
