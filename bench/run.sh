#!/usr/bin/env bash
# Benchmarks zonewatch against peer tools on one synthetic capture.
#
#   bench/run.sh                      # 100k flows, 2M packets
#   FLOWS=20000 PACKETS=400000 bench/run.sh
#
# Builds the release binaries, writes the capture and its zones file into
# bench/out/ (gitignored) unless they already exist, then runs every tool
# RUNS times on the same file, each run after warming the page cache. It
# reports the median wall time, the median CPU time (user + system: less
# moved by a busy host than the wall time), packets/s, max RSS and the ratios
# to `cat` and to `zonewatch analyze`, and for zonewatch the bytes per live
# flow: max RSS / peak live flows (from the `peak N live` part of zonewatch's
# stderr summary).
# The Markdown table goes to stdout and to bench/out/results.md. Progress goes
# to stderr. A missing tool is skipped with a note. A failing one is reported
# with the tail of its stderr, and the benchmark goes on.
#
# After them, zonewatch analyze, softflowd, nfpcapd and cat take turns for
# PAIRED_RUNS rounds (default 10; 0: none), and each round's ratios to
# zonewatch analyze are reported too (median and range): the machine's speed
# drifts between the minutes in which each tool's own runs are made.
#
# CACHE sets how the page cache holds the capture, which moves every tool's
# reading cost. On the test machine, reading the whole 1.2 GB file with
# 128 KiB preads took 0.09-0.10 s after it was read from disk, 0.10-0.15 s
# right after the generator wrote it, and 0.20-0.36 s as it was cached after
# 11 hours on the machine (cause unknown; touching a mapping of it cost
# 0.12-0.15 s of page faults, against 0.02 s after a read from disk):
#   CACHE=disk     (default) its cached pages are dropped and it is read back
#                  once, so it is cached as any capture read from disk is:
#                  by readahead, in large folios (2 MiB on Linux 6.18/ext4);
#   CACHE=written  it is generated anew for the run and left as the
#                  generator's writes cached it (a capture analysed right
#                  after it was written).
# The report says which, with the kernel's FileHugePages before and after.
#
# Environment: FLOWS, PACKETS, SEED, RUNS (default 3), PAIRED_RUNS, CACHE,
# CARGO_TARGET_DIR, SKIP (space-separated row names to skip, e.g. SKIP="tshark").

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

FLOWS=${FLOWS:-100000}
PACKETS=${PACKETS:-2000000}
SEED=${SEED:-1}
# Capture-time span of flow starts: 10 s keeps ~100k flows live at once (a
# busy link), which is what the memory-per-live-flow figure needs.
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
PAIRED_RUNS=${PAIRED_RUNS:-10}
CACHE=${CACHE:-disk}
SKIP=${SKIP:-}
OUT=bench/out
BIN=${CARGO_TARGET_DIR:-target}/release
PCAP=$OUT/bench-f$FLOWS-p$PACKETS-s$SEED-d$DURATION.pcap
ZONES=$OUT/bench-f$FLOWS-p$PACKETS-s$SEED-d$DURATION.zones.toml
GENLOG=$OUT/bench-f$FLOWS-p$PACKETS-s$SEED-d$DURATION.gencap.txt
RUNDIR=$OUT/runs
RESULTS=$OUT/results.tsv
TIME_BIN=/usr/bin/time

log() { printf '%s\n' "$*" >&2; }

mkdir -p "$OUT" "$RUNDIR"

# --- build -------------------------------------------------------------------
log "== building release binaries"
if ! cargo build --release -p zonewatch -p zonewatch-gencap 2>"$OUT/build.log"; then
    log "note: building zonewatch failed; its rows will fail. Last lines of the build log:"
    tail -n 15 "$OUT/build.log" >&2
    log "== building the generator alone"
    cargo build --release -p zonewatch-gencap || { log "error: cannot build zonewatch-gencap"; exit 2; }
fi

# --- capture -----------------------------------------------------------------
case $CACHE in
    disk) ;;
    written) rm -f "$PCAP" ;;
    *) log "error: CACHE is 'disk' or 'written', not '$CACHE'"; exit 2 ;;
esac
if [[ ! -s $PCAP || ! -s $ZONES ]]; then
    log "== generating $PCAP ($FLOWS flows, $PACKETS packets, seed $SEED)"
    if ! "$BIN/zonewatch-gencap" bench --out "$PCAP.tmp" --flows "$FLOWS" --packets "$PACKETS" \
        --seed "$SEED" --duration-secs "$DURATION" --zones-out "$ZONES" 2>"$GENLOG"; then
        cat "$GENLOG" >&2
        rm -f "$PCAP.tmp"
        exit 2
    fi
    mv "$PCAP.tmp" "$PCAP"
