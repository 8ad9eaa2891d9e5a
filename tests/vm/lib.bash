# lib.sh - helpers for VM test scripts (sourced). Results are PASS:/FAIL: lines.
failures=0
check() {  # check NAME EXPR
	if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
finish() { [ "$failures" = 0 ]; exit $?; }
# The programs most scripts drive: the transfer example, the kernel-side peer, the registry probe.
xfer=${UTCP_BUILD:-}/examples/utcp-xfer
peer=${UTCP_SRC:-}/tests/vm/tcp_peer.py
probe=${UTCP_BUILD:-}/tests/registry/registry_probe
in_a() { ip netns exec "$UTCP_NS_A" "$@"; }
in_b() { ip netns exec "$UTCP_NS_B" "$@"; }
wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds (1 when it never did)
	local t=$(( $1 * 10 )); shift
	for _ in $(seq "$t"); do "$@" && return 0; sleep 0.1; done
	return 1
}

classifier_obj() {
	find "$UTCP_BUILD" -name 'utcp_classifier.bpf.o' -print -quit 2>/dev/null
}
need_classifier() {
	if [ -z "$(classifier_obj)" ]; then echo "SKIP: no classifier object built (clang missing?)"; exit 77; fi
}

# Starts utcpd on the utcp side's interface; its log goes to /tmp/utcpd.log. A socket
# file an earlier utcpd left (another script's, or one killed here) is removed first: it
# would pass for the new utcpd's before that one binds.
start_utcpd() {
	mkdir -p "$(dirname "${UTCP_REGISTRY:-/run/utcp/utcpd.sock}")"
	rm -f "${UTCP_REGISTRY:-/run/utcp/utcpd.sock}"
	# Not through in_a: $! must be utcpd itself (ip netns exec execs it), not a subshell.
	ip netns exec "$UTCP_NS_A" "$UTCP_BUILD/registry/utcpd" --interface "$UTCP_IF_A" --classifier "$(classifier_obj)" \
		--socket "${UTCP_REGISTRY:-/run/utcp/utcpd.sock}" "$@" >/tmp/utcpd.log 2>&1 &
	UTCPD_PID=$!
	for _ in $(seq 50); do [ -S "${UTCP_REGISTRY:-/run/utcp/utcpd.sock}" ] && return 0; sleep 0.1; done
	echo "utcpd did not start:"; cat /tmp/utcpd.log
	return 1
}
stop_utcpd() {
	kill "$UTCPD_PID" 2>/dev/null || true
	wait "$UTCPD_PID" 2>/dev/null || true  # its status is SIGTERM's; callers may run under set -e
	pkill -x utcpd 2>/dev/null || true
	echo "--- utcpd log"; tail -n 20 /tmp/utcpd.log || true
}

# ---- the preload layer's tests (tests/vm/preload_*.sh): unmodified programs on utcp
preload_so() { echo "$(readlink -f "$UTCP_BUILD")/libutcp/src/preload/libutcp-preload.so"; }  # absolute: programs may chdir
utcp_counter() { in_a "$UTCP_BUILD/tools/utcpctl" stats | awk -v k="$1" '$1 == k { print $2 }'; }  # the module's global counter $1
counter_grown() {  # counter_grown NAME BEFORE MIN: the module's counter NAME grew by at least MIN since BEFORE
	[ $(( $(utcp_counter "$1") - $2 )) -ge "$3" ]
}
sha() { sha256sum < "$1" | cut -d' ' -f1; }
listening_in() { ip netns exec "$1" ss -ltnH "sport = :$2" | grep -q .; }  # a kernel socket listens on port $2 in namespace $1
live_endpoints() { in_a "$UTCP_BUILD/tests/registry/registry_probe" live-endpoints; }
# For wait_for, which runs its command again each time: `wait_for 30 test "$(live_endpoints)" = 0`
# would count once, before waiting, and then wait the whole time for nothing.
no_live_endpoints() { [ "$(live_endpoints)" = 0 ]; }
# iperf3_json FILE KEY: from iperf3 --json output, end.sum_received.KEY (bytes, bits_per_second); 0 when absent
iperf3_json() {
	python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['end']['sum_received'][sys.argv[2]]))" "$1" "$2" 2>/dev/null || echo 0
}
# iperf3_explain JSON ERRLOG: why an iperf3 run moved nothing — its exit, error, both ends' figures, stderr
iperf3_explain() {
	python3 - "$1" <<'PY' 2>&1 | sed 's/^/    /'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("iperf3 JSON unreadable:", e); sys.exit()
end = d.get("end", {})
print("iperf3 error:", d.get("error"))
print("sum_sent:", {k: end.get("sum_sent", {}).get(k) for k in ("bytes", "seconds", "retransmits")})
print("sum_received:", {k: end.get("sum_received", {}).get(k) for k in ("bytes", "seconds")})
print("intervals:", [round(i.get("sum", {}).get("bytes", 0)) for i in d.get("intervals", [])])
PY
	echo "    --- stderr (tail)"; tail -n 15 "$2" | sed 's/^/    /'
	echo "    --- the module's counters"; in_a "$UTCP_BUILD/tools/utcpctl" stats 2>&1 | head -n 40 | sed 's/^/    /'
}
mbit() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }  # bits/s -> Mbit/s
# show_logs DIR PATTERN: the head of each DIR/*.err with lines other than PATTERN (a test's leftovers)
show_logs() {
	local f
	for f in "$1"/*.err; do
		if grep -qv "$2" "$f" 2>/dev/null; then echo "--- $(basename "$f")"; head -n 8 "$f"; fi
	done
}
# redis-server's arguments in the preload tests: port 6379, nothing saved, in the foreground.
redis_server_args=(--port 6379 --protected-mode no --save "" --appendonly no --daemonize no)
# redis_bench LABEL HOST OUT CLEAN THROUGH RUNNER...: RUNNER... redis-benchmark -h HOST with
# 4 connections at once, 2000 SET and 2000 GET (RUNNER: e.g. `in_b timeout 200`); its -q
# output in OUT (rates printed after LABEL), its stderr in OUT.err. Two checks: it exited 0,
# reported both rates, wrote no error, and the expression CLEAN holds; then the expression
# THROUGH holds (the requests went through utcp).
redis_bench() {
	local label=$1 host=$2 out=$3 clean=$4 through=$5 rc results ok=0
	shift 5
	"$@" redis-benchmark -h "$host" -p 6379 -n 2000 -c 4 -t set,get -q > "$out" 2>"$out.err"
	rc=$?
	results=$(tr '\r' '\n' < "$out")
	echo "$results" | grep -E "^(SET|GET): [0-9.]+ requests per second" | sed "s|^|    $label: |"
	[ "$(echo "$results" | grep -cE "^(SET|GET): [0-9.]+ requests per second")" = 2 ] && ! echo "$results" | grep -qi error &&
		[ ! -s "$out.err" ] && ok=1
	check "$label: SET and GET, 2000 requests each, no errors" '[ $rc = 0 ] && [ $ok = 1 ] && eval "$clean"'
	check "$label: the requests went through utcp" "$through"
}
# preload_start ARGS...: what every preload test does first: the classifier, the built
# layer in $pre, UTCP_REGISTRY, utcpd started with ARGS (exits the test on a failure).
preload_start() {
	need_classifier
	pre=$(preload_so)
	export UTCP_REGISTRY=/run/utcp/utcpd.sock
	[ -f "$pre" ] || { echo "FAIL: libutcp-preload.so built"; exit 1; }
	start_utcpd "$@" -v >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
}
