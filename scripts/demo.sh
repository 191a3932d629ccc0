#!/usr/bin/env bash
# Runs the orders demo: a RabbitMQ broker, the legacy orders service, the
# migrated orders worker and figway in front of them. Ctrl-C stops them all.
set -euo pipefail

cd "$(dirname "$0")/.."

# The command lines of the demo; adjust here when the binaries' flags change.
AMQP_URL=amqp://guest:guest@127.0.0.1:5672/
WORKER_CMD=(bin/orders-worker -amqp "$AMQP_URL")
LEGACY_CMD=(bin/orders-legacy -grpc 127.0.0.1:50051 -http 127.0.0.1:8000) # legacy: in the routes file
FIGWAY_CMD=(bin/figway serve -config examples/orders/figway.yaml)
GRPC_HOST=127.0.0.1
GRPC_PORT=8080
REST=http://127.0.0.1:8081 # server.http of the routes file
ADMIN=http://127.0.0.1:9090 # server.admin of the routes file
PROTOSET=examples/orders/orders.binpb
GRPCURL_PKG=github.com/fullstorydev/grpcurl/cmd/grpcurl@latest

mkdir -p .demo
say() { printf 'demo: %s\n' "$*" >&2; }

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

WORKER_PID=
LEGACY_PID=
FIGWAY_PID=
BROKER_STARTED=
CLEANED=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	[ -z "$CLEANED" ] || return 0
	CLEANED=1
	trap - INT TERM
	local pid
	for pid in "$FIGWAY_PID" "$WORKER_PID" "$LEGACY_PID"; do # figway first: it drains calls the others answer
		[ -n "$pid" ] || continue
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$BROKER_STARTED" ]; then
		scripts/rabbitmq.sh stop-demo || true
	fi
}
trap cleanup EXIT
trap 'say "stopping"; exit 130' INT TERM

show_logs() {
	local f
	for f in .demo/figway.log .demo/worker.log .demo/legacy.log; do
		[ -f "$f" ] || continue
		say "--- last lines of $f"
		tail -n 20 "$f" >&2
	done
}

# 1. A broker on 127.0.0.1:5672: an existing one, a private node, or Docker.
scripts/rabbitmq.sh ensure 3.10 || say "continuing: start-demo reuses a running broker or falls back to Docker"
BROKER_STARTED=1
scripts/rabbitmq.sh start-demo

# 2. The binaries.
make build

if tcp_open "$GRPC_HOST" "$GRPC_PORT"; then
	say "something already listens on $GRPC_HOST:$GRPC_PORT; stop it first"
	exit 1
fi

# 3. Worker and gateway, in the background, each in a session of its own: a
# Ctrl-C in the terminal reaches only this script, whose cleanup stops them
# in order with SIGTERM. (Go programs that handle SIGINT would otherwise get
# it too, despite the SIG_IGN that background jobs of a script inherit.)
setsid "${LEGACY_CMD[@]}" >.demo/legacy.log 2>&1 &
LEGACY_PID=$!
say "legacy service started (pid $LEGACY_PID): ${LEGACY_CMD[*]}"
setsid "${WORKER_CMD[@]}" >.demo/worker.log 2>&1 &
WORKER_PID=$!
say "worker started (pid $WORKER_PID): ${WORKER_CMD[*]}"
setsid "${FIGWAY_CMD[@]}" >.demo/figway.log 2>&1 &
FIGWAY_PID=$!
say "figway started (pid $FIGWAY_PID): ${FIGWAY_CMD[*]}"

deadline=$((SECONDS + 20))
until tcp_open "$GRPC_HOST" "$GRPC_PORT"; do
	if ! kill -0 "$FIGWAY_PID" 2>/dev/null || ! kill -0 "$WORKER_PID" 2>/dev/null || ! kill -0 "$LEGACY_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
		say "figway is not accepting gRPC on $GRPC_HOST:$GRPC_PORT (exited, or not within 20s)"
		show_logs
		exit 1
	fi
	sleep 0.2
done
say "figway accepts gRPC on $GRPC_HOST:$GRPC_PORT"

