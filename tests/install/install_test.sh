#!/bin/sh
# install_test.sh - `meson install --destdir` puts every file where users look for it, and
# a program outside the tree builds against the installed library with pkg-config alone:
# shared and static, C and C++ (the raw-API SYN -> SYN,ACK check and the installed echo
# examples), and runs.
#
# Arguments: BUILD_DIR SOURCE_DIR PREFIX BINDIR SBINDIR LIBDIR INCLUDEDIR MANDIR DATADIR
#            HAVE_UTCPD HAVE_CLASSIFIER    (directories as meson's options give them)
# Environment: CC, CXX (the project's compilers).
set -eu
build=$1 src=$2 prefix=$3
abs() { case $1 in /*) echo "$1" ;; *) echo "$prefix/$1" ;; esac; }
bindir=$(abs "$4") sbindir=$(abs "$5") libdir=$(abs "$6") includedir=$(abs "$7")
mandir=$(abs "$8") datadir=$(abs "$9")
shift 9
have_utcpd=$1 have_classifier=$2
: "${CC:=cc}" "${CXX:=c++}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
D=$tmp/root
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "PASS: $*"; }

meson install -C "$build" --no-rebuild --quiet --destdir "$D" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; echo "FAIL: meson install"; exit 1; }

# ---- the files
docdir=$datadir/doc/utcp
expect="$bindir/utcpctl $bindir/utcp-xfer
$libdir/libutcp.a $libdir/libutcp.so $libdir/libutcp.so.0 $libdir/pkgconfig/utcp.pc
$includedir/utcp/utcp.h $includedir/utcp/utcp.hpp $includedir/utcp/raw.h $includedir/linux/utcp.h
$mandir/man8/utcpd.8 $mandir/man8/utcpctl.8 $mandir/man3/libutcp.3
$docdir/api.md $docdir/architecture.md $docdir/security.md $docdir/examples/echo_c.c $docdir/examples/echo_cpp.cc
$prefix/lib/systemd/system/utcpd.service $prefix/lib/udev/rules.d/60-utcp.rules
$prefix/lib/modules-load.d/utcp.conf $prefix/lib/sysusers.d/utcp.conf $prefix/src/utcp-*/dkms.conf $prefix/src/utcp-*/kmod/utcp_main.c"
[ "$have_utcpd" = true ] && expect="$expect $sbindir/utcpd"
[ "$have_classifier" = true ] && expect="$expect $prefix/lib/utcp/utcp_classifier.bpf.o"
missing=
for f in $expect; do
  # shellcheck disable=SC2086 # the dkms paths are globs
  set -- $D$f
  [ -e "$1" ] || missing="$missing $f"
done
[ -z "$missing" ] && pass "installed: $(echo $expect | wc -w) files in place" || fail "not installed:$missing"
[ -L "$D$libdir/libutcp.so" ] && [ -L "$D$libdir/libutcp.so.0" ] &&
  readelf -d "$D$libdir/libutcp.so.0" | grep -q 'SONAME.*\[libutcp\.so\.0\]' &&
  pass "libutcp.so -> libutcp.so.0 (soname) -> $(readlink "$D$libdir/libutcp.so.0")" ||
  fail "shared library links or soname wrong"

# Only the C API leaves the shared library.
others=$(nm -D --defined-only "$D$libdir/libutcp.so.0" | awk '$3 !~ /^utcp_/ && $3 != "UTCP_0" {print $3}')
[ -z "$others" ] && pass "libutcp.so exports only utcp_* ($(nm -D --defined-only "$D$libdir/libutcp.so.0" | grep -c ' utcp_') symbols)" ||
  fail "libutcp.so exports internals: $(echo "$others" | head -5 | tr '\n' ' ')"

# Installed text has its paths filled in.
for f in $mandir/man8/utcpd.8 $mandir/man8/utcpctl.8 $mandir/man3/libutcp.3 $prefix/lib/systemd/system/utcpd.service; do
  grep -n '@[A-Z]*@' "$D$f" && fail "$f keeps a @PLACEHOLDER@"
done
# The man pages are valid roff (groff warns about every malformed request).
if command -v groff >/dev/null; then
  for p in man8/utcpd.8 man8/utcpctl.8 man3/libutcp.3; do
    w=$(groff -man -Tutf8 -ww -z "$D$mandir/$p" 2>&1)
    [ -z "$w" ] && pass "$p formats without warnings" || fail "$p: $w"
  done
fi
# Each installed tool answers --help with exit status 0 and its usage.
for t in $bindir/utcpctl $bindir/utcp-xfer $([ "$have_utcpd" = true ] && echo "$sbindir/utcpd"); do
  out=$(LD_LIBRARY_PATH=$D$libdir "$D$t" --help) && echo "$out" | grep -q "^usage: $(basename "$t")" &&
    pass "$(basename "$t") --help ($(echo "$out" | wc -l) lines)" || fail "$(basename "$t") --help"
done

# ---- building against it with pkg-config only
export PKG_CONFIG_LIBDIR="$D$libdir/pkgconfig"  # the installed utcp.pc and nothing else
export PKG_CONFIG_PATH=
pc() { pkg-config --define-variable=prefix="$D$prefix" "$@" utcp; }
pc --exists || { fail "pkg-config does not find utcp"; exit 1; }
pass "pkg-config: utcp $(pc --modversion): $(pc --cflags --libs)"
cd "$tmp"

# The raw C API: a manual-clock stack answers a SYN with a SYN,ACK.
raw_test=$src/tests/tcp/api_c_test.c
if $CC -o raw_shared "$raw_test" $(pc --cflags --libs) 2>cc.log; then
  if ! readelf -d raw_shared | grep -q 'NEEDED.*libutcp\.so\.0'; then
    fail "shared build does not need libutcp.so.0"
  elif LD_LIBRARY_PATH=$D$libdir ldd raw_shared | grep -q "libutcp.so.0 => $D"; then
    out=$(LD_LIBRARY_PATH=$D$libdir ./raw_shared) && [ "$out" = ok ] &&
      pass "C, shared: SYN -> SYN,ACK through the installed libutcp.so" || fail "C, shared: run: $out"
  else
    fail "C, shared: ldd does not resolve libutcp.so.0 to the installed copy"
  fi
else
  cat cc.log; fail "C, shared: compile/link"
fi
if $CC -static -o raw_static "$raw_test" $(pc --static --cflags --libs) 2>cc.log; then
  if readelf -d raw_static 2>/dev/null | grep -q 'NEEDED.*libutcp'; then
    fail "static build still needs libutcp.so"
  else
    out=$(./raw_static) && [ "$out" = ok ] &&
      pass "C, static (-static, pkg-config --static): SYN -> SYN,ACK" || fail "C, static: run: $out"
  fi
else
  cat cc.log; fail "C, static: compile/link"
fi

# The installed examples, built from their installed sources.
head -c 200000 /dev/urandom >in.bin
if $CC -o echo_c "$D$docdir/examples/echo_c.c" $(pc --cflags --libs) 2>cc.log; then
  LD_LIBRARY_PATH=$D$libdir ./echo_c <in.bin >out.bin 2>run.log && cmp -s in.bin out.bin &&
    pass "C example echo_c: 200000 bytes echoed" || { cat run.log; fail "echo_c: echo differs"; }
else
  cat cc.log; fail "echo_c: compile/link"
fi
if $CXX -std=c++20 -o echo_cpp "$D$docdir/examples/echo_cpp.cc" $(pc --cflags --libs) 2>cc.log; then
  LD_LIBRARY_PATH=$D$libdir ./echo_cpp <in.bin >out.bin 2>run.log && cmp -s in.bin out.bin &&
    pass "C++ example echo_cpp (utcp.hpp): 200000 bytes echoed" || { cat run.log; fail "echo_cpp: echo differs"; }
else
  cat cc.log; fail "echo_cpp: compile/link"
fi
if $CXX -std=c++20 -static -o echo_cpp_static "$D$docdir/examples/echo_cpp.cc" $(pc --static --cflags --libs) 2>cc.log; then
  ./echo_cpp_static <in.bin >out.bin 2>run.log && cmp -s in.bin out.bin &&
    pass "C++ example, static: 200000 bytes echoed" || { cat run.log; fail "echo_cpp static: echo differs"; }
else
  cat cc.log; fail "echo_cpp static: compile/link"
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all install checks passed"
