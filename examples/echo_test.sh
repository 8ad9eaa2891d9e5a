#!/bin/sh
# echo_test.sh PROGRAM - an echo example returns exactly what it was given: a short text
# from the arguments, an empty stdin, and 1 MiB of random bytes on stdin (many windows,
# both directions busy at once).
set -eu
prog=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$prog" hello utcp 2>"$tmp/err") || { echo "FAIL: $prog hello utcp: $(cat "$tmp/err")"; exit 1; }
if [ "$out" != "hello utcp" ]; then
  echo "FAIL: $prog hello utcp printed '$out'"; cat "$tmp/err"; exit 1
fi
grep -q "sent 11 bytes, got 11 back" "$tmp/err" || { echo "FAIL: summary: $(cat "$tmp/err")"; exit 1; }

: >"$tmp/empty"
"$prog" <"$tmp/empty" >"$tmp/empty.out" 2>"$tmp/err" || { echo "FAIL: empty input"; cat "$tmp/err"; exit 1; }
[ ! -s "$tmp/empty.out" ] || { echo "FAIL: echo of nothing was not empty"; exit 1; }

head -c 1048576 /dev/urandom >"$tmp/in"
"$prog" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" || { echo "FAIL: 1 MiB"; cat "$tmp/err"; exit 1; }
cmp "$tmp/in" "$tmp/out" || { echo "FAIL: the 1 MiB echo differs"; exit 1; }
echo "ok: $(basename "$prog") echoed 11 bytes, 0 bytes and 1048576 bytes"
