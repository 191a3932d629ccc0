#!/usr/bin/env bash
# Chromium for the status page's browser test (cmd/figway, TestStatusPageInBrowser).
#
#   scripts/chromium.sh ensure   make sure a chromium is on PATH (installs Debian's with apt-get as root)
#
# Without one the browser test skips, or fails when CI=true.
set -euo pipefail

say() { printf 'chromium.sh: %s\n' "$*" >&2; }

find_chromium() {
	local c
	for c in "${FIGWAY_CHROMIUM:-}" chromium chromium-browser google-chrome; do
		if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

cmd_ensure() {
	local found
	if found=$(find_chromium); then
		say "chromium found: $found"
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
		say "chromium is not installed; installing Debian's with apt-get"
		$SUDO apt-get update
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
		if found=$(find_chromium); then
			say "chromium installed: $found"
			return 0
		fi
		say "apt-get installed chromium, but no chromium is on PATH"
		return 1
	fi
	say "chromium is not installed, and this script cannot install it (it needs root or password-less sudo, and apt-get)."
	say "  Debian/Ubuntu, as root:  apt-get update && apt-get install -y chromium"
	say "  or point FIGWAY_CHROMIUM at a Chromium or Chrome binary."
	say "Without it, the status page's browser test is skipped (with CI=true it fails)."
	return 1
}

case "${1:-}" in
ensure) cmd_ensure ;;
*)
	echo "usage: $0 ensure" >&2
	exit 2
	;;
esac
