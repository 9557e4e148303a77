#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed: the browser tests (GraphiQL without a network,
# pages careteam serves) drive a real headless Chromium. Sourced or run by deploy/test.sh.
# Installing needs root and the Debian package mirrors; CARETEAM_CHROMIUM names another
# binary to use instead.
set -euo pipefail
if [ -n "${CARETEAM_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
    exit 0
fi
echo "careteam: installing Chromium (Debian package) for the browser tests" >&2
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
