# lib.sh - helpers for VM test scripts (sourced). Results are PASS:/FAIL: lines.
failures=0
check() {  # check NAME EXPR
	if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
finish() { [ "$failures" = 0 ]; exit $?; }
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

# Starts utcpd on the utcp side's interface; its log goes to /tmp/utcpd.log.
start_utcpd() {
	mkdir -p "$(dirname "${UTCP_REGISTRY:-/run/utcp/utcpd.sock}")"
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
