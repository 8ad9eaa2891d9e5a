#!/usr/bin/env bash
# utcp_utcp: utcp on both ends. Each namespace runs its own utcpd attached to its own end
# of the veth (two control files in one module, each with its own classifier and
# endpoints); a utcp-xfer client in A connects through A's utcpd to a utcp-xfer server in
# B that accepts through B's utcpd (both registries run their side's handshake, paper
# §3.4). One connection carries a file each way at once, sha256 checked on both sides; once
# with the registries' default (small) rings, once with bulk rings on both ends; then
# the module has no endpoint left.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
xfer=$UTCP_BUILD/examples/utcp-xfer
probe=$UTCP_BUILD/tests/registry/registry_probe
export UTCP_REGISTRY=/run/utcp/utcpd.sock
reg_b=/run/utcp/utcpd-b.sock
# A short TIME-WAIT, so the inherited connections are gone within the test.
start_utcpd --time-wait-ms 2000 >/dev/null || { echo "FAIL: utcpd starts in A"; exit 1; }
# B's registry: the same daemon on B's interface, its own socket and log.
ip netns exec "$UTCP_NS_B" "$UTCP_BUILD/registry/utcpd" --interface "$UTCP_IF_B" --classifier "$(classifier_obj)" \
	--socket "$reg_b" --time-wait-ms 2000 >/tmp/utcpd-b.log 2>&1 &
utcpd_b=$!
wait_for 5 test -S "$reg_b" || { echo "FAIL: utcpd starts in B"; cat /tmp/utcpd-b.log; exit 1; }
check "two registries serve the two ends of the link" 'kill -0 $UTCPD_PID && kill -0 $utcpd_b'

head -c $((3 << 20)) /dev/urandom > /tmp/a.bin
head -c $((5 << 20)) /dev/urandom > /tmp/b.bin
sum() { sha256sum < "$1" | cut -d' ' -f1; }

port=7100
both_ways() {  # NAME [utcp-xfer ring options...]
	local name=$1
	shift
	port=$((port + 1))
	rm -f /tmp/srv.err /tmp/srv.out /tmp/cli.out
	UTCP_REGISTRY=$reg_b ip netns exec "$UTCP_NS_B" timeout 300 "$xfer" listen $port "$@" \
		< /tmp/b.bin > /tmp/srv.out 2>/tmp/srv.err &
	local srv=$!
	wait_for 30 grep -q "listening on" /tmp/srv.err || { check "$name: utcp server listens in B" false; cat /tmp/srv.err; return; }
	in_a timeout 300 "$xfer" connect "$UTCP_IP_B" $port "$@" < /tmp/a.bin > /tmp/cli.out 2>/tmp/cli.err
	local crc=$?
	wait $srv
	local src=$?
	check "$name: utcp client (A) and utcp server (B) both succeed" '[ $crc = 0 ] && [ $src = 0 ]'
	check "$name: A -> B, 3 MiB, sha256 equal" '[ "$(sum /tmp/srv.out)" = "$(sum /tmp/a.bin)" ]'
	check "$name: B -> A, 5 MiB, sha256 equal" '[ "$(sum /tmp/cli.out)" = "$(sum /tmp/b.bin)" ]'
	sed 's/^/    client: /' /tmp/cli.err
	sed 's/^/    server: /' /tmp/srv.err
}

both_ways "default rings"
both_ways "bulk rings" --bulk

# Each registry inherits its side's closed connections (TIME-WAIT, then released): the
# module's endpoint count (both control files) returns to 0 while both still run.
wait_for 30 no_live_endpoints
check "every endpoint of both registries reclaimed" '[ "$(in_a "$probe" live-endpoints)" = 0 ]'
kill "$utcpd_b" 2>/dev/null
wait "$utcpd_b" 2>/dev/null
echo "--- utcpd B log"; tail -n 8 /tmp/utcpd-b.log
stop_utcpd | tail -n 8
finish
