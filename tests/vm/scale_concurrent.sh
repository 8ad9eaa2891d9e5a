#!/usr/bin/env bash
# scale_concurrent: 1,000 connections at once through one process (issue 6). utcp-perf
# opens 1,000 utcp connections (each its own endpoint granted by utcpd, which runs each
# handshake; each asks for small rings, 64+64 slots of 2 KiB, so 1,000 endpoints fit in
# the guest), all established before any data moves; each then sends its share and the
# kernel-TCP server's byte count for that connection must match (utcp-perf fails the run
# otherwise); then the same with the server sending to each. All are closed and every
# endpoint goes back to the module: none left live afterwards.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
perf=$UTCP_BUILD/tools/utcp-perf/utcp-perf
probe=$UTCP_BUILD/tests/registry/registry_probe
export UTCP_REGISTRY=/run/utcp/utcpd.sock
n=${UTCP_SCALE_CONNECTIONS:-1000}
# Descriptors for 1,000 connections, in utcpd (two each) and in utcp-perf.
ulimit -n 65536 2>/dev/null || true
start_utcpd -q >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
port=5500
in_b "$perf" server --bind "$UTCP_IP_B" --port $port 2>/tmp/perf-server.err &
server=$!
wait_for 30 grep -q listening /tmp/perf-server.err || { echo "FAIL: utcp-perf server starts"; exit 1; }

# A sampler of the module's live endpoints while the run goes on (its peak is logged).
sample_live() {
	local peak=0 v
	while kill -0 "$1" 2>/dev/null; do
		v=$(in_a "$probe" live-endpoints 2>/dev/null || echo 0)
		[ "$v" -gt "$peak" ] 2>/dev/null && peak=$v
		sleep 1
	done
	echo "$peak"
}

run() {  # NAME utcp-perf ARGS...
	local name=$1
	shift
	in_a timeout 900 "$perf" --stack utcp -c "$UTCP_IP_B" --port $port --json --quiet --parallel "$n" \
		--rings 64,64,2048 "$@" >/tmp/scale.json 2>/tmp/scale.err &
	local p=$!
	sample_live $p >/tmp/scale.peak &
	local s=$!
	wait $p
	local rc=$?
	wait $s
	local peak
	peak=$(cat /tmp/scale.peak)
	local streams bytes
	streams=$(grep -o '"streams": [0-9]*' /tmp/scale.json | grep -o '[0-9]*$')
	bytes=$(grep -o '"bytes": [0-9]*' /tmp/scale.json | grep -o '[0-9]*$')
	check "$name: $n connections established, every byte count matches (exit $rc)" \
		'[ "$rc" = 0 ] && [ "${streams:-0}" = "$n" ] && [ "${bytes:-0}" = "$want" ]'
	# Informational only: a 1 s sampler can miss a short all-open window. That all n were
	# open at once is utcp-perf's own order (every connection established, then data).
	echo "    peak live endpoints seen by the 1 s sampler: $peak"
	[ "$rc" = 0 ] || cat /tmp/scale.err
	grep -o '"setup_us": {[^}]*}' /tmp/scale.json | sed 's/^/    /'
	grep -o '"memory_per_connection": {[^}]*}' /tmp/scale.json | sed 's/^/    /'
	wait_for 30 no_live_endpoints
	check "$name: all closed, every endpoint reclaimed" '[ "$(in_a "$probe" live-endpoints)" = 0 ]'
}

# 4 KiB per connection each way (the counts are checked per connection).
want=$((n * 4096))
run "send" --bytes $want --write-size 4096
run "receive" --bytes $want --write-size 4096 --reverse

kill $server 2>/dev/null
stop_utcpd | grep -E "error" | head -5
finish
