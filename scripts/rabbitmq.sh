#!/usr/bin/env bash
# RabbitMQ for figway's tests and demo.
#
#   scripts/rabbitmq.sh ensure [3.10|4.0]  make sure both RabbitMQ versions the tests run on are there
#                                          (or the one named): installs them as root
#   scripts/rabbitmq.sh cleanup [--remove] unmount what ensure mounted for RabbitMQ 4.0 (and, with
#                                          --remove, delete its root), unless a node still runs in it
#   scripts/rabbitmq.sh start-demo         make sure a broker accepts AMQP on 127.0.0.1:5672 (reuse, private node, or Docker)
#   scripts/rabbitmq.sh stop-demo          stop what start-demo started, nothing else
#
# Tests do not use this script's broker: internal/testing/rabbitmq starts private
# nodes on free ports and only needs the versions installed:
#   - RabbitMQ 3.10: the machine's own rabbitmq-server package (Debian 12's).
#   - RabbitMQ 4.0: Debian 13 (trixie)'s rabbitmq-server 4.0, installed in a
#     minimal Debian 13 root made by debootstrap, and run there with chroot.
#     The root lives in $FIGWAY_RABBITMQ_CACHE/rabbitmq-4.0 (by default
#     /var/cache/figway/rabbitmq-4.0), outside any checkout, so that every
#     checkout of the machine shares one copy; it needs /proc mounted inside
#     it, which ensure does (again after a reboot).
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

# set_sudo sets SUDO to what runs a command as root: "" for root, "sudo"
# for password-less sudo, "none" when neither works.
set_sudo() {
	SUDO=
	if [ "$(id -u)" != 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			SUDO=sudo
		else
			SUDO=none
		fi
	fi
}

# ensure_310 makes sure the machine's rabbitmq-server package (RabbitMQ 3.10
# on Debian 12) is installed.
ensure_310() {
	if server=$(find_server); then
		say "RabbitMQ 3.10: rabbitmq-server found: $server"
		return 0
	fi
	set_sudo
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

# RabbitMQ 4.0 runs from Debian 13's package, in a Debian 13 root of its own
# (see the top of this file). internal/testing/rabbitmq looks for it in the same
# place: keep the two in step.
CACHE=${FIGWAY_RABBITMQ_CACHE:-/var/cache/figway}
ROOT40=$CACHE/rabbitmq-4.0
LOCK40=$CACHE/rabbitmq-4.0.lock # held by ensure and cleanup; one of them at a time
LOG40=$CACHE/rabbitmq-4.0.log   # what debootstrap and apt-get said
SUITE40=trixie                  # Debian 13: rabbitmq-server 4.0

# ready_40 DIR: true if DIR is a finished root with RabbitMQ 4 in it. A root
# is built as DIR.partial and renamed when finished, so a root found under
# its final name is whole.
ready_40() {
	[ -x "$1/usr/lib/rabbitmq/bin/rabbitmq-server" ] && [ -x "$1/usr/lib/rabbitmq/bin/rabbitmqctl" ]
}

# version_40 prints the version of rabbitmq-server installed in the root.
version_40() {
	chroot "$ROOT40" dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null
}

# users_of DIR prints the pids of the processes whose root directory is DIR.
users_of() {
	local p
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/root" 2>/dev/null)" = "$1" ]; then
			echo "${p#/proc/}"
		fi
	done
}

# unmount_in DIR unmounts what this script mounts inside a root.
unmount_in() {
	if mountpoint -q "$1/proc"; then
		umount "$1/proc" || umount -l "$1/proc"
	fi
}

# build_40 makes the root: debootstrap, then rabbitmq-server in it.
build_40() {
	local part=$ROOT40.partial
	if ! command -v debootstrap >/dev/null 2>&1; then
		if ! command -v apt-get >/dev/null 2>&1; then
			say "RabbitMQ 4.0: debootstrap is not installed, and there is no apt-get to install it with"
			return 1
		fi
		say "RabbitMQ 4.0: installing debootstrap with apt-get"
		apt-get update >>"$LOG40" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >>"$LOG40" 2>&1 || {
			say "RabbitMQ 4.0: apt-get could not install debootstrap; the end of $LOG40:"
			tail -n 20 "$LOG40" >&2
			return 1
		}
	fi
	if [ -e "$part" ]; then # left by an ensure that died
		unmount_in "$part"
		rm -rf --one-file-system "$part"
	fi
	say "RabbitMQ 4.0: making a minimal Debian 13 ($SUITE40) root in $ROOT40 with debootstrap, and installing"
	say "  its rabbitmq-server there (a minute or two; the output goes to $LOG40)"
	local begin=$SECONDS
	if ! debootstrap --variant=minbase "$SUITE40" "$part" >>"$LOG40" 2>&1; then
		say "RabbitMQ 4.0: debootstrap failed (it needs network access to a Debian mirror); the end of $LOG40:"
		tail -n 20 "$LOG40" >&2
		return 1
	fi
	# No service may start inside the root: the package's own node would
	# run as a system service there.
	printf '#!/bin/sh\nexit 101\n' >"$part/usr/sbin/policy-rc.d"
	chmod 755 "$part/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$part/etc/resolv.conf" 2>/dev/null || true
	if ! chroot "$part" apt-get update >>"$LOG40" 2>&1 ||
		! chroot "$part" env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends rabbitmq-server >>"$LOG40" 2>&1; then
		say "RabbitMQ 4.0: apt-get install rabbitmq-server failed in the root; the end of $LOG40:"
		tail -n 20 "$LOG40" >&2
		return 1
	fi
	chroot "$part" apt-get clean >>"$LOG40" 2>&1 || true
	if ! ready_40 "$part"; then
		say "RabbitMQ 4.0: rabbitmq-server was installed in the root, but /usr/lib/rabbitmq/bin has no rabbitmq-server and rabbitmqctl"
		return 1
	fi
	mv "$part" "$ROOT40"
	say "RabbitMQ 4.0: root ready in $((SECONDS - begin))s"
}

# ensure_40 makes sure the root with RabbitMQ 4.0 is there and has /proc
# mounted. Two runs at once (two checkouts' make test) take turns on a lock;
# the second finds the root made.
ensure_40() {
	# Not root: even a prepared root is of no use, since nodes run in it
	# with chroot.
	if [ "$(id -u)" != 0 ]; then
		if ready_40 "$ROOT40" && [ -e "$ROOT40/proc/self" ]; then
			say "RabbitMQ 4.0: found in $ROOT40, but only root can run it (the tests run it with chroot)."
		else
			say "RabbitMQ 4.0 is not installed in $ROOT40 (or /proc is not mounted there), and only root can"
			say "  prepare it (debootstrap, chroot, mount) and run it: run 'sudo scripts/rabbitmq.sh ensure 4.0'."
		fi
		say "Without it, tests on RabbitMQ 4.0 are skipped (with CI=true they fail)."
		return 1
	fi
	if ! command -v chroot >/dev/null 2>&1 || ! command -v flock >/dev/null 2>&1; then
		say "RabbitMQ 4.0: chroot and flock (coreutils, util-linux) are needed and missing"
		return 1
	fi
	mkdir -p "$CACHE"
	local rc=0
	(
		flock -w 1800 9 || {
			say "RabbitMQ 4.0: another 'rabbitmq.sh ensure' has held $LOCK40 for 30 minutes; giving up"
			exit 1
		}
		if ! ready_40 "$ROOT40"; then
			build_40 || exit 1
		fi
		if ! mountpoint -q "$ROOT40/proc"; then
			mount -t proc proc "$ROOT40/proc" || {
				say "RabbitMQ 4.0: could not mount /proc in $ROOT40"
				exit 1
			}
		fi
		say "RabbitMQ 4.0: rabbitmq-server $(version_40) ready in $ROOT40"
	) 9>"$LOCK40" || rc=$?
	return $rc
}

cmd_ensure() {
	local rc=0
	case ${1:-all} in
	3.10) ensure_310 || rc=1 ;;
	4.0) ensure_40 || rc=1 ;;
	all)
		ensure_310 || rc=1
		ensure_40 || rc=1
		;;
	*)
		say "ensure: unknown version '$1' (3.10 or 4.0)"
		return 2
		;;
	esac
	return $rc
}

