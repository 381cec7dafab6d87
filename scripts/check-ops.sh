#!/usr/bin/env bash
# Checks the operations files: shell scripts, the systemd unit, the Prometheus
# rules and their tests, the Grafana dashboard. Run by `make lint`.
# Tools that are missing are skipped locally with a message; under CI=true
# a missing systemd-analyze or promtool is a failure (.ci/run installs them).
set -euo pipefail

usage() {
	echo "usage: scripts/check-ops.sh    (env: CI=true makes missing tools fatal; PROMTOOL=path)"
}
case "${1:-}" in
-h | --help) usage; exit 0 ;;
"") ;;
*) echo "check-ops: unexpected argument: $1" >&2; usage >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
ci=false
[ "${CI:-}" = true ] && ci=true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

checks=0
failed=0
ok() { checks=$((checks + 1)); echo "ok    $*"; }
fail() { checks=$((checks + 1)); failed=$((failed + 1)); echo "FAIL  $*"; }
skip() { echo "skip  $*"; }
# missing TOOL WHAT: a failure under CI, a skip locally.
missing() {
	if $ci; then fail "$2: $1 not found (CI=true)"; else skip "$2: $1 not found"; fi
}

# --- shell scripts -----------------------------------------------------------
mapfile -t scripts < <(ls scripts/*.sh 2>/dev/null; echo .ci/run)
for s in "${scripts[@]}"; do
	if out=$(bash -n "$s" 2>&1); then ok "bash -n $s"; else fail "bash -n $s"; echo "$out"; fi
done
if command -v shellcheck >/dev/null 2>&1; then
	if out=$(shellcheck -s bash "${scripts[@]}" 2>&1); then ok "shellcheck ${scripts[*]}"; else fail "shellcheck"; echo "$out"; fi
else
	skip "shellcheck: not installed"
fi

# --- systemd unit ------------------------------------------------------------
unit=systemd/wa-sidecar.service
if command -v systemd-analyze >/dev/null 2>&1; then
	# The binary and the user exist only on an installed host: those two
	# messages are expected here, anything else about the unit is a failure.
	out=$(systemd-analyze verify "$unit" 2>&1 || true)
	bad=$(printf '%s\n' "$out" | grep -v -e '^$' \
		-e 'Command /usr/local/bin/wa-supervisor is not executable' \
		-e "[Uu]ser.*wa-sidecar.*\(not found\|does not exist\|[Uu]nknown\)" \
		-e "[Gg]roup.*wa-sidecar.*\(not found\|does not exist\|[Uu]nknown\)" || true)
	ours=$(printf '%s\n' "$bad" | grep 'wa-sidecar' || true)
	if [ -z "$ours" ]; then
		ok "systemd-analyze verify $unit"
		# Lines about other units come from the host's own unit files.
		[ -z "$bad" ] || printf 'note  host units: %s\n' "$bad"
	else
		fail "systemd-analyze verify $unit"; echo "$ours"
	fi
	# Exposure above 4.0 is "MEDIUM" or worse: keep the unit "OK" or better.
	if out=$(systemd-analyze security --offline=true --threshold=40 "$unit" 2>&1); then
		ok "systemd-analyze security: $(printf '%s\n' "$out" | grep -o 'Overall exposure level.*' || true)"
	else
		fail "systemd-analyze security --threshold=40 $unit"; printf '%s\n' "$out" | grep -e '✗' -e 'Overall' || echo "$out"
	fi
else
	missing systemd-analyze "$unit"
fi

# --- Prometheus --------------------------------------------------------------
promtool=${PROMTOOL:-}
if [ -z "$promtool" ] || ! [ -x "$promtool" ]; then
	promtool=$(command -v promtool 2>/dev/null || true)
fi
[ -n "$promtool" ] || { [ -x .tools/promtool ] && promtool=.tools/promtool; } || true
rules=monitoring/prometheus/wa-sidecar-rules.yml
if [ -n "$promtool" ]; then
	if out=$("$promtool" check rules "$rules" 2>&1); then ok "promtool check rules $rules"; else fail "promtool check rules $rules"; echo "$out"; fi
	if out=$("$promtool" test rules monitoring/prometheus/wa-sidecar-rules.test.yml 2>&1); then
		ok "promtool test rules monitoring/prometheus/wa-sidecar-rules.test.yml"
	else
		fail "promtool test rules monitoring/prometheus/wa-sidecar-rules.test.yml"; echo "$out"
	fi
	# The example scrape config, with its rule_files pointed at the repo's rules.
	sed "s#/etc/prometheus/rules/#$PWD/monitoring/prometheus/#" monitoring/prometheus/scrape.yml >"$tmp/scrape.yml"
	if out=$("$promtool" check config "$tmp/scrape.yml" 2>&1); then ok "promtool check config monitoring/prometheus/scrape.yml"; else fail "promtool check config monitoring/prometheus/scrape.yml"; echo "$out"; fi
else
	missing promtool "$rules"
fi

# --- Grafana -----------------------------------------------------------------
for d in monitoring/grafana/*.json; do
	if command -v python3 >/dev/null 2>&1; then
		if out=$(python3 -m json.tool "$d" 2>&1 >/dev/null); then ok "JSON $d"; else fail "JSON $d"; echo "$out"; continue; fi
	elif command -v jq >/dev/null 2>&1; then
		if out=$(jq empty "$d" 2>&1); then ok "JSON $d"; else fail "JSON $d"; echo "$out"; continue; fi
	else
		missing "python3 or jq" "JSON $d"; continue
	fi
	# Every panel query must be valid PromQL: checked as recording rules.
	if [ -n "$promtool" ] && command -v python3 >/dev/null 2>&1; then
		if ! python3 - "$d" >"$tmp/dash-rules.yml" 2>&1 <<'EOF'; then
import json, sys
d = json.load(open(sys.argv[1]))
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            if t.get("expr"):
                exprs.append(t["expr"].replace("$__rate_interval", "5m").replace("$instance", ".*"))
walk(d.get("panels", []))
if not exprs:
    sys.exit("no queries found in the panels")
rules = [{"record": "dashboard:expr%d" % i, "expr": e} for i, e in enumerate(exprs)]
print(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
EOF
			fail "PromQL of $d: could not extract the queries"; cat "$tmp/dash-rules.yml"
		elif out=$("$promtool" check rules "$tmp/dash-rules.yml" 2>&1); then ok "PromQL of $d"; else fail "PromQL of $d"; echo "$out"; fi
	fi
done

if [ "$failed" -eq 0 ]; then
	echo "check-ops: all $checks checks OK"
else
	echo "check-ops: $failed of $checks checks FAILED" >&2
	exit 1
fi
