#!/bin/sh
# Build the oomd HEAD oracle (upstream main at 88c28fd) from a source tree you already have.
#
#   scripts/oomd-head/build.sh SRC_DIR OUT_DIR [--unpatched]
#
# SRC_DIR: an unpacked oomd source tree at 88c28fd, e.g. from
#   git clone https://github.com/facebookincubator/oomd && git -C oomd archive 88c28fd | tar -x -C SRC_DIR
# OUT_DIR: gets a copy of the source (OUT_DIR/src) and the build (OUT_DIR/build/oomd), outside
# the repository; the sources never enter it. Needs meson, ninja, a C++20 g++, pkg-config and
# Debian's libjsoncpp-dev and libsystemd-dev; gtest is not needed (oomd's tests are skipped
# without it). The copy gets drop-fix.patch (oomd 88c28fd crashes when it drops a per-cgroup
# ruleset) unless --unpatched. Prints the binary's path. See docs/reliability.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { sed -n '3,14p' "$0" >&2; exit 2; }
src=$1 out=$2 patch=yes
[ "${3:-}" = --unpatched ] && patch=no
[ -f "$src/meson.build" ] && [ -f "$src/src/oomd/engine/Ruleset.cpp" ] || {
    echo "$src does not look like an oomd source tree" >&2; exit 1; }
grep -q 'registerRunnableRulesetForCgroupPath' "$src/src/oomd/engine/Ruleset.cpp" || {
    echo "$src has no per-cgroup rulesets: not oomd 88c28fd" >&2; exit 1; }
mkdir -p "$out"
rm -rf "$out/src" "$out/build"
mkdir "$out/src"
(cd "$src" && tar -cf - --exclude=./build .) | (cd "$out/src" && tar -xf -)
if [ $patch = yes ]; then
    patch -d "$out/src" -p1 --no-backup-if-mismatch < "$here/drop-fix.patch"
fi
meson setup "$out/build" "$out/src" --buildtype=debugoptimized >"$out/meson.log"
nice ninja -C "$out/build" oomd >"$out/ninja.log"
echo "$out/build/oomd"
