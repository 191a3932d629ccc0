#!/usr/bin/env bash
# Jaeger all-in-one (OTLP in, query API and UI out) for the tracing tests
# (test/tracing; docs/development.md, "Tests against a real Jaeger").
#
#   scripts/jaeger.sh ensure   build Jaeger v1.75.0 from its Go module into .bin/jaeger
#                              unless that binary is there already
#   scripts/jaeger.sh path     print the binary's path
#
# Jaeger is built from tools/jaeger, a Go module of its own, so that
# figway's go.mod and its users' builds never see Jaeger's dependencies.
# The first build takes several minutes (a large program); later ones come
# from the build cache. Without the binary the tracing tests skip, or fail
# when CI=true.
set -euo pipefail

cd "$(dirname "$0")/.."
say() { printf 'jaeger.sh: %s\n' "$*" >&2; }

bin="$PWD/.bin/jaeger"
version=v1.75.0

cmd_ensure() {
	if [ -x "$bin" ] && [ "$(cat "$bin.version" 2>/dev/null)" = "$version" ]; then
		say "jaeger $version found: $bin"
		return 0
	fi
	if ! command -v go >/dev/null 2>&1; then
		say "go is not on PATH: cannot build jaeger"
		return 1
	fi
	say "building jaeger $version into $bin (takes minutes the first time)"
	mkdir -p "$(dirname "$bin")"
	(cd tools/jaeger && GOWORK=off go build -o "$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
	mv "$bin.tmp" "$bin"
	echo "$version" >"$bin.version"
	say "jaeger $version built: $bin"
}

case "${1:-}" in
ensure) cmd_ensure ;;
path) echo "$bin" ;;
*)
	echo "usage: $0 ensure|path" >&2
	exit 2
	;;
esac
