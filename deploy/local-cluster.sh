#!/usr/bin/env bash
# A bucketcache cluster on 127.0.0.1 for trying things out:
# a ZooKeeper server (Debian package), two consoles (one active, one
# standby), G groups of one primary and one backup node each, and a demo
# image service (deploy/demo-origin.py) the nodes read "img/" keys
# through from (docs/origin.md).
#
#   deploy/local-cluster.sh up [G]      start (default G=2), create the cluster
#   deploy/local-cluster.sh add-group   start one more group
#   deploy/local-cluster.sh status      what is running, and the cluster view
#   deploy/local-cluster.sh down        stop everything, remove the state
#
# Binaries come from $BC_BUILD_DIR (default build/).  State, logs and pid
# files live in $BC_STATE_DIR (default deploy/.local-cluster/).  Ports start at $BC_BASE_PORT
# (default 22100): demo origin +80, ZooKeeper +81, consoles +90/+91, group g
# node i data port +100+10g+2i and its admin port one above.  BC_ORIGIN sets
# the nodes' --origin (default "img/=http://127.0.0.1:<+80>/v1/{key}";
# "none": no read-through, no demo origin).  Each process gets
# $BC_START_TIMEOUT seconds (default 60) to start listening: the wait ends
# as soon as it listens, or at once, with its log's last lines, when it dies.
#
# Secured as a real deployment is (docs/security.md): `up` generates an
# admin token and two ZooKeeper identities in the state folder (mode 0600):
#   admin-token   the consoles' and nodes' admin token
#   zk-auth       the writer identity (consoles, nodes, this script's CLI)
#   zk-read-auth  a read-only identity, for clients that only route
# and creates the cluster under ZooKeeper ACLs.  The CLI then needs
#   --zk-auth-file STATE/zk-auth --auth-token-file STATE/admin-token
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BC_BUILD_DIR:-build}
BASE=${BC_BASE_PORT:-22100}
STATE=$(realpath -m "${BC_STATE_DIR:-deploy/.local-cluster}")
CLUSTER=${BC_CLUSTER:-local}
ZK_PORT=$((BASE + 81))
ORIGIN_PORT=$((BASE + 80))
ORIGIN=${BC_ORIGIN:-img/=http://127.0.0.1:$ORIGIN_PORT/v1/{key}}
ORIGIN_ARGS=()
[ "$ORIGIN" != none ] && ORIGIN_ARGS=(--origin "$ORIGIN")
ZK="127.0.0.1:$ZK_PORT"
NODE_MEMORY_MB=${BC_NODE_MEMORY_MB:-64}
TOKEN="$STATE/admin-token"
ZK_AUTH="$STATE/zk-auth"
ZK_READ_AUTH="$STATE/zk-read-auth"
CLI="$BUILD/client/bucketcache --zk $ZK --cluster $CLUSTER --zk-auth-file $ZK_AUTH --auth-token-file $TOKEN"

die() { echo "local-cluster: $*" >&2; exit 1; }

# A loaded machine or a sanitizer build starts processes slowly: the
# limit is generous, since every wait below ends as soon as it can.
START_TIMEOUT=${BC_START_TIMEOUT:-60}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether pid is running (a zombie, dead but not yet reaped, is not).
alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]; }

log_tail() {  # name
  echo "--- last lines of $STATE/$1.log:" >&2
  tail -n 40 "$STATE/$1.log" >&2 2>/dev/null || true
}

# Fails with the process's log when it died or did not become ready.
check_starting() {  # name what started-at-SECONDS
  local pid rc=0; pid=$(cat "$STATE/$1.pid")
  if ! alive "$pid"; then
    wait "$pid" 2>/dev/null || rc=$?
    log_tail "$1"
    die "$2 exited (status $rc) before it was ready (log: $STATE/$1.log)"
  fi
  if (( SECONDS - $3 >= START_TIMEOUT )); then
    log_tail "$1"
    die "$2 not ready after ${START_TIMEOUT} s (log: $STATE/$1.log)"
  fi
}

wait_port() {  # port name what
  local t0=$SECONDS
  until port_open "$1"; do check_starting "$2" "$3" "$t0"; sleep 0.1; done
}

# Another program on one of our ports would answer in place of ours.
port_free() {  # port what
  port_open "$1" && die "port $1 for $2 is taken by another program (set BC_BASE_PORT)"
  return 0
}

random_hex() {  # bytes
  head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'
}

secrets_up() {  # fresh credentials, readable by this user only
  (umask 077
   random_hex 24 >"$TOKEN"
   echo "bcwriter:$(random_hex 18)" >"$ZK_AUTH"
   echo "bcreader:$(random_hex 18)" >"$ZK_READ_AUTH")
}

