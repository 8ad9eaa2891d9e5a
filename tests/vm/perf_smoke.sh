#!/usr/bin/env bash
# perf_smoke: every utcp-perf mode runs once, for the utcp, sps and kernel clients, against
# a kernel-TCP utcp-perf server on the other host, and prints valid JSON with nonzero
# results. Correctness only: no timing thresholds (numbers are bench/run-bench's job).
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
perf=$UTCP_BUILD/tools/utcp-perf/utcp-perf
[ -x "$perf" ] || { echo "FAIL: utcp-perf is built"; exit 1; }
export UTCP_REGISTRY=/run/utcp/utcpd.sock
# Rings of 1 MiB rather than the default 32 MiB: endpoint creation is much faster in an
# emulated guest, and the modes, not the ring sizes, are under test here.
printf 'rx_entries 256\ntx_entries 256\nslot_size 2048\n' > /tmp/utcpd-smoke.conf
start_utcpd -f /tmp/utcpd-smoke.conf >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
port=5400
in_b "$perf" server --bind "$UTCP_IP_B" --port $port 2>/tmp/perf-server.err &
server=$!
until grep -q listening /tmp/perf-server.err 2>/dev/null; do sleep 0.1; done

# Each run's JSON is kept and one python run judges them all at the end (python starts
# slowly in an emulated guest). Manifest lines: FILE-BASE<TAB>NAME<TAB>EXIT<TAB>FIELDS.
: > /tmp/perf-manifest
n=0
run() {  # NAME STACK FIELD... -- utcp-perf ARGS   (each dotted FIELD must be a number > 0)
	local name=$1 stack=$2
	shift 2
	local fields=()
	while [ "$1" != -- ]; do fields+=("$1"); shift; done
	shift
	n=$((n + 1))
	in_a timeout 120 "$perf" --stack "$stack" -c "$UTCP_IP_B" --port $port --json --quiet \
		${UTCP_PERF_SPS_SOCKET:+--sps-socket "$UTCP_PERF_SPS_SOCKET"} "$@" \
		>/tmp/perf-$n.json 2>/tmp/perf-$n.err
	printf '%s\t%s\t%s\t%s\n' "/tmp/perf-$n" "$stack $name" "$?" "${fields[*]}" >> /tmp/perf-manifest
}

smoke_runs() {  # STACK
	local stack=$1
	run "stream send" $stack bytes mbit_per_s seconds setup_us.mean -- --bytes 256K --write-size 4K
	run "stream receive" $stack bytes mbit_per_s -- --bytes 256K --reverse
	run "stream send by time" $stack bytes mbit_per_s -- --time 0.5 --write-size 512
	run "3 parallel streams" $stack bytes mbit_per_s streams -- --bytes 96K --parallel 3
	run "rr" $stack rtt_us.mean rtt_us.p50 rtt_us.p99 iterations -- --rr 512 --iterations 20
	# Multi-segment messages: a response may arrive in the server's last poll of a round
	# (utcp-sps once left it there until a timer, stalling the run).
	run "rr 4 KiB" $stack rtt_us.mean iterations -- --rr 4096 --iterations 40
	run "rr busy-polling" $stack rtt_us.mean busy_poll_us iterations -- --rr 1 --iterations 20 --busy-poll 200
	run "connect" $stack setup_us.mean connections -- --connect 3
	run "crr" $stack connections_per_s connections connection_us.mean -- --crr 64 --iterations 5
}
smoke_runs kernel
smoke_runs utcp
# Endpoints granted ahead of the connect (registry/prefetch.h): the library's handshake
# over them, for one connection after another and with a request/response on each.
run "connect, prefetched grants" utcp setup_us.mean connections -- --connect 6 --handshake prefetch
run "crr, prefetched grants" utcp connections_per_s connections -- --crr 64 --iterations 8 --handshake prefetch
# Send and sleep for the answer in one UTCP_IOC_TX_WAIT (--tx-wait), multi-segment
# messages included: the ACK of the request must not end the sleep, the response must.
run "rr, send and sleep in one ioctl" utcp rtt_us.mean iterations -- --rr 1460 --iterations 30 --tx-wait
run "rr 4 KiB, send and sleep in one ioctl" utcp rtt_us.mean iterations -- --rr 4096 --iterations 30 --tx-wait
# The single protocol server (tools/utcp-sps): the same TCP, in one server process that
# utcp-perf reaches over a Unix socket (its own path, started right before its runs).
in_a "$UTCP_BUILD/tools/utcp-sps/utcp-sps" --socket /tmp/utcp-sps.sock -v 2>/tmp/sps.err &
sps=$!
wait_for 60 test -S /tmp/utcp-sps.sock || { echo "utcp-sps did not start:"; cat /tmp/sps.err; }
export UTCP_PERF_SPS_SOCKET=/tmp/utcp-sps.sock
smoke_runs sps
[ -S /tmp/utcp-sps.sock ] && kill -0 $sps 2>/dev/null || { echo "utcp-sps gone after its runs:"; cat /tmp/sps.err; }
run "connect, library handshake" utcp setup_us.mean -- --connect 2 --handshake library
grep -q '"stack": "utcp"' /tmp/perf-$n.json
check "utcp run reports the utcp stack" '[ $? = 0 ]'
check "sps runs went through utcp-sps's stack (utcpd granted it endpoints)" \
	'[ "$(grep -c "^utcp-sps: endpoint" /tmp/sps.err)" -ge 10 ] && kill -0 $sps'
kill $sps 2>/dev/null; wait $sps 2>/dev/null

# Hostile input: a connection that sends garbage instead of a request header is closed,
# and the server keeps serving.
printf 'GARBAGE-NOT-A-HEADER-1234' | in_a timeout 10 nc -q 2 "$UTCP_IP_B" $port >/dev/null 2>&1
run "rr after a garbage request" kernel rtt_us.mean -- --rr 1 --iterations 3
grep -q "no valid request header" /tmp/perf-server.err
check "server refused the garbage header" '[ $? = 0 ]'

verdicts=$(python3 - <<'EOF'
import json
for line in open("/tmp/perf-manifest"):
    base, name, rc, fields = line.rstrip("\n").split("\t")
    why = None
    if rc != "0":
        why = f"exit {rc}: " + open(base + ".err").read().strip()[:300]
    else:
        try:
            doc = json.load(open(base + ".json"))
        except Exception as e:
            doc, why = None, f"not JSON: {e}"
        for f in fields.split() if doc is not None else []:
            v = doc
            for k in f.split("."):
                v = v.get(k) if isinstance(v, dict) else None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                why = f"{f} = {v!r}, want a number > 0"
                break
    print(f"{'FAIL' if why else 'PASS'}: {name}: exit 0, JSON with nonzero results", flush=True)
    if why:
        print(f"    {why}")
EOF
)
echo "$verdicts"
check "every run judged ($n runs)" '[ "$(grep -cE "^(PASS|FAIL): " <<<"$verdicts")" = "$n" ]'
failures=$((failures + $(grep -c '^FAIL: ' <<<"$verdicts")))

kill $server 2>/dev/null
wait $server 2>/dev/null
stop_utcpd >/dev/null
sleep 0.5
check "module endpoints reclaimed after the runs" '[ "$(in_a "$UTCP_BUILD/tests/registry/registry_probe" live-endpoints)" = 0 ]'
finish
