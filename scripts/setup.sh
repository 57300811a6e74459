#!/usr/bin/env bash
# Makes a fresh clone ready: npm packages, redis-server and nats-server, and a build.
# Installs the servers with apt-get when run as root; otherwise prints the exact command.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # The Debian package starts a system-wide redis-server on 6379 where systemd runs; georep
    # never uses that port, so it is left alone.
  else
    echo "setup: missing ${need[*]}. Install them, then run this again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 7
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

export TURBO_TELEMETRY_DISABLED=1
npx --no-install turbo run build --output-logs=errors-only >&2
chmod +x packages/cli/dist/bin.js
