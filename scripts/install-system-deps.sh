#!/usr/bin/env bash
# Install what OpsGraph's local environment and tests need, when missing:
# uv (from PyPI) and, as root on Debian, the server packages.
set -euo pipefail

if ! command -v uv >/dev/null 2>&1; then
    echo "installing uv from PyPI" >&2
    python3 -m pip install --quiet uv
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
# Validating docker-compose.yml needs a compose tool (the v1 one is what Debian packages).
# A real Docker Engine for the container tools' tests (started privately by the tests).
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
# The chat's browser tests drive Debian's Chromium through Playwright (its own browser download does not work).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# `opsgraph serve`'s integration tests run private Prometheus and Alertmanager instances and the exporters,
# and check the shipped alert rules with promtool.
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v prometheus-redis-exporter >/dev/null 2>&1 || missing+=(prometheus-redis-exporter)
command -v prometheus-postgres-exporter >/dev/null 2>&1 || missing+=(prometheus-postgres-exporter)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
else
    echo "missing system packages: ${missing[*]} — install them (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
