#!/usr/bin/env bash
# Print the path of a runnable copy of the last commit plus the working tree's bench/.
#
# Others edit the working tree while benchmarks run; a half-edited file can stop the
# gateway from starting, or change what is measured halfway through. `git archive` (read
# only: no checkout, no worktree) copies HEAD into $BENCH_SNAPSHOT_DIR (default
# /tmp/pwbi-bench-src); bench/ comes from the working tree (it may be uncommitted). The
# commit is written to .bench_source, which the scripts record with their results.
#   dest="$(bench/snapshot.sh)" && cd "$dest" && /work/main/.venv/bin/python -m bench.latency e2e
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${BENCH_SNAPSHOT_DIR:-/tmp/pwbi-bench-src}"
commit="$(git -C "$repo" rev-parse HEAD)"
case "$dest" in /tmp/*) ;; *) echo "BENCH_SNAPSHOT_DIR must be under /tmp" >&2; exit 2 ;; esac
rm -rf "$dest"
mkdir -p "$dest"
git -C "$repo" archive "$commit" | tar -x -C "$dest"
rm -rf "$dest/bench"
mkdir -p "$dest/bench"
find "$repo/bench" -maxdepth 1 -type f -exec cp {} "$dest/bench/" \;
printf '{"commit": "%s", "source": "git archive of %s plus bench/ from the working tree"}\n' \
    "$commit" "${commit:0:7}" > "$dest/.bench_source"
echo "$dest"
