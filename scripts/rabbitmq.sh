#!/usr/bin/env bash
# RabbitMQ for figway's tests and demo.
#
#   scripts/rabbitmq.sh ensure      make sure rabbitmq-server is installed (installs it with apt-get as root)
#   scripts/rabbitmq.sh start-demo  make sure a broker accepts AMQP on 127.0.0.1:5672 (reuse, private node, or Docker)
#   scripts/rabbitmq.sh stop-demo   stop what start-demo started, nothing else
#
# Tests do not use this script's broker: internal/rabbitmqtest starts private
# nodes on free ports and only needs the package installed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

DEMO_DIR=$ROOT/.demo/rabbitmq
DEMO_MARK=$ROOT/.demo/rabbitmq.started # what start-demo started: "node PID" or "docker"
DEMO_NODE=figway-demo@localhost
DEMO_PORT=5672
DEMO_DIST_PORT=25672
DOCKER_NAME=figway-demo-rabbitmq
DOCKER_IMAGE=rabbitmq:3-management

say() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }

# find_server prints the path of the rabbitmq-server script to run, or fails.
# On Debian/Ubuntu /usr/sbin/rabbitmq-server is a symlink to
# rabbitmq-script-wrapper, which re-runs the real script through `su rabbitmq`
# (and drops the arguments of anyone but root and rabbitmq); the real script
# is its sibling in /usr/lib/rabbitmq/bin. Debian's own systemd unit runs
# that one too.
find_server() {
	local c real
	for c in "$(command -v rabbitmq-server 2>/dev/null || true)" /usr/sbin/rabbitmq-server /usr/local/sbin/rabbitmq-server; do
		if [ -z "$c" ] || [ ! -e "$c" ]; then continue; fi
		real=$(readlink -f "$c")
		if [ "$(basename "$real")" = rabbitmq-script-wrapper ]; then
			c=$(dirname "$real")/rabbitmq-server
		fi
		if [ -x "$c" ] && [ -x "$(dirname "$c")/rabbitmqctl" ]; then
			echo "$c"
			return 0
		fi
	done
	return 1
}

docker_works() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# accepts_amqp HOST PORT: true if an AMQP 0-9-1 server answers the protocol
# header with a method frame (type 1), not just if the port is open.
accepts_amqp() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "AMQP\x00\x00\x09\x01" >&3
		[ "$(head -c 1 <&3 | od -An -tx1 | tr -d " \n")" = 01 ]
	' _ "$1" "$2" 2>/dev/null
}

# quiet_distro_node stops and disables the node the Debian package starts on
# installation (rabbit@HOSTNAME on 5672, as a system service). We installed
# the package for its programs: tests start private nodes on free ports, and
# the demo starts and stops its own. A service nobody asked for would hold
# 5672 -- so the demo would silently talk to it -- and cost memory and CPU on
# every later boot. Called only right after this script installed the
# package: a broker that was there before is the machine owner's business.
quiet_distro_node() {
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		$SUDO systemctl disable --now rabbitmq-server.service >/dev/null 2>&1 || true
	elif [ -x /etc/init.d/rabbitmq-server ]; then
		# In containers without systemd, invoke-rc.d started it through the
		# init script (unless /usr/sbin/policy-rc.d forbade it, as in most
		# Docker images).
		$SUDO /etc/init.d/rabbitmq-server stop >/dev/null 2>&1 || true
		$SUDO update-rc.d rabbitmq-server disable >/dev/null 2>&1 || true
	fi
	say "stopped and disabled the rabbitmq-server service the package starts (tests and demo run their own nodes)"
}

