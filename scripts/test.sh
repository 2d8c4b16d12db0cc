#!/usr/bin/env bash
# Set the machine up (scripts/setup.sh), then run the whole test suite:
#   - static checks of the scripts and the Dockerfile
#   - cargo nextest run --workspace (or cargo test), then the doc tests
#   - a headless-Chromium self-check of the browser harness (tests/browser)
# Every step runs even if an earlier one failed; the exit status is non-zero
# if any failed. ESTUARY_SKIP_BROWSER=1 skips the browser self-check.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never
# A CI run builds everything once from a fresh clone: incremental compilation only adds work there.
if [[ "${CI:-}" == true ]]; then export CARGO_INCREMENTAL=0; fi

bash "$ROOT/scripts/setup.sh"

# Tool paths for the tests (ESTUARY_FFMPEG7, ...), for this run only.
set -a
# shellcheck source=/dev/null
. "$ROOT/target/tools.env"
set +a

failed=()
step() { # name command...
  local name="$1" start rc
  shift
  printf '\n=== %s\n' "$name"
  start=$SECONDS
  if "$@"; then rc=0; else rc=$?; fi
  printf '=== %s: %s (%ss)\n' "$name" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED, status $rc")" "$((SECONDS - start))"
  ((rc == 0)) || failed+=("$name")
}

syntax_checks() {
  local f ok=0
  for f in scripts/*.sh .ci/run; do bash -n "$f" || ok=1; done
  for f in tests/browser/*.mjs; do node --check "$f" || ok=1; done
  for f in scripts/*.py; do
    python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f" || ok=1
  done
  return $ok
}

step "script syntax" syntax_checks
step "Dockerfile vs setup.sh packages" bash scripts/check-dockerfile.sh

if command -v cargo-nextest >/dev/null 2>&1; then
  step "cargo nextest" cargo nextest run --workspace --no-fail-fast --no-tests=warn
else
  echo "cargo-nextest not found: using cargo test"
  step "cargo test" cargo test --workspace --no-fail-fast --all-targets
fi
step "doc tests" cargo test --workspace --doc --no-fail-fast

if [[ "${ESTUARY_SKIP_BROWSER:-0}" != 1 ]]; then
  step "browser harness self-check" bash scripts/browser-selfcheck.sh
fi

echo
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all test steps passed"
