#!/usr/bin/env bash
# Run every fuzz target (fuzz/, estuary::fuzzing) under libFuzzer for a time
# budget each, seeded from the fixtures, and print executions, corpus size and
# crashes per target.
#
#   bash scripts/fuzz.sh [seconds per target, default 60] [target ...]
#
# Needs cargo-fuzz: installed into target/cargo-fuzz on first use (crates.io).
# On the stable toolchain RUSTC_BOOTSTRAP=1 lets it use the sanitizer flags.
# Seeds: the smoke test writes them (ESTUARY_FUZZ_SEEDS=fuzz/corpus). Corpora
# grow in fuzz/corpus/{target}/, crash inputs land in fuzz/artifacts/{target}/
# (both ignored by git); a crash worth keeping becomes a regression file in
# fuzz/regressions/{target}/, which tests/e2e/fuzz_smoke.rs replays in every test
# run. A summary table goes to target/fuzz-report.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && PATH="$HOME/.cargo/bin:$PATH"
SECONDS_PER_TARGET="${1:-60}"
shift || true

FUZZ_ROOT="$ROOT/target/cargo-fuzz"
if [[ ! -x "$FUZZ_ROOT/bin/cargo-fuzz" ]]; then
  echo "[fuzz] installing cargo-fuzz into $FUZZ_ROOT"
  cargo install cargo-fuzz --locked --root "$FUZZ_ROOT" >/dev/null
fi
PATH="$FUZZ_ROOT/bin:$PATH"
export RUSTC_BOOTSTRAP=1

mapfile -t ALL < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^estuary-fuzz$')
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")

echo "[fuzz] writing seed corpora (tests/e2e/fuzz_smoke.rs)"
ESTUARY_FUZZ_SEEDS="$ROOT/fuzz/corpus" cargo test -q --test e2e fuzz_smoke:: >/dev/null

echo "[fuzz] building the targets (release, debug assertions, AddressSanitizer)"
(cd fuzz && cargo fuzz build --debug-assertions --features origin)

REPORT="$ROOT/target/fuzz-report.txt"
printf '%-16s %12s %10s %8s %8s\n' target executions exec/s corpus crashes | tee "$REPORT"
failed=0
for t in "${TARGETS[@]}"; do
  log="$ROOT/target/fuzz-$t.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  rc=0
  (cd fuzz && cargo fuzz run --debug-assertions --features origin "$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -rss_limit_mb=2048 \
    -timeout=10 -max_len=262144) >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(($(find "fuzz/artifacts/$t" -type f | wc -l) - before))
  ((rc == 0)) || ((crashes > 0)) || crashes="exit $rc"
  printf '%-16s %12s %10s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes" | tee -a "$REPORT"
  [[ "$crashes" == 0 ]] || { failed=1; echo "[fuzz] $t: see $log and fuzz/artifacts/$t/"; }
done
exit "$failed"