fi
[[ -s $GENLOG ]] && cat "$GENLOG" >&2
# Packets in the file: from the generator's summary, else capinfos, else the target.
NPKTS=$(grep -o '[0-9]* packets' "$GENLOG" 2>/dev/null | head -n1 | cut -d' ' -f1)
if [[ -z $NPKTS ]] && command -v capinfos >/dev/null; then
    NPKTS=$(capinfos -M -c "$PCAP" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}')
fi
NPKTS=${NPKTS:-$PACKETS}
SIZE=$(stat -c %s "$PCAP")

# Page-cache-resident file pages in PMD-sized (2 MiB) folios, in MiB.
huge_mib() { awk '/^FileHugePages:/ { printf "%d", $2 / 1024 }' /proc/meminfo; }
if [[ $CACHE == disk ]]; then
    log "== dropping the capture's cached pages and reading it back"
    # Written pages are only dropped once on disk.
    sync "$PCAP"
    dd if="$PCAP" iflag=nocache count=0 status=none
    cat "$PCAP" >/dev/null
fi
HUGE_BEFORE=$(huge_mib)

# --- measurement ---------------------------------------------------------------
HAVE_HYPERFINE=0
command -v hyperfine >/dev/null && HAVE_HYPERFINE=1
if [[ ! -x $TIME_BIN ]]; then
    log "error: $TIME_BIN (GNU time, package 'time') is needed for max RSS"
    exit 2
fi

: >"$RESULTS"
NOTES=()

# Every timed run starts from a freshly warmed page cache: some machines
# (proactive reclaim, e.g. DAMON pageout) evict a file's pages within seconds,
# and a run that reads part of the capture from disk says nothing of the tool.
WARM="cat $(printf '%q' "$PCAP") >/dev/null"

