#!/usr/bin/env bash
# Installs the Debian 12 packages bucketcache needs to build, test and run.
# Safe to run repeatedly: it does nothing when everything is present.
set -euo pipefail

# libmsgpack-dev, libcmocka-dev, memcached, libmemcached-tools,
# python3-pymemcache, python3-pylibmc: tests only (libmsgpack-dev checks the
# hand-written frame codec, common/bc_frame.c; memcached 1.6.18 is the
# reference the data port is compared with; libmemcached-tools, pymemcache
# and pylibmc -- the binary protocol's client -- are the unmodified clients
# the compatibility tests run).
# prometheus (for promtool) and chromium: tests only -- promtool checks
# /metrics and deploy/prometheus/*.yml, headless chromium loads the
# console's dashboard.
# libssl-dev: libcrypto's SHA-256, SHA-1 and CRYPTO_memcmp (admin tokens,
# ZooKeeper digest identities: docs/security.md).
# libgnutls28-dev: the TLS libmicrohttpd serves HTTPS with (a -Z node's
# admin port in a cluster); the node hands it the certificate itself.
PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev python3 procps
  zookeeper libzookeeper-mt-dev libmicrohttpd-dev libcjson-dev libmsgpack-dev
  libcmocka-dev memcached libmemcached-tools python3-pymemcache python3-pylibmc curl
  prometheus chromium
  libcurl4-openssl-dev libssl-dev libgnutls28-dev
  iproute2 iptables
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# The Debian memcached package starts a system daemon on 11211; the tests
# start their own memcached on free ports and do not need it.
# The same for the prometheus package's server and node exporter.
if command -v systemctl >/dev/null 2>&1; then
  for svc in memcached prometheus prometheus-node-exporter; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi
