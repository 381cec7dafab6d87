# wa-sidecar: `make run` builds and serves with config.toml; `make test` runs
# everything CI checks.
GO        ?= go
BIN       := bin
CONFIG    ?= config.toml
TOOLS     := $(CURDIR)/.tools
PROMTOOL  ?= $(shell command -v promtool 2>/dev/null || echo $(TOOLS)/promtool)
export PROMTOOL
export CGO_ENABLED ?= 0

.PHONY: all build run test unit unit-shifted e2e lint fuzz proto bench bench-table bench-smoke soak demo clean tools

all: build

build:
	$(GO) build -o $(BIN)/wa-supervisor ./supervisor/cmd/wa-supervisor
	$(GO) build -o $(BIN)/wa-worker ./worker/cmd/wa-worker
	$(GO) build -o $(BIN)/wa-emulator ./worker/cmd/wa-emulator

run: build
	$(BIN)/wa-supervisor serve -config $(CONFIG)

# Regenerates the plugin contract; needs protoc, protoc-gen-go and
# protoc-gen-go-grpc (`make tools` installs the two Go plugins).
proto:
	cd shared/contract && PATH="$$PATH:$$($(GO) env GOPATH)/bin" protoc \
		--go_out=pb --go_opt=paths=source_relative \
		--go-grpc_out=pb --go-grpc_opt=paths=source_relative worker.proto

tools:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

test: lint unit unit-shifted fuzz e2e bench-smoke

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	bash scripts/check-ops.sh

# Packages whose tests drive real whatsmeow clients: whatsmeow's socket has
# a known data race between Disconnect and in-flight sends
# (tulir/whatsmeow#1085), so the race detector runs on their own code's
# tests only, and the rest runs without it.
WHATSMEOW_PKGS := ./worker/emulator ./worker/session
SESSION_UNIT   := TestTranslate|TestQueue|TestCheckAuthDir|TestParseStatm|TestLogLines

# Unit and process tests of every package, with the race detector.
unit: build
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v -e /e2e -e /worker/emulator -e /worker/session)
	CGO_ENABLED=1 $(GO) test -race -count=1 -run '$(SESSION_UNIT)' ./worker/session
	$(GO) test -count=1 -timeout 10m $(WHATSMEOW_PKGS)

# The unit tests again with every fake clock's origin a year ahead of the
# wall clock (supervisor/clock/clocktest): a test that mixes the wall clock
# with a fake one fails here on any date, not only once its pinned date has
# passed. Packages without a fake clock are left out.
SHIFTED_PKGS := $$($(GO) list ./... | grep -v -e /e2e -e /worker/emulator -e /worker/session)
unit-shifted:
	WA_SIDECAR_TEST_CLOCK_SHIFT=8760h $(GO) test -count=1 -timeout 10m $(SHIFTED_PKGS)

# The end-to-end suite: real supervisor and worker binaries against the
# emulator; the supervisor is built with the race detector (the worker is
# not, see WHATSMEOW_PKGS).
e2e:
	CGO_ENABLED=1 $(GO) build -race -o $(BIN)/race/ ./supervisor/cmd/wa-supervisor
	$(GO) build -o $(BIN)/race/ ./worker/cmd/wa-worker
	WA_SIDECAR_BIN=$(CURDIR)/$(BIN)/race $(GO) test -count=1 -timeout 10m ./supervisor/e2e/...

# Every fuzz target for FUZZTIME each (a few seconds in `make test`; run a
# long session with e.g. `make fuzz FUZZTIME=10m`). Inputs that crash are
# written to the package's testdata/fuzz/ and stay there as regression cases.
# Go 1.26's coordinator can fail a target with a bare "context deadline
# exceeded" when -fuzztime ends under load (golang/go#75804): no input is
# written then, and that outcome alone is not a finding.
FUZZTIME ?= 3s
FUZZ_TARGETS := \
	./shared/config:FuzzLoad \
	./shared/orgid:FuzzValidate \
	./shared/phone:FuzzParse \
	./shared/phone/e164:FuzzValidate \
	./shared/fingerprint:FuzzParse \
	./shared/logline:FuzzRelay \
	./supervisor/statusapi:FuzzRequestBodies \
	./supervisor/fleet:FuzzTranslate

fuzz:
	@out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg >$$out 2>&1 && continue; \
		if grep -q 'context deadline exceeded' $$out && ! grep -q -e 'Failing input written' -e 'panic:' $$out; then \
			echo "  stopped at the -fuzztime boundary with nothing found (Go's coordinator race, golang/go#75804, fixed in Go 1.27)"; \
			continue; \
		fi; \
		cat $$out; exit 1; \
	done

# The Go microbenchmarks (benchstat's input format), then bench-table.
# WA_SIDECAR_BIN spares the e2e package's TestMain a build of its own.
bench: build
	WA_SIDECAR_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchmem ./...
	@$(MAKE) --no-print-directory bench-table

# One table, each figure the median of BENCH_RUNS runs: worker and
# supervisor memory against K sessions in one process, reaction times, the
# status API (bench/cmd/wa-bench; `make bench-table BENCH_RUNS=5`).
BENCH_RUNS ?= 3
bench-table: build
	$(GO) build -o $(BIN)/ ./bench/cmd/wa-bench ./bench/cmd/wa-oneproc ./bench/cmd/wa-bare
	$(BIN)/wa-bench -bin $(BIN) -runs $(BENCH_RUNS)

# What `make bench` runs, each once and with nothing asserted about its
# figures: every Go benchmark for one iteration and one run of the table,
# so that a change that breaks a benchmark fails `make test` instead of the
# next `make bench` (a benchmark's recipients stopped being valid numbers
# once recipients were parsed, and nothing noticed).
BENCH_PKGS = $$(grep -rl --include='*_test.go' '^func Benchmark' . | xargs -n1 dirname | sort -u)
bench-smoke: build
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x $(BENCH_PKGS)
	@$(MAKE) --no-print-directory bench-table BENCH_RUNS=1

# The soak test, not in `make test`: real supervisor and workers against the
# emulator through Bad MAC storms, worker kills, supervisor restarts
# (SIGTERM and SIGKILL) and LOGOUTs under a steady stream of sends, for
# SOAK_DURATION; prints its tables and exits 1 with a line per finding.
# SOAK_SEED repeats a run's schedule (soak/cmd/wa-soak -h).
SOAK_DURATION ?= 10m
SOAK_SEED     ?=
soak: build
	$(GO) build -o $(BIN)/ ./soak/cmd/wa-soak
	$(BIN)/wa-soak -bin $(BIN) -duration $(SOAK_DURATION) $(if $(SOAK_SEED),-seed $(SOAK_SEED))

demo: build
	scripts/demo.sh

clean:
	rm -rf $(BIN)
