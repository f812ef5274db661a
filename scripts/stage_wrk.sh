#!/usr/bin/env bash
# Stages Debian's wrk for a machine without a package registry (the GPU host): downloads the .deb of wrk and of
# its runtime libraries that a bare Debian lacks (LuaJIT; OpenSSL 3, in case), unpacks them with dpkg -x into
# .gpu/wrk/, and checks that the binary finds every library there. bench/wrk.ts runs .gpu/wrk/usr/bin/wrk with
# LD_LIBRARY_PATH=.gpu/wrk/usr/lib/x86_64-linux-gnu when no wrk is on PATH. Carry .gpu/wrk to the machine.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
dest=.gpu/wrk
packages=(wrk libluajit-5.1-2 libssl3)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get download "${packages[@]}" >/dev/null 2>&1); then
  apt-get update -qq
  (cd "$work" && apt-get download "${packages[@]}" >/dev/null)
fi
rm -rf "$dest"
mkdir -p "$dest"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest"; done
rm -rf "$dest/usr/share" # documentation only
lib="$dest/usr/lib/x86_64-linux-gnu"
if LD_LIBRARY_PATH="$lib" ldd "$dest/usr/bin/wrk" | grep -q "not found"; then
  echo "wrk still misses libraries:" >&2
  LD_LIBRARY_PATH="$lib" ldd "$dest/usr/bin/wrk" | grep "not found" >&2
  exit 1
fi
version=$(LD_LIBRARY_PATH="$lib" "$dest/usr/bin/wrk" -v 2>&1 | head -1 | sed 's/ Copyright.*//' || true)
echo "staged $version in $dest ($(du -sh "$dest" | cut -f1))"
