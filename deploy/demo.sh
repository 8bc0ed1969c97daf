#!/usr/bin/env bash
# The README's "run" command: installs dependencies, builds bucketcache,
# brings up a local cluster on 127.0.0.1 (ZooKeeper, two consoles, two
# groups of primary + backup), stores and reads keys on their owners,
# shows a non-owner forwarding a request, reads an image through every node
# from the demo origin (one origin request), adds a third group and shows the
# buckets migrating onto it, kills a primary and shows its backup taking
# over with the data, then tears everything down.
#
#   BC_DEMO_KEEP=1 ./deploy/demo.sh   leaves the cluster running afterwards
#                                     (stop it with deploy/local-cluster.sh down)
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

BASE=${BC_BASE_PORT:-22100}
export BC_BASE_PORT=$BASE BC_BUCKETS=${BC_BUCKETS:-64}
ZK="127.0.0.1:$((BASE + 81))"
STATE=${BC_STATE_DIR:-deploy/.local-cluster}
# The local cluster runs secured (docs/security.md): the CLI presents the
# generated admin token and ZooKeeper identity from the state folder.
CLI=(./build/client/bucketcache --zk "$ZK" --cluster local --zk-auth-file "$STATE/zk-auth"
     --auth-token-file "$STATE/admin-token")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

./deploy/local-cluster.sh down >/dev/null
if [ -z "${BC_DEMO_KEEP:-}" ]; then trap './deploy/local-cluster.sh down' EXIT; fi

step "start a local cluster: ZooKeeper, 2 consoles, 2 groups x (primary + backup)"
./deploy/local-cluster.sh up 2
for _ in $(seq 100); do  # the console assigns every bucket once groups register
  "${CLI[@]}" tables --json | python3 -c 'import json,sys; t=json.load(sys.stdin); sys.exit(0 in t["c"] or 2 not in t["c"])' && break
  sleep 0.2
done

step "bucketcache status"
"${CLI[@]}" status

step "secured by default: the admin token and ZooKeeper ACLs (docs/security.md)"
echo "pausing migrations without the admin token ->"
curl -s -X POST "http://127.0.0.1:$((BASE + 90))/v1/migrations/pause"; echo
echo "reading the tables without ZooKeeper credentials ->"
./build/client/bucketcache --zk "$ZK" --cluster local tables 2>&1 | tail -1 || true

mc() {  # addr payload: send one memcached command stream, print the reply
  local host=${1%:*} port=${1##*:}
  exec 3<>"/dev/tcp/$host/$port"
  printf '%b' "$2" >&3
  timeout 1 cat <&3 || true
  exec 3<&-
}

step "keys go to the primary of their bucket's group (libbucketcache routes them)"
for key in user:1001 user:1002 cart:77 session:abc; do
  "${CLI[@]}" set "$key" "hello from $key"
  printf '%-12s %s   -> %s\n' "$key" "$("${CLI[@]}" locate "$key")" "$("${CLI[@]}" get "$key")"
done

step "any node answers any key: a non-owner forwards to the owner's primary (one hop)"
owner=$("${CLI[@]}" locate user:1001 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["primary"])')
other=127.0.0.1:$((BASE + 110)); [ "$owner" = "$other" ] && other=127.0.0.1:$((BASE + 120))
echo "get user:1001 on $other (owner is $owner) ->"; mc "$other" 'get user:1001\r\nquit\r\n'
echo "the same on a peer connection, which never forwards ->"
mc "$other" 'bucketcache_peer demo\r\nget user:1001\r\nquit\r\n'
printf 'forwarded so far by %s: ' "$other"; mc "$other" 'stats\r\nquit\r\n' | grep forward_requests

step "read-through: an img/ key nobody stored, asked through every node, costs one origin request"
ORIGIN=127.0.0.1:$((BASE + 80))
key=img/png/001
for port in $((BASE + 110)) $((BASE + 112)) $((BASE + 120)) $((BASE + 122)); do
  printf 'get %s on 127.0.0.1:%s -> ' "$key" "$port"
  mc "127.0.0.1:$port" "get $key\r\nquit\r\n" | head -c 60 | tr '\r\n' '  '; echo "..."
done
printf 'the demo origin counted: '; curl -s "http://$ORIGIN/_stats" | python3 -c 'import json,sys; print({p: n for p, n in json.load(sys.stdin)["paths"].items()})'
owner=$("${CLI[@]}" locate "$key" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["primary"])')
printf 'the owner %s: ' "$owner"; mc "$owner" 'stats origin\r\nquit\r\n' | grep -E 'origin_(misses|joined|requests|fills) ' | tr -d '\r' | tr '\n' ' '; echo

step "add a third group: the console plans the move (d) and migrates buckets onto it"
./deploy/local-cluster.sh add-group
for _ in $(seq 150); do  # converged: data where the plan wants it, group 3 owning some
  "${CLI[@]}" tables --json | python3 -c 'import json,sys; t=json.load(sys.stdin); sys.exit(not (3 in t["c"] and t["m"] == t["d"] and not t["readonly"]))' && break
  sleep 0.2
done
"${CLI[@]}" migrations
"${CLI[@]}" tables
"${CLI[@]}" status
for key in user:1001 user:1002 cart:77 session:abc; do
  printf '%-12s %s   -> %s\n' "$key" "$("${CLI[@]}" locate "$key")" "$("${CLI[@]}" get "$key")"
done

step "kill -9 the primary of user:1001's group: its backup takes over with the data"
owner=$("${CLI[@]}" locate user:1001 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["primary"])')
off=$(( ${owner##*:} - BASE - 100 ))
victim="node-g$((off / 10))-$(( (off % 10) / 2 ))"
echo "replication on $owner before: $(curl -s "http://127.0.0.1:$(( ${owner##*:} + 69 ))/v1/repl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("role", r["role"], "offset", r["offset"], "backups", [(b["name"], b["acked"]) for b in r["backups"]])')"
kill -9 "$(cat "$STATE/$victim.pid")"
t0=$(date +%s%N)
for _ in $(seq 150); do
  now=$("${CLI[@]}" locate user:1001 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["primary"])')
  [ "$now" != "$owner" ] && break
  sleep 0.1
done
echo "new primary $now after $(( ($(date +%s%N) - t0) / 1000000 )) ms (ZooKeeper session timeout 4000 ms)"
for key in user:1001 user:1002 cart:77 session:abc; do
  printf '%-12s %s   -> %s\n' "$key" "$("${CLI[@]}" locate "$key")" "$("${CLI[@]}" get "$key")"
done
"${CLI[@]}" groups
echo
echo "dashboard: http://127.0.0.1:$((BASE + 90))/  (node admin, data port + 69: http://127.0.0.1:$((BASE + 110 + 69))/stats)"
echo "the dashboard asks for the admin token: it is in $STATE/admin-token"
if [ -n "${BC_DEMO_KEEP:-}" ]; then
  echo "cluster left running; stop it with: deploy/local-cluster.sh down"
fi
