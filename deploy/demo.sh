#!/usr/bin/env bash
# Installs dependencies, builds bucketcache, starts a node on 127.0.0.1 and
# shows a set/get through its memcached port and its HTTP admin port, then
# stops it.  (Once the console lands, this brings up a local cluster.)
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

PORT=${BC_DEMO_PORT:-22122}
ADMIN=${BC_DEMO_ADMIN_PORT:-22180}
./build/node/bucketcache-node -l 127.0.0.1 -p "$PORT" --admin-port "$ADMIN" -m 64 &
NODE=$!
trap 'kill $NODE 2>/dev/null; wait $NODE 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

mc() {  # send one memcached command stream, print the reply
  exec 3<>/dev/tcp/127.0.0.1/"$PORT"
  printf '%b' "$1" >&3
  timeout 1 cat <&3 || true
  exec 3<&-
}
echo "--- memcached protocol on 127.0.0.1:$PORT"
echo '> set greeting 0 0 5 / hello';  mc 'set greeting 0 0 5\r\nhello\r\nquit\r\n'
echo '> get greeting';                mc 'get greeting\r\nquit\r\n'
echo "--- admin HTTP on 127.0.0.1:$ADMIN"
echo '> PUT /v1/keys/color?ttl=60'; curl -s -X PUT --data-binary 'blue' "http://127.0.0.1:$ADMIN/v1/keys/color?ttl=60"; echo
echo '> GET /v1/keys/color';        curl -s "http://127.0.0.1:$ADMIN/v1/keys/color"; echo
echo '> GET /health';               curl -s "http://127.0.0.1:$ADMIN/health"; echo
echo '> GET /stats (excerpt)';      curl -s "http://127.0.0.1:$ADMIN/stats" | head -c 400; echo