# figway fails a migrated rpc call at once while its queue has no consumer
# (docs/errors.md); wait until it counts the worker's.
if command -v curl >/dev/null 2>&1; then
	deadline=$((SECONDS + 20))
	until curl -fs "$ADMIN/metrics" | grep -Eq '^figway_route_consumers\{.*\} [1-9]'; do
		if ! kill -0 "$WORKER_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
			say "figway counts no consumer on the worker's queue (the worker exited, or not within 20s)"
			show_logs
			exit 1
		fi
		sleep 0.2
	done
	say "figway sees the worker consuming"
fi

# 4. grpcurl, to try it.
if command -v grpcurl >/dev/null 2>&1; then
	GRPCURL=grpcurl
else
	GRPCURL=.bin/grpcurl
	if [ ! -x "$GRPCURL" ]; then
		say "installing grpcurl into .bin/"
		GOBIN="$PWD/.bin" go install "$GRPCURL_PKG"
	fi
fi

cat <<EOF

figway is running (logs: .demo/figway.log, .demo/worker.log, .demo/legacy.log).
Where each method goes: bin/figway routes -config examples/orders/figway.yaml
(GetOrder and PlaceOrder are migrated, ListOrders is a 50% canary sticky by
x-user, CancelOrder is answered by legacy and shadowed to the worker with the
replies compared, WatchOrder is migrated: the worker streams its events). Try:

  $GRPCURL -plaintext -protoset $PROTOSET -d '{"order_id":"o-1"}' $GRPC_HOST:$GRPC_PORT orders.v1.OrderService/GetOrder
  $GRPCURL -plaintext -protoset $PROTOSET -d '{"customer_id":"c-1","items":[{"sku":"book","quantity":2,"unit_price_cents":1250}]}' $GRPC_HOST:$GRPC_PORT orders.v1.OrderService/PlaceOrder
  $GRPCURL -plaintext -v -H 'x-user: alice' -d '{"customer_id":"c-1"}' $GRPC_HOST:$GRPC_PORT orders.v1.OrderService/ListOrders   # x-served-by: legacy, or not
  $GRPCURL -plaintext -d '{"order_id":"o-1","reason":"changed my mind"}' $GRPC_HOST:$GRPC_PORT orders.v1.OrderService/CancelOrder  # legacy answers; the worker's copy is compared
  $GRPCURL -plaintext -d '{"order_id":"o-1"}' $GRPC_HOST:$GRPC_PORT orders.v1.OrderService/WatchOrder                         # a stream from the worker: an event a second, ten in all
  $GRPCURL -plaintext -H 'x-figway-pin: legacy' -d '{"order_id":"o-1"}' $GRPC_HOST:$GRPC_PORT orders.v1.OrderService/WatchOrder  # the same stream from legacy

The same methods over REST/JSON, from the google.api.http rules in the descriptor set:

  curl -s $REST/v1/orders/o-1
  curl -s '$REST/v1/orders?customer_id=c-1&status=ORDER_STATUS_PLACED&page_size=10'
  curl -si -H 'x-user: alice' '$REST/v1/orders?customer_id=c-1'        # the canary: Grpc-Metadata-X-Served-By: legacy, or not
  curl -si $REST/v1/orders -d '{"customerId":"c-1","items":[{"sku":"book","quantity":2,"unitPriceCents":1250}]}'   # 201 Created and Location, as legacy answers
  curl -si -H 'x-figway-pin: legacy' $REST/v1/orders/o-1                # pinned to legacy: Grpc-Metadata-X-Served-By: legacy
  curl -s $REST/v1/orders/o-1:cancel -d '{"reason":"changed my mind"}'
  curl -s -H 'Grpc-Timeout: 1S' $REST/v1/orders/o-404                      # the worker's NOT_FOUND as 404
  curl -si $REST/v1/orders:export -d '{"customerId":"c-1"}'                # slow: 202 after 1s, Location: /v1/operations/<id>
  curl -s "$REST/v1/operations/<id>?wait=10s"                              # the export, once done (any figway answers)
  curl -sN $REST/v1/orders/o-1:watch                                       # WatchOrder's stream: a {"result": ...} line per event, as it comes
  curl -sN -H 'Accept: text/event-stream' $REST/v1/orders/o-1:watch        # the same as server-sent events

Press Ctrl-C to stop figway, the worker and the demo broker.
EOF

# 5. Until Ctrl-C, or until one of them exits on its own.
set +e
wait -n "$FIGWAY_PID" "$WORKER_PID" "$LEGACY_PID"
status=$?
set -e
say "a demo process exited on its own (status $status)"
show_logs
exit 1