# measure ROW OK_CODES PREPARE CMD [ARGS...]
#   ROW: row name; OK_CODES: accepted exit codes ("0" or "0 1");
#   PREPARE: shell run before each timed run, after warming the cache (or ""); CMD: the command,
#   its stdout goes to /dev/null.
measure() {
    local row=$1 ok=$2 prepare="$WARM${3:+ && $3}"
    shift 3
    local slug=${row// /-}
    local dir=$RUNDIR/$slug
    local shown="$* > /dev/null"
    shown=${shown//$PCAP/F}
    shown=${shown//$ZONES/Z}
    shown=${shown//$BIN\//}
    for s in $SKIP; do
        if [[ $s == "$slug" || $s == "$1" ]]; then
            NOTES+=("$row: skipped (SKIP)")
            return
        fi
    done
    if ! command -v "$1" >/dev/null; then
        NOTES+=("$row: skipped, \`$1\` is not installed")
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    # Its accepted exit codes, for the paired rounds too.
    printf '%s\n' "$ok" >"$dir/ok"
    # One timed run: GNU time records max RSS, the exit code is kept aside
    # (zonewatch analyze exits 1 when it has findings), in the folder given
    # as argument (default: this row's).
    {
        echo '#!/usr/bin/env bash'
        printf 'out=${1:-%q}\n' "$dir"
        printf '%q -f %q -a -o "$out/rss" ' "$TIME_BIN" '%M %U %S'
        printf '%q ' "$@"
        printf '>/dev/null 2>"$out/stderr"\n'
        printf 'echo $? >>"$out/rc"\n'
    } >"$dir/cmd.sh"
    log "== $row: $shown"
    if ((HAVE_HYPERFINE)); then
        local hf=(hyperfine --runs "$RUNS" --style basic -N --export-json "$dir/hyperfine.json")
        if [[ -n $prepare ]]; then
            printf '%s\n' "$prepare" >"$dir/prepare.sh"
            hf+=(--prepare "bash $dir/prepare.sh")
        fi
        "${hf[@]}" "bash $dir/cmd.sh" >&2
        # The "times" array of the JSON export, one number per line.
        awk '/"times"/ { f = 1; next } f && /\]/ { exit } f { gsub(/[ ,]/, ""); print }' \
            "$dir/hyperfine.json" >"$dir/times"
    else
        : >"$dir/times"
        for ((i = 0; i < RUNS; i++)); do
            [[ -n $prepare ]] && bash -c "$prepare"
            local t0 t1
            t0=$(date +%s%N)
            bash "$dir/cmd.sh"
            t1=$(date +%s%N)
            awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }' >>"$dir/times"
        done
    fi
    local rc bad=""
    while read -r rc; do
        [[ " $ok " == *" $rc "* ]] || bad=$rc
    done <"$dir/rc"
    if [[ -n $bad ]]; then
        log "   $row failed (exit $bad); last lines of its stderr:"
        tail -n 12 "$dir/stderr" | sed 's/^/   | /' >&2
        NOTES+=("$row: failed with exit code $bad ($(tail -n 1 "$dir/stderr" | cut -c1-160))")
        printf '%s\t%s\tFAIL\t\t\n' "$row" "$shown" >>"$RESULTS"
        return
    fi
    local median rss peak cpu
    median=$(sort -g "$dir/times" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    # GNU time's lines: max RSS (KiB), user and system seconds.
    rss=$(awk 'NF == 3 && $1 ~ /^[0-9]+$/ { print $1 }' "$dir/rss" | sort -n | tail -n 1)
    cpu=$(awk 'NF == 3 && $1 ~ /^[0-9]+$/ { print $2 + $3 }' "$dir/rss" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    peak=$(grep -o 'peak [0-9]* live' "$dir/stderr" | tail -n 1 | grep -o '[0-9]\+')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$shown" "$median" "$rss" "$peak" "$cpu" >>"$RESULTS"
}

NFDIR=$OUT/nfpcapd
measure "zonewatch analyze" "0 1" "" "$BIN/zonewatch" analyze "$PCAP" --zones "$ZONES" --format json
measure "zonewatch flows" "0" "" "$BIN/zonewatch" flows "$PCAP"
# softflowd: -r reads the whole file then exits; NetFlow v9 goes to the discard
# port on loopback. Default flow table (-m 8192): in -r mode it applies no
# timeouts, so flows are expired oldest-first when the table is full.
measure "softflowd" "0" "" softflowd -r "$PCAP" -n 127.0.0.1:9 -v 9 -d
measure "nfpcapd" "0" "rm -rf $NFDIR && mkdir -p $NFDIR" nfpcapd -r "$PCAP" -l "$NFDIR"
measure "tshark" "0" "" tshark -n -q -r "$PCAP" -z conv,tcp
measure "tcpdump" "0" "" tcpdump -n -r "$PCAP" -w /dev/null
measure "cat" "0" "" cat "$PCAP"

# --- paired runs -------------------------------------------------------------------
# Ratios from the medians above compare tools timed minutes apart, and this
# machine's speed drifts by a fifth within minutes. Here the fast tools take
# turns, round after round (each run after warming the cache, the order
# rotating so that no tool always follows the same one), and each round
# gives its own ratio to zonewatch analyze: the median of those is not moved
# by the drift. Rows that failed or were skipped above are left out, and a
# run that fails here is reported and its round's time dropped.
PAIRED=$OUT/paired.tsv
: >"$PAIRED"
PAIRED_ROWS=()
for row in "zonewatch analyze" softflowd nfpcapd cat; do
    if grep -q "^$row	[^	]*	[0-9]" "$RESULTS"; then
        PAIRED_ROWS+=("$row")
    fi
done
if [[ ${PAIRED_ROWS[0]:-} == "zonewatch analyze" ]] && ((${#PAIRED_ROWS[@]} > 1 && PAIRED_RUNS > 0)); then
    log "== paired runs: ${PAIRED_ROWS[*]}, $PAIRED_RUNS rounds"
    n=${#PAIRED_ROWS[@]}
    for ((round = 1; round <= PAIRED_RUNS; round++)); do
        for ((k = 0; k < n; k++)); do
            row=${PAIRED_ROWS[(k + round) % n]}
            slug=${row// /-}
            # Its max RSS, stderr and exit code kept apart from the runs above.
            dir=$RUNDIR/$slug/paired
            mkdir -p "$dir"
            bash -c "$WARM"
            [[ $row == nfpcapd ]] && rm -rf "$NFDIR" && mkdir -p "$NFDIR"
            t0=$EPOCHREALTIME
            bash "$RUNDIR/$slug/cmd.sh" "$dir"
            t1=$EPOCHREALTIME
            rc=$(tail -n 1 "$dir/rc")
            if [[ " $(cat "$RUNDIR/$slug/ok") " != *" $rc "* ]]; then
                log "   paired round $round: $row failed (exit $rc); its time is left out"
                NOTES+=("paired round $round: $row failed with exit code $rc")
                continue
            fi
            awk -v r="$round" -v row="$row" -v a="$t0" -v b="$t1" \
                'BEGIN { printf "%s\t%s\t%.0f\n", r, row, (b - a) * 1e6 }' >>"$PAIRED"
        done
    done
fi

# --- report --------------------------------------------------------------------
{
    echo "## zonewatch benchmark"
    echo
    echo "Capture: \`$PCAP\`: $NPKTS packets, $FLOWS flows, $((SIZE / 1048576)) MiB, from \`zonewatch-gencap bench --flows $FLOWS --packets $PACKETS --seed $SEED --duration-secs $DURATION\`."
    echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr). $(date -u +%Y-%m-%dT%H:%M:%SZ)."
    case $CACHE in
        disk) echo "Page cache: the capture's pages were dropped and the file read back once, as read from disk (CACHE=disk). FileHugePages: $HUGE_BEFORE MiB before the runs, $(huge_mib) MiB after." ;;
        written) echo "Page cache: the capture as its generator just wrote it (CACHE=written). FileHugePages: $HUGE_BEFORE MiB before the runs, $(huge_mib) MiB after." ;;
    esac
    echo "Median of $RUNS runs, each from a freshly warmed page cache$( ((HAVE_HYPERFINE)) && echo ' (hyperfine)'). Max RSS and CPU time are from GNU time. F is the capture and Z its zones file."
    echo
    awk -F'\t' -v npk="$NPKTS" '
        { row[NR] = $1; cmd[NR] = $2; t[NR] = $3; rss[NR] = $4; peak[NR] = $5; cpu[NR] = $6
          if ($1 == "cat" && $3 != "FAIL") tcat = $3
          if ($1 == "zonewatch analyze" && $3 != "FAIL") tzw = $3 }
        END {
          print "| tool | command | median wall | CPU (user+sys) | packets/s | max RSS | × cat | × zonewatch analyze | bytes / live flow |"
          print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
          for (i = 1; i <= NR; i++) {
            if (t[i] == "FAIL") { printf "| %s | `%s` | failed | | | | | | |\n", row[i], cmd[i]; continue }
            pps = (t[i] > 0) ? sprintf("%.2f M", npk / t[i] / 1e6) : "-"
            xc = (tcat > 0) ? sprintf("%.1f", t[i] / tcat) : "-"
            xz = (tzw > 0) ? sprintf("%.2f", t[i] / tzw) : "-"
            bpl = (peak[i] > 0) ? sprintf("%.0f (peak %d live)", rss[i] * 1024 / peak[i], peak[i]) : ""
            printf "| %s | `%s` | %.3f s | %.2f s | %s | %.1f MiB | %s | %s | %s |\n", row[i], cmd[i], t[i], cpu[i], pps, rss[i] / 1024, xc, xz, bpl
          }
        }' "$RESULTS"
    if [[ -s $PAIRED ]]; then
        echo
        echo "Paired runs: $PAIRED_RUNS rounds in which the tools take turns, so that each round's ratios are measured under the same machine speed (wall time, median and range of the per-round ratios)."
        echo
        awk -F'\t' -v rows="zonewatch analyze|softflowd|nfpcapd|cat" '
            BEGIN { n = split(rows, order, "|") }
            { t[$1, $2] = $3; rounds[$1] = 1 }
            function median(a, k,   i, j, x) {
                for (i = 2; i <= k; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
                return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
            }
            END {
              print "| tool | median wall | × zonewatch analyze: median | min | max |"
              print "| --- | ---: | ---: | ---: | ---: |"
              for (i = 1; i <= n; i++) {
                tool = order[i]; k = 0; m = 0; lo = ""; hi = ""
                for (r in rounds) {
                  if (!((r, tool) in t)) continue
                  w[++k] = t[r, tool] / 1e6
                  if ((r, "zonewatch analyze") in t && t[r, "zonewatch analyze"] > 0) {
                    q = t[r, tool] / t[r, "zonewatch analyze"]; x[++m] = q
                    if (lo == "" || q < lo) lo = q; if (hi == "" || q > hi) hi = q
                  }
                }
                if (k == 0) continue
                printf "| %s | %.3f s | %s | %s | %s |\n", tool, median(w, k), (m ? sprintf("%.2f", median(x, m)) : "-"), (m ? sprintf("%.2f", lo) : "-"), (m ? sprintf("%.2f", hi) : "-")
                delete w; delete x
              }
            }' "$PAIRED"
    fi
    if ((${#NOTES[@]})); then
        echo
        for n in "${NOTES[@]}"; do echo "- $n"; done
    fi
} | tee "$OUT/results.md"
