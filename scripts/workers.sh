#!/usr/bin/env bash
# What the workers in other languages (examples/orders/python, examples/orders/node)
# need for their tests and for running them by hand.
#
#   scripts/workers.sh ensure   install python3-pika and python3-protobuf (apt-get, as root)
#                               when Debian's python3 lacks them, and the Node worker's
#                               packages from its committed lockfile (npm ci)
#
# Exits non-zero, saying what is missing, when it cannot; make test then goes on
# (those tests skip) except with CI=true, where they fail.
set -euo pipefail

cd "$(dirname "$0")/.."
say() { printf 'workers.sh: %s\n' "$*" >&2; }

python_ok() {
	local py
	for py in /usr/bin/python3 python3; do
		if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import pika, google.protobuf' 2>/dev/null; then
			return 0
		fi
	done
	return 1
}

ensure_python() {
	if python_ok; then
		return 0
	fi
	local sudo=
	if [ "$(id -u)" != 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=sudo; else sudo=none; fi
	fi
	if [ "$sudo" = none ] || ! command -v apt-get >/dev/null 2>&1; then
		say "python3 with pika and protobuf is missing; as root: apt-get install -y python3-pika python3-protobuf"
		return 1
	fi
	say "installing python3-pika and python3-protobuf with apt-get"
	$sudo apt-get update
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-pika python3-protobuf
	python_ok || { say "apt-get ran, but python3 still cannot import pika and google.protobuf"; return 1; }
}

ensure_node() {
	local dir=examples/orders/node
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		say "node and npm (Node.js 18 or later) are missing: install Debian's nodejs and npm"
		return 1
	fi
	# npm ci again only when the lockfile changed since the last install.
	if [ -f "$dir/node_modules/.package-lock.json" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
		return 0
	fi
	say "installing the Node worker's packages (npm ci in $dir)"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

case "${1:-}" in
ensure)
	status=0
	ensure_python || status=1
	ensure_node || status=1
	exit $status
	;;
*)
	echo "usage: scripts/workers.sh ensure" >&2
	exit 2
	;;
esac
