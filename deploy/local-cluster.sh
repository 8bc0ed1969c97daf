#!/usr/bin/env bash
# A bucketcache cluster on 127.0.0.1 for trying things out:
# a ZooKeeper server (Debian package), two consoles (one active, one
# standby), G groups of one primary and one backup node each, and a demo
# image service (deploy/demo-origin.py) the nodes read "img/" keys
# through from (docs/origin.md).
#
#   deploy/local-cluster.sh up [G] [--netns]  start (default G=2), create the cluster
#   deploy/local-cluster.sh add-group   start one more group
#   deploy/local-cluster.sh status      what is running, and the cluster view
#   deploy/local-cluster.sh down        stop everything, remove the state
#
# With --netns (as root) every process runs on a host of its own: a network
# namespace with its own address, so links between them can be cut by hand:
#   deploy/local-cluster.sh hosts                 the hosts and their addresses
#   deploy/local-cluster.sh cut A [B ...]         cut A from each B (default: from all), both ways
#   deploy/local-cluster.sh cut-oneway A B        A's packets to B are lost (B's to A arrive)
#   deploy/local-cluster.sh heal [A [B]]          undo every cut (or those of A, or between A and B)
#   deploy/local-cluster.sh exec HOST CMD...      run CMD on HOST (e.g. client)
#
# Binaries come from $BC_BUILD_DIR (default build/).  State, logs and pid
# files live in $BC_STATE_DIR (default deploy/.local-cluster/).  Ports start at $BC_BASE_PORT
# (default 22100): demo origin +80, ZooKeeper +81, consoles +90/+91, group g
# node i data port +100+10g+2i; a node's admin port is its data port + 69
# (the node's default, so no --admin-port is given).  BC_ORIGIN sets the
# nodes' --origin (default "img/=http://ORIGIN-ADDRESS/v1/{key}"; "none":
# no read-through, no demo origin).  With --netns the
# addresses are 10.202.0.0/24 inside namespaces named $BC_NETNS_PREFIX-HOST
# (default bclc): zk .11 (the demo origin too, port 8000), con0/con1
# .20/.21, client .5, group g node i (host g<g>n<i>) .100+10g+i; ports are
# the defaults (ZooKeeper 2181, nodes 11211 and admin 11280, consoles 11290).
# Each process gets $BC_START_TIMEOUT seconds (default 60) to start
# listening: the wait ends as soon as it listens, or at once, with its
# log's last lines, when it dies.
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
NODE_MEMORY_MB=${BC_NODE_MEMORY_MB:-64}
TOKEN="$STATE/admin-token"
ZK_AUTH="$STATE/zk-auth"
ZK_READ_AUTH="$STATE/zk-read-auth"
NSP=${BC_NETNS_PREFIX:-bclc}
SUBNET=10.202.0
# netns mode: chosen by `up --netns`, remembered in the state directory
NETNS=0
[ -e "$STATE/netns" ] && NETNS=1

die() { echo "local-cluster: $*" >&2; exit 1; }

# A loaded machine or a sanitizer build starts processes slowly: the
# limit is generous, since every wait below ends as soon as it can.
START_TIMEOUT=${BC_START_TIMEOUT:-60}

