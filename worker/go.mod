module github.com/figway/figway/worker

go 1.26.8

require (
	github.com/figway/figway/internal/batchconn v0.0.0-00010101000000-000000000000
	github.com/figway/figway/wire v0.0.0-00010101000000-000000000000
	github.com/google/go-cmp v0.7.0
	github.com/rabbitmq/amqp091-go v1.16.0
	go.opentelemetry.io/otel v1.47.0
	go.opentelemetry.io/otel/trace v1.47.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261110000943-09e21b237f2c // indirect
)

// The figway modules the worker imports, from this repository's layout:
// see docs/development.md, "Modules".
replace (
	github.com/figway/figway/internal/batchconn => ../internal/batchconn
	github.com/figway/figway/wire => ../wire
)
