# figway. `make test` is what CI runs (.ci/run); it works on a fresh Debian
# machine as root: scripts/rabbitmq.sh installs RabbitMQ 3.10 and 4.0 there if
# they are missing.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go

.PHONY: build test soak demo bench generate clean

build:
	$(GO) build -o bin/figway ./cmd/figway
	$(GO) build -o bin/orders-worker ./examples/orders/worker
	$(GO) build -o bin/orders-legacy ./examples/orders/legacy

# Every package of the repository's modules (docs/development.md,
# "Modules"): go.work makes them one workspace, and ./... stops at a
# module's edge.
PKGS := ./... ./bench/... ./internal/batchconn/... ./wire/... ./worker/...

# The packages whose tests run on RabbitMQ 3.10 as well: the whole suite runs
# on 4.0, then these again on 3.10, where the broker behaves differently under
# faults (see docs/operations.md, RabbitMQ versions).
TEST_ON_3_10 := ./test/cluster/ ./test/breaker/ ./test/worker/ ./adapters/amqp/

# Without a broker (or the other languages' worker packages, chromium for
# the status page's browser test, or iptables for the partition test) the
# tests skip, or fail when CI=true
# (internal/testing/rabbitmq decides); so a failed install stops the run only when
# CI=true. Where RabbitMQ 4.0 cannot be had (it needs root), and CI is not
# true, the whole suite runs on 3.10 instead. Both passes run even if the
# first fails.
test:
	scripts/rabbitmq.sh ensure 3.10 || [ "$${CI:-}" != true ]
	scripts/workers.sh ensure || [ "$${CI:-}" != true ]
	scripts/chromium.sh ensure || [ "$${CI:-}" != true ]
	scripts/jaeger.sh ensure || [ "$${CI:-}" != true ]
	scripts/iptables.sh ensure || [ "$${CI:-}" != true ]
	$(GO) vet $(PKGS)
	@unformatted="$$(git ls-files -co --exclude-standard -- '*.go' ':!:gen/' \
		| while read -r f; do if [ -f "$$f" ]; then echo "$$f"; fi; done | xargs -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (gofmt -w FILE):"; echo "$$unformatted"; exit 1; \
	fi
	@if scripts/rabbitmq.sh ensure 4.0; then \
		rc=0; \
		echo "==== make test 1/2: every package, on RabbitMQ 4.0 (FIGWAY_TEST_RABBITMQ=4.0)"; \
		FIGWAY_TEST_RABBITMQ=4.0 $(GO) test -race -count=1 -timeout 25m $(PKGS) || rc=1; \
		echo "==== make test 2/2: $(TEST_ON_3_10) again, on RabbitMQ 3.10 (FIGWAY_TEST_RABBITMQ=3.10)"; \
		FIGWAY_TEST_RABBITMQ=3.10 $(GO) test -race -count=1 -timeout 25m $(TEST_ON_3_10) || rc=1; \
		exit $$rc; \
	elif [ "$${CI:-}" = true ]; then \
		echo "==== make test: RabbitMQ 4.0 cannot be had, and CI=true: failing"; exit 1; \
	else \
		echo "==== make test: RabbitMQ 4.0 cannot be had (see above): every package, on RabbitMQ 3.10 only"; \
		FIGWAY_TEST_RABBITMQ=3.10 $(GO) test -race -count=1 -timeout 25m $(PKGS); \
	fi

# The soak (test/soak, docs/operations.md "Soak"): two figways and two SDK
# workers on a private three-node cluster under a mixed load, with reloads
# and node restarts, for DURATION; it prints one table at the end. `make
# test` runs the same test for 2 minutes. RabbitMQ 4.0 unless
# FIGWAY_TEST_RABBITMQ says otherwise; without -race, whose shadow memory
# would blur the replicas' figures (the replicas are built without it
# anyway).
DURATION ?= 30m
SOAK_TIMEOUT ?= 3h
soak:
	scripts/rabbitmq.sh ensure "$${FIGWAY_TEST_RABBITMQ:-4.0}"
	FIGWAY_TEST_RABBITMQ="$${FIGWAY_TEST_RABBITMQ:-4.0}" FIGWAY_SOAK_DURATION=$(DURATION) \
		$(GO) test -count=1 -v -run '^TestSoak$$' -timeout $(SOAK_TIMEOUT) ./test/soak/

demo:
	scripts/demo.sh

# figway against grpc-echo, raw AMQP RPC and the tutorial RPC pattern, on a
# private RabbitMQ node; BENCHFLAGS="-duration 10s -profile /tmp/cpu.pprof".
bench:
	scripts/rabbitmq.sh ensure 3.10
	$(GO) run ./bench $(BENCHFLAGS)

generate:
	scripts/gen.sh

clean:
	scripts/rabbitmq.sh stop-demo
	rm -rf bin .demo
