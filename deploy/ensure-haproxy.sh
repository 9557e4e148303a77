#!/usr/bin/env bash
# Makes sure Debian's HAProxy is installed: deploy/cluster/cluster.sh puts it in front of
# the API replicas. Installing needs root and the Debian package mirrors.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1; then
    exit 0
fi
echo "careteam: installing HAProxy (Debian package) for deploy/cluster" >&2
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq haproxy >/dev/null
command -v haproxy >/dev/null
