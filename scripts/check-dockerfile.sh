#!/usr/bin/env bash
# Docker is not available on the CI machine, so check the Dockerfile's package
# lists statically:
#  1. every package in setup.sh's BUILD_PACKAGES is installed in the builder stage;
#  2. every FFmpeg -dev package's runtime library (the libNAME<soname> package
#     it depends on, e.g. libavcodec-dev -> libavcodec59) is installed in the
#     runtime stage, plus ca-certificates;
#  3. every package either stage installs exists in apt (apt-cache show);
#  4. the player libraries the origin serves are copied into the runtime stage.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SETUP="$ROOT/scripts/setup.sh"
DOCKERFILE="$ROOT/Dockerfile"
fail=0
bad() { printf 'check-dockerfile: %s\n' "$*" >&2; fail=1; }

# BUILD_PACKAGES=( ... ) from setup.sh, without running it.
mapfile -t build < <(sed -n '/^BUILD_PACKAGES=(/,/^)/p' "$SETUP" | sed '1d;$d' | tr -s ' \t' '\n' | grep -v '^$')
((${#build[@]})) || { bad "no BUILD_PACKAGES list found in scripts/setup.sh"; exit 1; }

# The packages named by `apt-get install` in the stage named $1 (`FROM … AS $1`).
stage_packages() {
  awk -v want="$1" '
    /^[[:space:]]*FROM[[:space:]]/ { name = tolower($NF); next }
    name == want { print }
  ' "$DOCKERFILE" |
    sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' |
    grep 'apt-get install' |
    sed 's/.*apt-get install//; s/&&.*//' |
    tr -s ' \t' '\n' | grep -v -e '^-' -e '^$' || true
}
mapfile -t builder < <(stage_packages builder)
mapfile -t runtime < <(stage_packages runtime)
((${#builder[@]})) || bad "no apt-get install found in the builder stage"
((${#runtime[@]})) || bad "no apt-get install found in the runtime stage"

has() { local x="$1"; shift; local y; for y in "$@"; do [[ "$x" == "$y" ]] && return 0; done; return 1; }

for p in "${build[@]}"; do
  has "$p" "${builder[@]}" || bad "builder stage does not install $p (scripts/setup.sh BUILD_PACKAGES)"
done

# One apt-cache call per question: each call re-reads the package lists
# (about a second apiece when apt keeps no binary cache).
devs=()
for p in "${build[@]}"; do [[ "$p" == lib*-dev ]] && devs+=("$p"); done
if ((${#devs[@]})); then
  # "pkg-dev" lines start a block; "  Depends: libfoo59" lines belong to it.
  declare -A runtime_lib=()
  while read -r dev lib; do runtime_lib[$dev]="$lib"; done < <(
    apt-cache depends "${devs[@]}" 2>/dev/null | awk '
      /^[^ \t<]/ { pkg = $1; base = pkg; sub(/-dev$/, "", base); next }
      $1 == "Depends:" && index($2, base) == 1 && substr($2, length(base) + 1) ~ /^[0-9]+$/ { print pkg, $2 }')
  for p in "${devs[@]}"; do
    lib="${runtime_lib[$p]:-}"
    [[ -n "$lib" ]] || continue   # not a versioned shared library (e.g. libclang-dev)
    has "$lib" "${runtime[@]}" || bad "runtime stage lacks $lib (the library $p builds against)"
  done
fi
has ca-certificates "${runtime[@]}" || bad "runtime stage lacks ca-certificates"

all=("${builder[@]}" "${runtime[@]}")
if ((${#all[@]})); then
  # With several names apt-cache show succeeds if any exists, so compare names.
  mapfile -t known < <(apt-cache show --no-all-versions "${all[@]}" 2>/dev/null | sed -n 's/^Package: //p')
  for p in "${all[@]}"; do
    has "$p" "${known[@]}" || bad "apt has no package $p (apt-cache show finds nothing)"
  done
fi

# 4. The player libraries: every file src/player.rs serves is copied into the
#    runtime stage under ESTUARY_PLAYER__ASSETS_DIR, and exists in player/'s
#    npm install (what the player stage runs `npm ci` for).
assets_dir="$(sed -n 's/^ENV ESTUARY_PLAYER__ASSETS_DIR=//p' "$DOCKERFILE")"
[[ -n "$assets_dir" ]] || bad "no ENV ESTUARY_PLAYER__ASSETS_DIR in the Dockerfile"
mapfile -t libs < <(sed -n '/^const LIBRARIES/,/^];/p' "$ROOT/src/player.rs" | grep -o '("[^"]*", "[^"]*")' | sed 's/.*, "\(.*\)")/\1/')
((${#libs[@]})) || bad "no LIBRARIES found in src/player.rs"
for rel in "${libs[@]}"; do
  grep -q "^COPY --from=player /player/node_modules/$rel $assets_dir/$rel\$" "$DOCKERFILE" ||
    bad "the runtime stage does not copy player/node_modules/$rel to $assets_dir/$rel"
  if [[ -d "$ROOT/player/node_modules" ]]; then
    [[ -f "$ROOT/player/node_modules/$rel" ]] || bad "player/node_modules/$rel missing after npm ci (package changed?)"
  fi
done
grep -q '^COPY player/package.json player/package-lock.json' "$DOCKERFILE" || bad "the player stage does not install from player/package-lock.json"

if ((fail)); then exit 1; fi
echo "check-dockerfile: ok (builder: ${#builder[@]} packages, runtime: ${#runtime[@]} packages)"
