#!/usr/bin/env bash
# What test/cluster's partition test needs: iptables, to drop the traffic
# between two RabbitMQ nodes on loopback (internal/testing/rabbitmq,
# Cluster.Partition). The rules it adds live only while the test runs.
#
#   scripts/iptables.sh ensure   install iptables (apt-get, as root) when it is missing
#
# Exits non-zero, saying what is missing, when it cannot; make test then goes on
# (the partition test skips) except with CI=true, where it fails.
set -euo pipefail

say() { printf 'iptables.sh: %s\n' "$*" >&2; }

ensure() {
	if command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ]; then
		return 0
	fi
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		say "iptables is missing; as root: apt-get install -y iptables"
		return 1
	fi
	say "installing iptables with apt-get"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables
	command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || { say "apt-get ran, but there is still no iptables"; return 1; }
}

case "${1:-}" in
ensure) ensure ;;
*)
	echo "usage: $0 ensure" >&2
	exit 2
	;;
esac