start_bg() {  # name command...
  local name=$1; shift
  "$@" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

zk_up() {
  mkdir -p "$STATE/zk/data"
  cat >"$STATE/zk/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$STATE/zk/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
CFG
  port_free "$ZK_PORT" ZooKeeper
  start_bg zookeeper java -Xmx256m -Dzookeeper.log.dir="$STATE/zk" \
    -cp /usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$STATE/zk/zoo.cfg"
  # Ready when srvr reports a Mode (imok comes earlier than that).
  local t0=$SECONDS
  while :; do
    if port_open "$ZK_PORT"; then
      exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT"; printf srvr >&3
      if timeout 2 cat <&3 | grep -q Mode:; then exec 3<&-; return 0; fi
      exec 3<&-
    fi
    check_starting zookeeper ZooKeeper "$t0"
    sleep 0.2
  done
}

origin_up() {
  [ "$ORIGIN" = none ] && return 0
  port_free "$ORIGIN_PORT" "the demo origin"
  start_bg origin python3 deploy/demo-origin.py --port "$ORIGIN_PORT"
  wait_port "$ORIGIN_PORT" origin "the demo origin"
}

console_up() {  # index
  local port=$((BASE + 90 + $1))
  port_free "$port" "console $1"
  start_bg "console-$1" "$BUILD/console/bucketcache-console" --zk "$ZK" --cluster "$CLUSTER" \
    --admin-port "$port" --auth-token-file "$TOKEN" --zk-auth-file "$ZK_AUTH"
  wait_port "$port" "console-$1" "console $1"
}

# Whether the node whose admin port is $1 has registered in its group.
registered() {
  curl -fsS --max-time 2 -H "Authorization: Bearer $(cat "$TOKEN")" \
    "http://127.0.0.1:$1/stats" 2>/dev/null |
    grep -Eq '"registrations":[[:space:]]*[1-9]'
}

group_up() {  # gid
  local g=$1 i
  for i in 0 1; do
    local port=$((BASE + 100 + 10 * g + 2 * i))
    port_free "$port" "node $i of group $g"
    port_free $((port + 1)) "node $i of group $g"
    start_bg "node-g$g-$i" "$BUILD/node/bucketcache-node" -l 127.0.0.1 -p "$port" \
      --admin-port $((port + 1)) -m "$NODE_MEMORY_MB" -t 2 \
      --zk "$ZK" --cluster "$CLUSTER" --group "$g" "${ORIGIN_ARGS[@]}" \
      --auth-token-file "$TOKEN" --zk-auth-file "$ZK_AUTH"
    wait_port "$port" "node-g$g-$i" "node $i of group $g"
    wait_port $((port + 1)) "node-g$g-$i" "node $i of group $g (admin port)"
    # The first node registered becomes primary: node 0, once it is in.
    local t0=$SECONDS
    until registered $((port + 1)); do
      check_starting "node-g$g-$i" "node $i of group $g (registering)" "$t0"
      sleep 0.1
    done
  done
  echo "$g" >>"$STATE/groups"
}

cmd_up() {
  local groups=${1:-2}
  [ -x "$BUILD/node/bucketcache-node" ] || die "no build in $BUILD/ (cmake -S . -B build && cmake --build build)"
  [ -e "$STATE/zookeeper.pid" ] && die "already up (run: $0 down)"
  mkdir -p "$STATE"
  : >"$STATE/groups"
  secrets_up
  zk_up
  origin_up
  $CLI cluster create --buckets "${BC_BUCKETS:-1024}" --read-auth-file "$ZK_READ_AUTH" >/dev/null
  # Groups first: the first console then finds them all and spreads the
  # (still empty) buckets over every group at once, no data to move.
  for g in $(seq 1 "$groups"); do group_up "$g"; done
  console_up 0
  console_up 1
  echo "cluster \"$CLUSTER\" is up: ZooKeeper $ZK, dashboard http://127.0.0.1:$((BASE + 90))/"
  echo "secured: admin token in $TOKEN (the dashboard asks for it), ZooKeeper ACLs"
  echo "CLI: $CLI status"
}

cmd_add_group() {
  [ -e "$STATE/groups" ] || die "not up (run: $0 up)"
  local g=$(( $(sort -n "$STATE/groups" | tail -1) + 1 ))
  group_up "$g"
  echo "group $g started"
}

cmd_status() {
  [ -e "$STATE/groups" ] || die "not up"
  for f in "$STATE"/*.pid; do
    local name; name=$(basename "$f" .pid)
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "running  $name (pid $(cat "$f"))"; else echo "STOPPED  $name"; fi
  done
  echo
  $CLI status || true
}

cmd_down() {
  [ -d "$STATE" ] || return 0
  for f in "$STATE"/node-*.pid "$STATE"/console-*.pid "$STATE"/zookeeper.pid "$STATE"/origin.pid; do
    [ -e "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$STATE"/*.pid; do
    [ -e "$f" ] || continue
    for _ in $(seq 50); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$STATE"
  echo "local cluster stopped"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  add-group) cmd_add_group ;;
  status) cmd_status ;;
  down) cmd_down ;;
  *) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
