#!/usr/bin/env bash
# build.sh SRC OUTDIR KDIR OUTPUT: build utcp.ko with the kernel's kbuild, out of the
# source tree (the sources are mirrored into OUTDIR so the checkout stays clean).
set -euo pipefail
src=$1 out=$2 kdir=$3 output=$4
if [ -z "$kdir" ]; then
	kdir=/lib/modules/$(uname -r)/build
	if [ ! -d "$kdir" ]; then
		# A host that cannot load modules builds for the newest installed Debian headers.
		kdir=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)
	fi
fi
[ -n "$kdir" ] && [ -f "$kdir/Makefile" ] || {
	echo "kmod: no kernel build tree (KDIR=$kdir); apt-get install linux-headers-amd64 or set -Dkdir=" >&2
	exit 1
}
mkdir -p "$out"
# Mirror only what kbuild needs; cp -u keeps timestamps so kbuild rebuilds incrementally.
mkdir -p "$out/kmod" "$out/include/uapi/linux"
cp -u "$src/Kbuild" "$out/Kbuild"
for f in "$src"/kmod/*.[ch] "$src"/kmod/*.bpf.h; do [ -e "$f" ] && cp -u "$f" "$out/kmod/"; done
cp -u "$src/include/uapi/linux/utcp.h" "$out/include/uapi/linux/utcp.h"
make -s -C "$kdir" M="$out" modules >&2
cp "$out/utcp.ko" "$output"
