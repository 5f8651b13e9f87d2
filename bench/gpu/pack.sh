#!/usr/bin/env bash
# On the Debian machine, in the project root: packs what bench/gpu/check.sh
# needs on a CUDA machine without apt into .gpu/ (ignored by git; carry it):
# ../shared/gpu/pack.sh's Debian build dependencies, Fashion-MNIST, configs
# and scripts, plus, in .gpu/extra/, the packages mia's build has needed
# since that list was written (PCRE2, libdeflate, pkg-config, and the headers
# and pkg-config files of libjwt and libpq, which configuring checks for; the
# GPU build builds no target that links them).
#
#   bash bench/gpu/pack.sh        then, with a device: bench/gpu/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=../shared/gpu
[ -f "$shared/pack.sh" ] || { echo "pack: $shared/pack.sh not found" >&2; exit 1; }
bash "$shared/pack.sh" .gpu
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
mkdir -p .gpu/extra
extra=(libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
       libdeflate-dev libdeflate0 libjwt-dev libpq-dev pkgconf pkgconf-bin libpkgconf3)
(cd .gpu/extra && apt-get download "${extra[@]}" >/dev/null 2>&1) ||
  { apt-get update -q >/dev/null && (cd .gpu/extra && apt-get download "${extra[@]}" >/dev/null); }
du -sh .gpu
