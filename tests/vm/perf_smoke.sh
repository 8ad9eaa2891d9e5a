#!/usr/bin/env bash
# perf_smoke: every utcp-perf mode runs once, for the utcp and the kernel client, against
# a kernel-TCP utcp-perf server on the other host, and prints valid JSON with nonzero
# results. Correctness only: no timing thresholds (numbers are bench/run-bench's job).
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
perf=$UTCP_BUILD/tools/utcp-perf/utcp-perf
[ -x "$perf" ] || { echo "FAIL: utcp-perf is built"; exit 1; }
export UTCP_REGISTRY=/run/utcp/utcpd.sock
start_utcpd >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
port=5400
in_b "$perf" server --bind "$UTCP_IP_B" --port $port 2>/tmp/perf-server.err &
server=$!
until grep -q listening /tmp/perf-server.err 2>/dev/null; do sleep 0.1; done

# valid JSON NAME FIELD... : the last run's JSON parses and each dotted FIELD is > 0.
valid() {
	python3 - "$@" <<'EOF'
import json, sys
name, fields = sys.argv[1], sys.argv[2:]
try:
    doc = json.load(open("/tmp/perf.json"))
except Exception as e:
    print(f"{name}: not JSON: {e}")
    sys.exit(1)
for f in fields:
    v = doc
    for k in f.split("."):
        v = v.get(k) if isinstance(v, dict) else None
    if not isinstance(v, (int, float)) or v <= 0:
        print(f"{name}: {f} = {v!r}, want a number > 0")
        sys.exit(1)
EOF
}

run() {  # NAME STACK FIELDS -- utcp-perf ARGS
	local name=$1 stack=$2
	shift 2
	local fields=()
	while [ "$1" != -- ]; do fields+=("$1"); shift; done
	shift
	in_a timeout 120 "$perf" --stack "$stack" -c "$UTCP_IP_B" --port $port --json --quiet "$@" >/tmp/perf.json 2>/tmp/perf.err
	local rc=$?
	check "$stack $name: exit 0, JSON with nonzero results" '[ $rc = 0 ] && valid "$stack $name" "${fields[@]}"'
	[ $rc = 0 ] || { echo "rc $rc"; cat /tmp/perf.err; }
}

for stack in kernel utcp; do
	run "stream send" $stack bytes mbit_per_s seconds setup_us.mean -- --bytes 256K --write-size 4K
	run "stream receive" $stack bytes mbit_per_s -- --bytes 256K --reverse
	run "stream send by time" $stack bytes mbit_per_s -- --time 0.5 --write-size 512
	run "3 parallel streams" $stack bytes mbit_per_s streams -- --bytes 96K --parallel 3
	run "rr" $stack rtt_us.mean rtt_us.p50 rtt_us.p99 iterations -- --rr 512 --iterations 20
	run "connect" $stack setup_us.mean connections -- --connect 3
	run "crr" $stack connections_per_s connections connection_us.mean -- --crr 64 --iterations 5
done
run "connect, library handshake" utcp setup_us.mean -- --connect 2 --handshake library
grep -q '"stack": "utcp"' /tmp/perf.json
check "utcp run reports the utcp stack" '[ $? = 0 ]'

# Hostile input: a connection that sends garbage instead of a request header is closed,
# and the server keeps serving.
printf 'GARBAGE-NOT-A-HEADER-1234' | in_a timeout 10 nc -q 2 "$UTCP_IP_B" $port >/dev/null 2>&1
run "rr after a garbage request" kernel rtt_us.mean -- --rr 1 --iterations 3
grep -q "no valid request header" /tmp/perf-server.err
check "server refused the garbage header" '[ $? = 0 ]'

kill $server 2>/dev/null; wait $server 2>/dev/null
stop_utcpd >/dev/null
sleep 0.5
check "module endpoints reclaimed after the runs" '[ "$(in_a "$UTCP_BUILD/tests/registry/registry_probe" live-endpoints)" = 0 ]'
finish
