#!/usr/bin/env bash
# Runs every libFuzzer target of a build (fuzz/fuzz-*, built by `make fuzz`
# or `make check` when configure found clang) for a fixed number of
# executions each, one after the other, and prints a table of the figures
# for docs/RELIABILITY.md: executions, seconds, executions per second, edges
# covered, corpus size, peak RSS, and the result (any crash, leak, timeout
# or failed check is a failure, with its reproducer kept).
#
#   bash bench/fuzz.sh [-n RUNS] [-b BUILDDIR] [-o OUTDIR] [TARGET...]
#
# -n: executions per target (default 10000000, the gate's figure);
# -b: the build (default ./build); -o: where corpora and artifacts go
# (default /tmp/pop3ext-fuzz-bench; a corpus there is kept and grown by the
# next run); TARGET: some of policy state auth-config ... (default all).
# Starts from the seeds in fuzz/corpus/<target>/ (only read).
set -uo pipefail
cd "$(dirname "$0")/.."

runs=10000000
builddir=build
outdir=/tmp/pop3ext-fuzz-bench
while getopts "n:b:o:" opt; do
	case $opt in
	n) runs=$OPTARG ;;
	b) builddir=$OPTARG ;;
	o) outdir=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-b BUILDDIR] [-o OUTDIR] [TARGET...]" >&2
	   exit 2 ;;
	esac
done
shift $((OPTIND - 1))

if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for t in "$builddir"/fuzz/fuzz-*; do
		[ -x "$t" ] && targets+=("${t##*/fuzz-}")
	done
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "no fuzz targets in $builddir/fuzz (make -C $builddir fuzz; needs clang)" >&2
	exit 1
fi

mkdir -p "$outdir"
echo "| target | executions | seconds | exec/s | edges | corpus | peak RSS | result |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
failed=0
for t in "${targets[@]}"; do
	bin=$builddir/fuzz/fuzz-$t
	corpus=$outdir/$t/corpus
	mkdir -p "$corpus" "$outdir/$t/artifacts"
	log=$outdir/$t/log
	start=$(date +%s.%N)
	"$bin" -runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$outdir/$t/artifacts/" \
		"$corpus" fuzz/corpus/"$t" > "$log" 2>&1
	rc=$?
	end=$(date +%s.%N)
	secs=$(awk "BEGIN { print $end - $start }")
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
	edges=$(echo "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	rss=$(echo "$done_line" | sed -n 's/.*rss: \([0-9]*Mb\).*/\1/p')
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	nfiles=$(find "$corpus" -type f | wc -l)
	if [ "$rc" = 0 ] && grep -q "^Done $runs runs" "$log"; then
		result=ok
	else
		result="FAILED (exit $rc; $log, $outdir/$t/artifacts)"
		failed=$((failed + 1))
	fi
	rate=$(awk "BEGIN { printf \"%d\", ${execs:-0} / $secs }")
	printf "| %s | %s | %.0f | %s | %s | %s | %s | %s |\n" "$t" \
		"${execs:-?}" "$secs" "$rate" "${edges:-?}" "$nfiles" \
		"${rss:-?}" "$result"
done
exit $((failed > 0))