# cmd_cleanup undoes what ensure did for RabbitMQ 4.0: unmounts /proc in its
# root and, with --remove, deletes the root. It refuses while a process runs
# inside the root (a test's node).
cmd_cleanup() {
	local remove=false d pids
	case ${1:-} in
	"") ;;
	--remove) remove=true ;;
	*)
		say "cleanup: unknown option '$1'"
		return 2
		;;
	esac
	[ -d "$CACHE" ] || return 0
	(
		flock -w 600 9 || {
			say "cleanup: another 'rabbitmq.sh ensure' holds $LOCK40"
			exit 1
		}
		for d in "$ROOT40" "$ROOT40.partial"; do
			[ -d "$d" ] || continue
			pids=$(users_of "$d")
			if [ -n "$pids" ]; then
				say "cleanup: processes still run in $d (pids: $(echo $pids)); stop them first"
				exit 1
			fi
			unmount_in "$d"
			if $remove; then
				rm -rf --one-file-system "$d"
				say "cleanup: removed $d"
			else
				say "cleanup: unmounted $d/proc"
			fi
		done
	) 9>"$LOCK40"
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
ensure) cmd_ensure "${2:-all}" ;;
cleanup) cmd_cleanup "${2:-}" ;;
start-demo) cmd_start_demo ;;
stop-demo) cmd_stop_demo ;;
*)
	echo "usage: $0 ensure [3.10|4.0] | cleanup [--remove] | start-demo | stop-demo" >&2
	exit 2
	;;
esac
