# llm-observer build and test entry points. Everything that touches the
# kernel needs root: run `sudo make run` and `sudo make test`.

SHELL    := /bin/bash
GO        ?= go
BINARY    ?= bin/llm-observer
PREFIX    ?= /usr/local
GENERATED := internal/capture/observer_bpfel.go internal/capture/observer_bpfel.o
FUZZTIME  ?= 30s

.PHONY: build generate check-generated test run bench bench-load fuzz lint install uninstall clean

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
SYSTEMD_DIR ?= /etc/systemd/system

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BINARY) ./cmd/llm-observer

# Rebuild the eBPF objects and their Go bindings (needs clang and libbpf-dev).
generate:
	cd internal/capture && $(GO) generate ./...

# Fails when the committed eBPF objects differ from what the sources build to.
check-generated: generate
	git diff --exit-code --stat -- $(GENERATED) || \
		(echo "generated eBPF files are stale: run 'make generate' and commit them" >&2; exit 1)

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . >&2; echo "gofmt needed" >&2; exit 1)
	$(GO) vet ./...

# The whole suite, kernel tests included: must run as root. The end-to-end
# package runs on its own afterwards, so that the timing it checks against
# the test server's pacing is not disturbed by the other packages' tests.
test: lint
	@test "$$(id -u)" = 0 || (echo "make test loads eBPF programs: run it as root (sudo make test)" >&2; exit 1)
	@set -o pipefail; \
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e$$) 2>&1 | tee test-output.log && \
	$(GO) test -count=1 -timeout 10m -v ./e2e 2>&1 | tee -a test-output.log | grep -E '^(---|ok|FAIL|PASS|panic)|e2e_test|_test.go:' ; \
	status=$$?; \
	if grep -q -- '--- SKIP' test-output.log; then echo "a test was skipped; every test must run here" >&2; exit 1; fi; \
	exit $$status

run: build
	./$(BINARY)

# Overhead and hot-path benchmarks; see README "Performance".
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The load benchmark: model server, keep-alive client and the observer as
# real processes, observer off and on in turn; prints the table the README's
# "Performance" section shows. Needs root. LOAD_FLAGS="-duration 5s -rounds 1"
# is a quick run (about 3 minutes); the default takes about 10.
LOAD_FLAGS ?= -duration 10s -rounds 2
bench-load:
	@test "$$(id -u)" = 0 || (echo "make bench-load runs the observer, which loads eBPF programs: run it as root" >&2; exit 1)
	$(GO) run ./bench/load $(LOAD_FLAGS)

# Every fuzz target for FUZZTIME each. Go 1.26's fuzzing engine can stop at
# its deadline with "context deadline exceeded" and no failing input (Go
# issue 75804, fixed in Go 1.27); that alone is not a finding. Any other
# failure, or a new input written under testdata/fuzz, is.
fuzz:
	@for pkg in ./internal/decode ./internal/genai ./internal/gobin ./internal/k8s ./internal/top ./deploy; do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			before=$$(ls $$pkg/testdata/fuzz/$$f 2>/dev/null | wc -l); \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg 2>&1 | tee fuzz-output.log; \
			status=$${PIPESTATUS[0]}; \
			after=$$(ls $$pkg/testdata/fuzz/$$f 2>/dev/null | wc -l); \
			if [ $$status != 0 ]; then \
				if [ $$after = $$before ] && grep -q 'context deadline exceeded' fuzz-output.log && ! grep -q 'Failing input' fuzz-output.log; then \
					echo "$$f: stopped at the deadline without a failing input (Go issue 75804); not a finding"; \
				else \
					echo "$$f found a failure: see $$pkg/testdata/fuzz/$$f" >&2; rm -f fuzz-output.log; exit 1; \
				fi; \
			fi; \
		done; \
	done; rm -f fuzz-output.log

# Installs the binary and the systemd unit and starts the service; settings
# go in /etc/default/llm-observer. With DESTDIR set (packaging) it only
# copies files.
install: build
	install -D -m 0755 $(BINARY) $(DESTDIR)$(PREFIX)/bin/llm-observer
	install -d $(DESTDIR)$(SYSTEMD_DIR)
	sed 's#/usr/local/bin/llm-observer#$(PREFIX)/bin/llm-observer#g' deploy/llm-observer.service \
		> $(DESTDIR)$(SYSTEMD_DIR)/llm-observer.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_DIR)/llm-observer.service
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		systemctl daemon-reload && systemctl enable --now llm-observer; \
	fi

# Leaves /etc/default/llm-observer: it is the user's.
uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		systemctl disable --now llm-observer || true; \
	fi
	rm -f $(DESTDIR)$(SYSTEMD_DIR)/llm-observer.service $(DESTDIR)$(PREFIX)/bin/llm-observer
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf bin test-output.log fuzz-output.log
