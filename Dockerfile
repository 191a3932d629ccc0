# figway and the demo's two services, as static binaries on an empty base
# image, running as an unprivileged user.
#
#   docker build -t figway .                          # the gateway (last stage)
#   docker build --target orders-worker -t orders-worker .
#   docker build --target orders-legacy -t orders-legacy .
#
# deploy/compose.yaml builds all three.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Each module builds alone: figway's go.mod replaces the worker, wire and
# batchconn modules with their directories (docs/development.md, "Modules").
ENV GOWORK=off
COPY go.mod go.sum ./
COPY worker/go.mod worker/go.sum worker/
COPY wire/go.mod wire/go.sum wire/
COPY internal/batchconn/go.mod internal/batchconn/go.sum internal/batchconn/
RUN go mod download
COPY . .
ARG VERSION=devel
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/figway ./cmd/figway \
 && go build -trimpath -ldflags "-s -w" -o /out/orders-worker ./examples/orders/worker \
 && go build -trimpath -ldflags "-s -w" -o /out/orders-legacy ./examples/orders/legacy

# scratch holds nothing but what is copied in: the binary and the CA roots
# (amqps:// without broker.tls.ca verifies against them).
FROM scratch AS base
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
USER 65532:65532

FROM base AS orders-worker
COPY --from=build /out/orders-worker /orders-worker
ENTRYPOINT ["/orders-worker"]

FROM base AS orders-legacy
COPY --from=build /out/orders-legacy /orders-legacy
EXPOSE 50051 8000
ENTRYPOINT ["/orders-legacy"]

FROM base AS figway
COPY --from=build /out/figway /figway
# gRPC ingress, REST ingress, admin (/metrics /healthz /readyz)
EXPOSE 8080 8081 9090
ENTRYPOINT ["/figway"]
CMD ["serve", "-config", "/etc/figway/figway.yaml"]
