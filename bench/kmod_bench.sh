#!/usr/bin/env bash
# kmod_bench.sh - inside the utcp VM (or a host with utcp.ko loaded and the two-host link):
# raw frames user-to-user through utcp.ko vs AF_PACKET on the same link, as a ratio, and
# the classifier's ns/frame. From the host:
#   tools/utcp-vm --ko build/kmod/utcp.ko --net -- env UTCP_BUILD=$PWD/build bench/kmod_bench.sh
set -eu
build=${UTCP_BUILD:-$PWD/build}
bench=$build/bench/kmod_bench
[ -x "$bench" ] || { echo "kmod_bench not built (ninja -C $build)" >&2; exit 1; }
frames=${UTCP_BENCH_FRAMES:-200000}
for size in 64 1514; do
	echo "== raw frames, $size bytes, $frames frames"
	"$bench" raw --frames "$frames" --size "$size" --batch 32
done
echo "== classifier (BPF_PROG_TEST_RUN)"
UTCP_BUILD=$build "$bench" classifier 1000000
