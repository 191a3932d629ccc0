# figway. `make test` is what CI runs (.ci/run); it works on a fresh Debian
# machine as root: scripts/rabbitmq.sh installs RabbitMQ there if it is missing.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go

.PHONY: build test demo bench generate clean

build:
	$(GO) build -o bin/figway ./cmd/figway
	$(GO) build -o bin/orders-worker ./examples/orders/worker
	$(GO) build -o bin/orders-legacy ./examples/orders/legacy

# Without a broker (or the other languages' worker packages, or chromium for
# the status page's browser test) the tests skip, or fail when CI=true
# (internal/testing/rabbitmq decides); so a failed install stops the run only when
# CI=true.
test:
	scripts/rabbitmq.sh ensure || [ "$${CI:-}" != true ]
	scripts/workers.sh ensure || [ "$${CI:-}" != true ]
	scripts/chromium.sh ensure || [ "$${CI:-}" != true ]
	scripts/jaeger.sh ensure || [ "$${CI:-}" != true ]
	$(GO) vet ./...
	@unformatted="$$(git ls-files -co --exclude-standard -- '*.go' ':!:gen/' \
		| while read -r f; do if [ -f "$$f" ]; then echo "$$f"; fi; done | xargs -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (gofmt -w FILE):"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) test -race -count=1 -timeout 12m ./...

demo:
	scripts/demo.sh

# figway against grpc-echo, raw AMQP RPC and the tutorial RPC pattern, on a
# private RabbitMQ node; BENCHFLAGS="-duration 10s -profile /tmp/cpu.pprof".
bench:
	scripts/rabbitmq.sh ensure
	$(GO) run ./bench $(BENCHFLAGS)

generate:
	scripts/gen.sh

clean:
	scripts/rabbitmq.sh stop-demo
	rm -rf bin .demo