set_addresses() {
  if [ "$NETNS" = 1 ]; then
    ZK_PORT=2181
    ZK="$SUBNET.11:$ZK_PORT"
    ORIGIN_HOST=$SUBNET.11 ORIGIN_PORT=8000
  else
    ZK_PORT=$((BASE + 81))
    ZK="127.0.0.1:$ZK_PORT"
    ORIGIN_HOST=127.0.0.1 ORIGIN_PORT=$((BASE + 80))
  fi
  # (the default in a variable: "${BC_ORIGIN:-...{key}}" would end at the
  # first "}", leaving one behind a value that is set)
  local default_origin="img/=http://$ORIGIN_HOST:$ORIGIN_PORT/v1/{key}"
  ORIGIN=${BC_ORIGIN:-$default_origin}
  ORIGIN_ARGS=()
  [ "$ORIGIN" != none ] && ORIGIN_ARGS=(--origin "$ORIGIN")
  CLI="$(on_host client) $BUILD/client/bucketcache --zk $ZK --cluster $CLUSTER --zk-auth-file $ZK_AUTH --auth-token-file $TOKEN"
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

# ---- hosts: network namespaces in netns mode, 127.0.0.1 otherwise ----

on_host() {  # host: the command prefix that runs on it
  [ "$NETNS" = 1 ] && echo "ip netns exec $NSP-$1"
  return 0
}

host_ip() {  # host
  [ "$NETNS" = 1 ] || { echo 127.0.0.1; return; }
  awk -v h="$1" '$1 == h { print $2 }' "$STATE/hosts"
}

add_host() {  # host last-octet: a namespace on the bridge, address $SUBNET.octet
  local h=$1 ip=$SUBNET.$2 ns=$NSP-$1
  ip netns add "$ns"
  ip -n "$NSP-br" link add "p$2" type veth peer name eth0 netns "$ns"
  ip -n "$NSP-br" link set "p$2" master br0 up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip netns exec "$ns" iptables -N BCCUT
  ip netns exec "$ns" iptables -A INPUT -j BCCUT
  echo "$h $ip" >>"$STATE/hosts"
}

netns_up() {
  [ "$(id -u)" -eq 0 ] || die "--netns needs root (network namespaces)"
  command -v iptables >/dev/null || die "--netns needs iptables (deploy/install-deps.sh)"
  ip netns list | grep -q "^$NSP-" && die "namespaces $NSP-* exist (run: $0 down, or set BC_NETNS_PREFIX)"
  : >"$STATE/hosts"
  echo "$NSP" >"$STATE/netns"
  ip netns add "$NSP-br"
  ip -n "$NSP-br" link add br0 type bridge
  ip -n "$NSP-br" link set br0 up
  add_host zk 11
  add_host con0 20
  add_host con1 21
  add_host client 5
}

port_open() {  # host port
  $(on_host "$1") bash -c "exec 3<>/dev/tcp/$(host_ip "$1")/$2" 2>/dev/null
}

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

wait_port() {  # host port name what
  local t0=$SECONDS
  until port_open "$1" "$2"; do check_starting "$3" "$4" "$t0"; sleep 0.1; done
}

# Another program on one of our ports would answer in place of ours.
port_free() {  # host port what
  port_open "$1" "$2" && die "port $2 for $3 is taken by another program (set BC_BASE_PORT)"
  return 0
}

start_bg() {  # name host command...
  local name=$1 host=$2; shift 2
  $(on_host "$host") "$@" >"$STATE/$name.log" 2>&1 &
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
clientPortAddress=$(host_ip zk)
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
CFG
  port_free zk "$ZK_PORT" ZooKeeper
  start_bg zookeeper zk java -Xmx256m -Dzookeeper.log.dir="$STATE/zk" \
    -cp /usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$STATE/zk/zoo.cfg"
  # Ready when srvr reports a Mode (imok comes earlier than that).
  local t0=$SECONDS
  while :; do
    if $(on_host zk) bash -c "exec 3<>/dev/tcp/${ZK%:*}/$ZK_PORT; printf srvr >&3; timeout 2 cat <&3" \
        2>/dev/null | grep -q Mode:; then
      return 0
    fi
    check_starting zookeeper ZooKeeper "$t0"
    sleep 0.2
  done
}

origin_up() {  # the demo origin, on the ZooKeeper host
  [ "$ORIGIN" = none ] && return 0
  port_free zk "$ORIGIN_PORT" "the demo origin"
  start_bg origin zk python3 deploy/demo-origin.py --listen "$ORIGIN_HOST" --port "$ORIGIN_PORT"
  wait_port zk "$ORIGIN_PORT" origin "the demo origin"
}

console_up() {  # index
  local port=$((BASE + 90 + $1)) host=con$1 ip
  [ "$NETNS" = 1 ] && port=11290
  ip=$(host_ip "$host")
  port_free "$host" "$port" "console $1"
  start_bg "console-$1" "$host" "$BUILD/console/bucketcache-console" --zk "$ZK" --cluster "$CLUSTER" \
    --admin-port "$port" --admin-listen "$ip" --auth-token-file "$TOKEN" --zk-auth-file "$ZK_AUTH"
  wait_port "$host" "$port" "console-$1" "console $1"
}

# Whether the node on host $1 whose admin port is $2 has registered in its group.
registered() {  # host admin-port
  $(on_host "$1") curl -fsS --max-time 2 -H "Authorization: Bearer $(cat "$TOKEN")" \
    "http://$(host_ip "$1"):$2/stats" 2>/dev/null |
    grep -Eq '"registrations":[[:space:]]*[1-9]'
}

group_up() {  # gid
  local g=$1 i
  for i in 0 1; do
    local port=$((BASE + 100 + 10 * g + 2 * i)) admin host=g${g}n$i ip
    if [ "$NETNS" = 1 ]; then
      [ "$g" -le 15 ] || die "--netns: at most 15 groups"
      add_host "$host" $((100 + 10 * g + i))
      port=11211
    fi
    admin=$((port + 69))      # the node's default admin port: no --admin-port given
    ip=$(host_ip "$host")
    port_free "$host" "$port" "node $i of group $g"
    port_free "$host" "$admin" "node $i of group $g (admin port)"
    start_bg "node-g$g-$i" "$host" "$BUILD/node/bucketcache-node" -l "$ip" -p "$port" \
      --admin-listen "$ip" --advertise "$ip" -m "$NODE_MEMORY_MB" -t 2 \
      --zk "$ZK" --cluster "$CLUSTER" --group "$g" "${ORIGIN_ARGS[@]}" \
      --auth-token-file "$TOKEN" --zk-auth-file "$ZK_AUTH"
    wait_port "$host" "$port" "node-g$g-$i" "node $i of group $g"
    wait_port "$host" "$admin" "node-g$g-$i" "node $i of group $g (admin port)"
    # The first node registered becomes primary: node 0, once it is in.
    local t0=$SECONDS
    until registered "$host" "$admin"; do
      check_starting "node-g$g-$i" "node $i of group $g (registering)" "$t0"
      sleep 0.1
    done
  done
  echo "$g" >>"$STATE/groups"
}

cmd_up() {
  local groups=2 a
  for a in "$@"; do
    case "$a" in
      --netns) NETNS=1 ;;
      *[!0-9]*|'') die "up: unexpected argument \"$a\"" ;;
      *) groups=$a ;;
    esac
  done
  [ -x "$BUILD/node/bucketcache-node" ] || die "no build in $BUILD/ (cmake -S . -B build && cmake --build build)"
  [ -e "$STATE/zookeeper.pid" ] && die "already up (run: $0 down)"
  mkdir -p "$STATE"
  : >"$STATE/groups"
  [ "$NETNS" = 1 ] && netns_up
  set_addresses
  secrets_up
  zk_up
  origin_up
  $CLI cluster create --buckets "${BC_BUCKETS:-1024}" --read-auth-file "$ZK_READ_AUTH" >/dev/null
  # Groups first: the first console then finds them all and spreads the
  # (still empty) buckets over every group at once, no data to move.
  for g in $(seq 1 "$groups"); do group_up "$g"; done
  console_up 0
  console_up 1
  if [ "$NETNS" = 1 ]; then
    echo "cluster \"$CLUSTER\" is up in namespaces $NSP-*: ZooKeeper $ZK, dashboard http://$(host_ip con0):11290/"
    echo "  (from the client host: $0 exec client curl -s http://$(host_ip con0):11290/v1/cluster)"
  else
    echo "cluster \"$CLUSTER\" is up: ZooKeeper $ZK, dashboard http://127.0.0.1:$((BASE + 90))/"
  fi
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
  set_addresses
  for f in "$STATE"/node-*.pid "$STATE"/console-*.pid "$STATE"/zookeeper.pid "$STATE"/origin.pid; do
    [ -e "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$STATE"/*.pid; do
    [ -e "$f" ] || continue
    for _ in $(seq 50); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  if [ "$NETNS" = 1 ]; then
    local h
    for h in $(awk '{ print $1 }' "$STATE/hosts") br; do ip netns del "$NSP-$h" 2>/dev/null || true; done
  fi
  rm -rf "$STATE"
  echo "local cluster stopped"
}

# ---- cutting links by hand (netns mode) ----

need_netns() {
  [ "$NETNS" = 1 ] || die "$1: only with a cluster brought up with --netns"
}

all_hosts() { awk '{ print $1 }' "$STATE/hosts"; }

check_host() {
  [ -n "$(host_ip "$1")" ] || die "no host \"$1\" (see: $0 hosts)"
}

drop() {  # receiver sender [-A|-D]: what receiver gets from sender is dropped (or no longer)
  ip netns exec "$NSP-$1" iptables "${3:--A}" BCCUT -s "$(host_ip "$2")" -j DROP 2>/dev/null || true
}

cmd_cut() {  # a [b ...]
  need_netns cut
  [ $# -ge 1 ] || die "cut: which host?"
  local a=$1 b; shift
  check_host "$a"
  [ $# -ge 1 ] || set -- $(all_hosts | grep -vx "$a")
  for b in "$@"; do
    check_host "$b"
    drop "$a" "$b"; drop "$b" "$a"
  done
  echo "cut $a from: $*"
}

cmd_cut_oneway() {  # a b
  need_netns cut-oneway
  [ $# -eq 2 ] || die "cut-oneway: A B"
  check_host "$1"; check_host "$2"
  drop "$2" "$1"
  echo "packets from $1 to $2 are dropped"
}

cmd_heal() {  # [a [b]]
  need_netns heal
  local h
  if [ $# -eq 0 ]; then
    for h in $(all_hosts); do ip netns exec "$NSP-$h" iptables -F BCCUT; done
    echo "every link healed"
  elif [ $# -eq 1 ]; then
    check_host "$1"
    ip netns exec "$NSP-$1" iptables -F BCCUT
    for h in $(all_hosts); do
      while ip netns exec "$NSP-$h" iptables -D BCCUT -s "$(host_ip "$1")" -j DROP 2>/dev/null; do :; done
    done
    echo "every link of $1 healed"
  else
    check_host "$1"; check_host "$2"
    drop "$1" "$2" -D; drop "$2" "$1" -D
    echo "link $1 - $2 healed"
  fi
}

cmd_hosts() {
  need_netns hosts
  local h ip cuts
  while read -r h ip; do
    cuts=$(ip netns exec "$NSP-$h" iptables -S BCCUT | awk '/-s/ { sub("/32", "", $4); print $4 }' | tr '\n' ' ')
    printf '%-8s %-14s namespace %-14s%s\n' "$h" "$ip" "$NSP-$h" "${cuts:+  drops from: $cuts}"
  done <"$STATE/hosts"
}

cmd_exec() {
  need_netns exec
  [ $# -ge 2 ] || die "exec: HOST CMD..."
  check_host "$1"
  local h=$1; shift
  exec ip netns exec "$NSP-$h" "$@"
}

[ "${1:-}" = up ] || set_addresses
case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  add-group) cmd_add_group ;;
  status) cmd_status ;;
  down) cmd_down ;;
  cut) shift; cmd_cut "$@" ;;
  cut-oneway) shift; cmd_cut_oneway "$@" ;;
  heal) shift; cmd_heal "$@" ;;
  hosts) cmd_hosts ;;
  exec) shift; cmd_exec "$@" ;;
  *) sed -n '2,42p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
