#!/usr/bin/env bash
# Prints the Debian/Ubuntu packages that hold the shared libraries the given
# programs load (ldd, then dpkg -S), one per line, sorted: the runtime stage of
# an image installs exactly these (deploy/docker/Dockerfile.cuda). Libraries
# under an --exclude prefix (a LibTorch copied into the image whole, the CUDA
# base image's own libraries) are left out.
#
#   scripts/runtime-packages.sh [--exclude PREFIX]... PROGRAM...
#
# Fails (exit 1) naming the library when one is not found or belongs to no
# package: an image built from the list would not start.
set -euo pipefail
excludes=()
programs=()
while (($#)); do
  case "$1" in
    --exclude) excludes+=("$2"); shift 2 ;;
    -*) echo "runtime-packages: unknown option $1" >&2; exit 2 ;;
    *) programs+=("$1"); shift ;;
  esac
done
((${#programs[@]})) || { echo "usage: runtime-packages.sh [--exclude PREFIX]... PROGRAM..." >&2; exit 2; }

declare -A wanted=()  # resolved library path -> the program that needs it
for program in "${programs[@]}"; do
  [ -r "$program" ] || { echo "runtime-packages: no program $program" >&2; exit 1; }
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    if [ "$path" = "not" ]; then
      echo "runtime-packages: $program needs $name, which is not found" >&2
      exit 1
    fi
    for prefix in ${excludes[@]+"${excludes[@]}"}; do
      case "$path" in "$prefix"*) continue 2 ;; esac
    done
    wanted["$path"]=$program
  done < <(ldd "$program")
done
((${#wanted[@]})) || exit 0

# dpkg knows a library by the path its package installed, which on a
# merged-/usr system may be /lib/... or /usr/lib/..., through a symlink or
# not: ask for every spelling at once, then check that each library was found.
spellings=()
for path in "${!wanted[@]}"; do
  real=$(readlink -f "$path")
  spellings+=("$path" "$real" "${path#/usr}" "${real#/usr}" "/usr${path#/usr}" "/usr${real#/usr}")
done
declare -A owner_of=()
while IFS= read -r line; do
  pkgs=${line%%: /*}
  file=/${line#*: /}
  owner_of["$file"]=${pkgs%%,*}
done < <(dpkg-query -S "${spellings[@]}" 2>/dev/null || true)

declare -A packages=()
for path in "${!wanted[@]}"; do
  real=$(readlink -f "$path")
  found=""
  for s in "$path" "$real" "${path#/usr}" "${real#/usr}" "/usr${path#/usr}" "/usr${real#/usr}"; do
    if [ -n "${owner_of[$s]:-}" ]; then found=${owner_of[$s]}; break; fi
  done
  if [ -z "$found" ]; then
    echo "runtime-packages: ${wanted[$path]} needs $path, which no package holds" >&2
    exit 1
  fi
  packages["${found%%:*}"]=1
done
printf '%s\n' "${!packages[@]}" | sort
