#!/usr/bin/env bash
# Installs dependencies, then builds and runs every test three times: the
# normal build (build/), the ASan+UBSan build (build-asan/) and the
# ThreadSanitizer build (build-tsan/), and runs each fuzz target briefly
# (build-fuzz/, $(nproc) at a time).  Exits non-zero on the first failure.
#
# The TSan stage runs every test but the protocol comparisons with real
# memcached (test_memcached_auth, test_memcached_differential,
# test_binary_protocol, test_memcached_compat, test_memcached_tools) and
# the tests of one connection's parsing, of shell scripts and of the
# browser (test_bad_input, test_deploy, test_dashboard): the ASan stage
# and the fuzzers cover them, and their waits cost minutes of a 2-core
# budget under a sanitizer.  The node's and console's threads are mostly
# exercised by test_replication, test_migration*, test_forwarding,
# test_cluster_nodes and test_console.  On an idle 2-core machine the
# stages take about 5 (normal), 6 (ASan), 6 (TSan) and 2 (fuzz) minutes,
# builds included.
# ctest passes TSAN_OPTIONS naming tests/tsan.supp to every test; an
# integration test fails on any ThreadSanitizer report of a process it
# started (tests/integration/harness.py).
#
# The multi-host fault suite (integration.test_multihost: network
# namespaces, a ZooKeeper ensemble, partitions; its short schedule takes
# 3.5 to 4 min, beside the other tests, and starts first) runs in the
# normal build only: in the ASan and TSan builds
# it skips itself (exit 77), because its figures are timings and a
# sanitized cluster on 2 cores measures the sanitizer, and because it
# would add 4 min (ASan) to 10 min (TSan) to the budget.  It needs root
# for the namespaces and skips itself without.  BC_MULTIHOST_LONG=1 runs
# its long schedule (every scenario in both modes, longer) instead.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh

JOBS=$(nproc)
# Tests run two per core: the integration tests spend most of their time
# waiting (ZooKeeper sessions expiring, a killed node's absence noticed,
# timeouts that are the point of the test), so at one per core the cores
# sat about 30% idle even under the sanitizers.  The harness gives each
# test ports no other test holds (free_port) and stretches its waits under
# the sanitizers (SLOW).
CTEST_JOBS=$((JOBS * 2))
run_suite() {
  local dir=$1 t0=$SECONDS; shift
  echo "=== configure + build: $dir ($*)"
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
  echo "=== ctest: $dir"
  ctest --test-dir "$dir" --output-on-failure -j "$CTEST_JOBS" ${CTEST_EXCLUDE:+-E "$CTEST_EXCLUDE"}
  echo "=== $dir passed in $((SECONDS - t0)) s"
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DBC_SANITIZE=ON
CTEST_EXCLUDE="test_memcached_auth|test_memcached_differential|test_binary_protocol|test_memcached_compat|test_memcached_tools|test_bad_input|test_dashboard|test_deploy" \
  run_suite build-tsan -DCMAKE_BUILD_TYPE=Debug -DBC_TSAN=ON

t_fuzz=$SECONDS
echo "=== fuzz: build-fuzz"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DBC_FUZZ=ON >/dev/null
# Only the fuzz targets (and what they link): the rest of the tree was
# built and tested by the stages above.
fuzz_targets=()
for src in tests/fuzz/fuzz_*.c; do fuzz_targets+=("$(basename "$src" .c)"); done
cmake --build build-fuzz -j "$JOBS" --target "${fuzz_targets[@]}"
# The fuzzers run $JOBS at a time (each is one process on one core), each
# for 15 s; a fuzzer that finds a crash exits non-zero and fails the stage
# after its log is shown.
fuzz_one() {
  local src=$1 name f corpus
  name=$(basename "$src" .c)
  f="build-fuzz/tests/$name"
  corpus="tests/fuzz/corpus/${name#fuzz_}"
  mkdir -p "build-fuzz/corpus-$name"
  "$f" -max_total_time=15 -max_len=4096 -print_final_stats=1 \
       "build-fuzz/corpus-$name" $( [ -d "$corpus" ] && echo "$corpus" ) \
       >"build-fuzz/$name.log" 2>&1
}
fuzz_failed=0
srcs=(tests/fuzz/fuzz_*.c)
for ((i = 0; i < ${#srcs[@]}; i += JOBS)); do
  pids=() names=()
  for src in "${srcs[@]:i:JOBS}"; do
    fuzz_one "$src" & pids+=($!) names+=("$(basename "$src" .c)")
  done
  for j in "${!pids[@]}"; do
    rc=0; wait "${pids[j]}" || rc=$?
    echo "--- ${names[j]} (15 s, exit $rc)"
    if [ "$rc" -ne 0 ]; then fuzz_failed=1; cat "build-fuzz/${names[j]}.log"
    else tail -n 12 "build-fuzz/${names[j]}.log"; fi
  done
done
[ "$fuzz_failed" -eq 0 ] || { echo "=== fuzz FAILED"; exit 1; }
echo "=== fuzz passed in $((SECONDS - t_fuzz)) s"
echo "=== all suites passed in $SECONDS s"
