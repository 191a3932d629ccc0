#!/usr/bin/env bash
# gen.sh regenerates gen/, examples/orders/orders.binpb and
# adapters/httpin/testdata/testapi.binpb from proto/.
#
# The tools are pinned and installed into .bin/ (git-ignored), so the output
# depends only on this script, go.mod and the .proto files. Each tool is
# (re)installed only when .bin/ lacks it or holds another version. Building buf
# the first time takes a few minutes.
#
# Nothing here reaches the Buf Schema Registry: google/api comes from the local
# module third_party/googleapis, google/protobuf from buf's built-in WKTs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
bin=$root/.bin

buf_version=v1.75.0
# protoc-gen-go must match the runtime the generated code links against.
protoc_gen_go_version=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
protoc_gen_go_grpc_version=v1.6.2

# install NAME MODULE PACKAGE VERSION installs PACKAGE@VERSION into .bin/ as
# NAME unless that exact build of MODULE is already there.
install() {
	local name=$1 module=$2 pkg=$3 version=$4 have=""
	if [[ -x $bin/$name ]]; then
		have=$(go version -m "$bin/$name" | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }')
	fi
	if [[ $have != "$version" ]]; then
		echo "gen.sh: installing $pkg@$version" >&2
		GOBIN=$bin go install "$pkg@$version"
	fi
}

install buf github.com/bufbuild/buf \
	github.com/bufbuild/buf/cmd/buf "$buf_version"
install protoc-gen-go google.golang.org/protobuf \
	google.golang.org/protobuf/cmd/protoc-gen-go "$protoc_gen_go_version"
install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc "$protoc_gen_go_grpc_version"

# buf.gen.yaml names the plugins by their .bin/ paths, so a protoc-gen-go found
# earlier on PATH can never be used by mistake.
"$bin/buf" generate
# Imports included: figway needs google/api and google/protobuf in the set.
# Source info kept: server reflection shows the doc comments from it.
# --as-file-descriptor-set drops buf's own per-file metadata (field 8042), so
# the set is plain descriptor.proto, as Envoy, grpcurl and protoc expect.
"$bin/buf" build --as-file-descriptor-set \
	-o examples/orders/orders.binpb --path proto/orders
# The REST ingress's test API, loaded at run time by its tests as figway
# loads any API.
"$bin/buf" build --as-file-descriptor-set \
	-o adapters/httpin/testdata/testapi.binpb --path proto/figway/testapi