cmd_ensure() {
	if server=$(find_server); then
		say "rabbitmq-server found: $server"
		return 0
	fi
	SUDO=
	if [ "$(id -u)" != 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			SUDO=sudo
		else
			SUDO=none
		fi
	fi
	if [ "$SUDO" != none ] && command -v apt-get >/dev/null 2>&1; then
		say "rabbitmq-server is not installed; installing it with apt-get"
		$SUDO apt-get update
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
		quiet_distro_node
		if server=$(find_server); then
			say "rabbitmq-server installed: $server"
			return 0
		fi
		say "apt-get installed rabbitmq-server, but no rabbitmq-server script was found"
		return 1
	fi
	say "rabbitmq-server (RabbitMQ 3.10 or later) is not installed, and this script cannot install it"
	say "  (it needs root or password-less sudo, and apt-get)."
	say "  Debian/Ubuntu, as root:  apt-get update && apt-get install -y rabbitmq-server"
	say "  or run 'make test' as root, which installs it; elsewhere see https://www.rabbitmq.com/download.html"
	if docker_works; then
		say "Docker works here: the demo can run its broker in Docker ('make demo' does), but the tests need the OS package."
	fi
	say "Without it, broker tests are skipped (with CI=true they fail)."
	return 1
}

# demo_env sets the environment of the demo node; everything of it lives in
# .demo/rabbitmq, including HOME and so its Erlang cookie.
demo_env() {
	export HOME=$DEMO_DIR \
		RABBITMQ_NODENAME=$DEMO_NODE \
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT=$DEMO_PORT \
		RABBITMQ_DIST_PORT=$DEMO_DIST_PORT \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' \
		RABBITMQ_MNESIA_BASE=$DEMO_DIR/mnesia \
		RABBITMQ_LOG_BASE=$DEMO_DIR/log \
		RABBITMQ_PID_FILE=$DEMO_DIR/rabbitmq.pid \
		RABBITMQ_ENABLED_PLUGINS_FILE=$DEMO_DIR/enabled_plugins \
		RABBITMQ_PLUGINS_EXPAND_DIR=$DEMO_DIR/plugins-expand \
		RABBITMQ_CONF_ENV_FILE=$DEMO_DIR/rabbitmq-env.conf \
		RABBITMQ_CONFIG_FILE=$DEMO_DIR/rabbitmq.conf \
		RABBITMQ_ADVANCED_CONFIG_FILE=$DEMO_DIR/advanced.config
	unset NOTIFY_SOCKET
}

# wait_amqp SECONDS PID|"": wait until 127.0.0.1:5672 accepts AMQP; fail early
# if PID (the node we started) exits.
wait_amqp() {
	local deadline=$((SECONDS + $1)) pid=$2
	until accepts_amqp 127.0.0.1 "$DEMO_PORT"; do
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

cmd_start_demo() {
	mkdir -p "$ROOT/.demo"
	if accepts_amqp 127.0.0.1 "$DEMO_PORT"; then
		say "a broker already accepts AMQP on 127.0.0.1:$DEMO_PORT; using it"
		return 0
	fi
	if server=$(find_server); then
		mkdir -p "$DEMO_DIR"
		[ -f "$DEMO_DIR/enabled_plugins" ] || echo '[].' >"$DEMO_DIR/enabled_plugins"
		: >"$DEMO_DIR/rabbitmq-env.conf"
		if [ ! -f "$DEMO_DIR/.erlang.cookie" ]; then
			(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DEMO_DIR/.erlang.cookie")
			chmod 400 "$DEMO_DIR/.erlang.cookie"
		fi
		say "starting $DEMO_NODE on 127.0.0.1:$DEMO_PORT (data and logs in .demo/rabbitmq)"
		(
			demo_env
			cd "$DEMO_DIR"
			# RUNNING_UNDER_SYSTEMD=true makes the script exec erl, so $! is
			# the VM's pid; setsid keeps a Ctrl-C of the demo away from it
			# (stop-demo stops it cleanly).
			RUNNING_UNDER_SYSTEMD=true exec setsid "$server" </dev/null >>"$DEMO_DIR/console.log" 2>&1
		) &
		local pid=$!
		echo "node $pid" >"$DEMO_MARK"
		if ! wait_amqp 90 "$pid"; then
			say "$DEMO_NODE did not start; last lines of .demo/rabbitmq/console.log:"
			tail -n 30 "$DEMO_DIR/console.log" >&2 || true
			cmd_stop_demo
			return 1
		fi
		say "$DEMO_NODE is up (pid $pid)"
		return 0
	fi
	if docker_works; then
		say "rabbitmq-server is not installed; starting $DOCKER_IMAGE in Docker as $DOCKER_NAME"
		docker rm -f "$DOCKER_NAME" >/dev/null 2>&1 || true
		docker run -d --name "$DOCKER_NAME" -p "127.0.0.1:$DEMO_PORT:5672" "$DOCKER_IMAGE" >/dev/null
		echo docker >"$DEMO_MARK"
		if ! wait_amqp 120 ""; then
			say "$DOCKER_NAME did not accept AMQP within 120s; last lines of its log:"
			docker logs --tail 30 "$DOCKER_NAME" >&2 || true
			cmd_stop_demo
			return 1
		fi
		say "$DOCKER_NAME is up"
		return 0
	fi
	say "no broker on 127.0.0.1:$DEMO_PORT, rabbitmq-server is not installed and Docker does not work."
	say "  Debian/Ubuntu, as root:  apt-get update && apt-get install -y rabbitmq-server"
	return 1
}

cmd_stop_demo() {
	if [ ! -f "$DEMO_MARK" ]; then
		say "stop-demo: start-demo started nothing; nothing to stop"
		return 0
	fi
	local what pid
	read -r what pid <"$DEMO_MARK" || true
	case $what in
	node)
		# Only our VM: its command line carries "-home <demo dir>".
		if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-home $DEMO_DIR "; then
			say "stopping $DEMO_NODE (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true # RabbitMQ stops cleanly on SIGTERM
			for _ in $(seq 1 300); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "$pid" 2>/dev/null; then
				say "$DEMO_NODE still running after 30s; killing it"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		else
			say "$DEMO_NODE (pid ${pid:-?}) is not running"
		fi
		;;
	docker)
		say "removing container $DOCKER_NAME"
		docker rm -f "$DOCKER_NAME" >/dev/null 2>&1 || true
		;;
	esac
	rm -f "$DEMO_MARK"
}

case ${1:-} in
ensure) cmd_ensure ;;
start-demo) cmd_start_demo ;;
stop-demo) cmd_stop_demo ;;
*)
	echo "usage: $0 ensure|start-demo|stop-demo" >&2
	exit 2
	;;
esac
