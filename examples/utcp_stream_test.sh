#!/bin/sh
# utcp_stream_test.sh UTCP-STREAM - the seeded stream and SHA-256 that scale_1gib relies
# on: `hash` agrees with sha256sum (FIPS 180-4 vectors, lengths around the 55/56/64-byte
# padding edges, 3 MiB of random bytes); `gen` writes exactly BYTES bytes whose sha256sum
# is the digest it reports; the same seed gives the same stream, different seeds differ.
set -eu
prog=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# FIPS 180-4 / NIST examples.
[ "$(printf abc | "$prog" hash)" = "3 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" ] ||
	fail "hash of abc: $(printf abc | "$prog" hash)"
[ "$(printf '' | "$prog" hash)" = "0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" ] ||
	fail "hash of nothing"
v=abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq
[ "$(printf %s "$v" | "$prog" hash)" = "56 248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" ] ||
	fail "hash of the 56-byte vector"

head -c 3145728 /dev/urandom >"$tmp/rand"
for n in 1 55 56 57 63 64 65 119 120 128 1000 65536 1000003 3145728; do
	head -c "$n" "$tmp/rand" >"$tmp/in"
	want="$n $(sha256sum <"$tmp/in" | cut -d' ' -f1)"
	got=$("$prog" hash <"$tmp/in")
	[ "$got" = "$want" ] || fail "hash of $n random bytes: $got, sha256sum: $want"
	"$prog" gen 7 "$n" >"$tmp/gen" 2>"$tmp/gen.err" || fail "gen 7 $n: $(cat "$tmp/gen.err")"
	[ "$(stat -c %s "$tmp/gen")" = "$n" ] || fail "gen 7 $n wrote $(stat -c %s "$tmp/gen") bytes"
	want="$n $(sha256sum <"$tmp/gen" | cut -d' ' -f1)"
	[ "$(cat "$tmp/gen.err")" = "$want" ] || fail "gen 7 $n reports $(cat "$tmp/gen.err"), sha256sum says $want"
done

# Deterministic, and a prefix of a longer stream from the same seed; seeds differ.
"$prog" gen 9 1000003 >"$tmp/a" 2>/dev/null
"$prog" gen 9 1000003 >"$tmp/b" 2>/dev/null
cmp -s "$tmp/a" "$tmp/b" || fail "gen 9 is not deterministic"
"$prog" gen 9 2000000 2>/dev/null | head -c 1000003 >"$tmp/c"
cmp -s "$tmp/a" "$tmp/c" || fail "gen 9 1000003 is not a prefix of gen 9 2000000"
"$prog" gen 10 1000003 >"$tmp/d" 2>/dev/null
! cmp -s "$tmp/a" "$tmp/d" || fail "seeds 9 and 10 gave the same stream"

# Bad arguments are usage errors.
for args in "gen" "gen x 5" "gen 1 -5" "gen 1 5 6" "frob"; do
	set +e
	# shellcheck disable=SC2086
	"$prog" $args >/dev/null 2>&1
	rc=$?
	set -e
	[ "$rc" = 2 ] || fail "utcp-stream $args: exit $rc, want 2"
done
echo "PASS: utcp-stream hash agrees with sha256sum; gen is deterministic and reports its sha256"
