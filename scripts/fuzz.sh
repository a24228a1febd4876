#!/usr/bin/env bash
# make fuzz: runs each cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 20), installing cargo-fuzz into
# .local/cargo-fuzz first if it is missing (nothing is installed outside the checkout).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     FUZZ_SANITIZER=address|none (default none)
#
# cargo fuzz passes nightly-only flags (-Z...) to rustc; RUSTC_BOOTSTRAP=1 lets the pinned stable toolchain take
# them, so no nightly toolchain is needed. Inputs found go to .local/fuzz-corpus/<target> (the small seed corpus
# kept in the repo is fuzz/seeds/<target>); a crash is saved under fuzz/artifacts/<target>/ and fails the run:
# reproduce it with `scripts/fuzz.sh 0 <target> <artifact>` or turn it into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true
targets=("$@")
artifact=""
if [ "${#targets[@]}" -eq 2 ] && [ -f "${targets[1]}" ]; then
    artifact="$(realpath "${targets[1]}")"
    targets=("${targets[0]}")
fi
[ "${#targets[@]}" -gt 0 ] || targets=(push_decode messages segment_sql export_reader)
CARGO_FUZZ_VERSION=0.13.2
root="$PWD/.local/cargo-fuzz"
if ! "$root/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into .local/cargo-fuzz" >&2
    CARGO_TARGET_DIR="$PWD/.local/cargo-fuzz/build" \
        cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$root"
fi
export PATH="$root/bin:$PATH"
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"
cd fuzz
echo "building the fuzz targets (release, instrumented; the first build takes several minutes)" >&2
cargo fuzz build --sanitizer "$sanitizer" >../.local/fuzz-build.log 2>&1 || { tail -n 30 ../.local/fuzz-build.log >&2; exit 1; }
if [ -n "$artifact" ]; then
    exec cargo fuzz run --sanitizer "$sanitizer" "${targets[0]}" "$artifact"
fi
for t in "${targets[@]}"; do
    corpus="../.local/fuzz-corpus/$t"
    mkdir -p "$corpus"
    log="../.local/fuzz-corpus/$t.log"
    echo "== $t: ${secs}s (log: .local/fuzz-corpus/$t.log)" >&2
    if ! cargo fuzz run --sanitizer "$sanitizer" "$t" "$corpus" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E "panicked|ERROR|SUMMARY|Test unit written|Failing input" "$log" | head -n 20 >&2
        echo "fuzz target $t failed: see fuzz/artifacts/$t/ and $log" >&2
        exit 1
    fi
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^stat::new_units_added" "$log" | sed "s/^/$t /"
done
