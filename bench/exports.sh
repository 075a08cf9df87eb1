#!/usr/bin/env bash
# Flow-export benchmark: replays recorded NetFlow v9 and IPFIX exports over
# loopback at rising rates to `zonewatch flows --listen ... --unidirectional`
# and to nfcapd, one at a time, and reports the records each received and
# lost; also times zonewatch reading the same exports offline (`flows
# --unidirectional`, `flows`, and `analyze` with the capture's zones file).
#
#   bench/exports.sh
#   RATES="2000 10000 50000" SECS=3 bench/exports.sh
#
# Builds the release binaries. The exports are recorded once and kept in
# bench/out/ (gitignored): softflowd -r reads the benchmark capture of
# bench/run.sh (bench/out/bench-f100000-p2000000-s1-d10.pcap; when it is
# missing, a smaller one is generated) and exports v9 and IPFIX to
# 127.0.0.1:REC_PORT while tcpdump records them into bench/out/export-v9.pcap
# and bench/out/export-ipfix.pcap. A recording is kept only if tcpdump
# captured every datagram softflowd says it sent.
#
# For each rate and version, `zonewatch-gencap replay` sends RATE × SECS
# datagrams, looping over the recording from its first datagram (templates
# first), to one receiver, then to the other: the same datagrams, so the same
# records, whenever the sender keeps up (its reached rate is reported). Every
# count comes from a tool: records sent from the replay (templates of the
# file), received from zonewatch's exporter summary and from nfdump -I
# (Flows:) over nfcapd's files. The kernel's UDP receive-buffer drops
# (RcvbufErrors in /proc/net/snmp, machine-wide) are read around each run.
#
# The Markdown table goes to stdout and bench/out/exports.md; progress to stderr.
# Environment: RATES (datagrams/s), SECS (per run, default 5), RUNS (offline
# runs, default 3), REC_PORT, ZW_PORT, NF_PORT, CARGO_TARGET_DIR.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

RATES=${RATES:-"2000 5000 10000 20000 50000 100000"}
SECS=${SECS:-5}
RUNS=${RUNS:-3}
REC_PORT=${REC_PORT:-39500}
ZW_PORT=${ZW_PORT:-39501}
NF_PORT=${NF_PORT:-39502}
# After a replay the receivers get this long to empty their queues.
DRAIN=${DRAIN:-1}
OUT=bench/out
BIN=${CARGO_TARGET_DIR:-target}/release
RUNDIR=$OUT/exports-runs
RESULTS=$OUT/exports.tsv
TIME_BIN=/usr/bin/time

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

for tool in softflowd softflowctl tcpdump nfcapd nfdump ss "$TIME_BIN"; do
    command -v "$tool" >/dev/null || die "\`$tool\` is needed (packages softflowd, tcpdump, nfdump, iproute2, time)"
done

# Processes started here, stopped on exit if still running.
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT" "$RUNDIR"

# --- build -------------------------------------------------------------------
log "== building release binaries"
if ! cargo build --release -p zonewatch -p zonewatch-gencap 2>"$OUT/build-exports.log"; then
    tail -n 15 "$OUT/build-exports.log" >&2
    die "cannot build zonewatch and zonewatch-gencap"
fi

# --- recorded exports -----------------------------------------------------------
SRC=$OUT/bench-f100000-p2000000-s1-d10.pcap
if [[ ! -s $SRC ]]; then
    SRC=$OUT/bench-f20000-p400000-s1-d10.pcap
    if [[ ! -s $SRC ]]; then
        log "== generating $SRC (bench/run.sh's capture is missing)"
        "$BIN/zonewatch-gencap" bench --out "$SRC.tmp" --flows 20000 --packets 400000 \
            --seed 1 --duration-secs 10 --zones-out "${SRC%.pcap}.zones.toml" || die "cannot generate $SRC"
        mv "$SRC.tmp" "$SRC"
    fi
fi

# wait_for COMMAND...: up to 5 s until COMMAND succeeds.
wait_for() {
    local i
    for ((i = 0; i < 100; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}
listening() { [[ -n $(ss -Hlun "sport = :$1") ]]; }

# record VERSION FILE: softflowd -r SRC exporting VERSION, recorded by tcpdump.
record() {
    local version=$1 file=$2 tmp poke td sf deadline exported captured
    tmp=$(mktemp -d)
    # softflowd 1.1.0 in -r mode may block on its control socket before
    # reading on; a `statistics` request every 100 ms lets it go on (it then
    # exports in bursts; poked faster, tcpdump missed some datagrams).
    for poke in 0.1 0.1; do
        rm -f "$tmp"/*
        tcpdump -i lo -B 65536 -U -n -w "$file.tmp" "udp dst port $REC_PORT" 2>"$tmp/tcpdump.err" &
        td=$!
        PIDS+=("$td")
        wait_for grep -q 'listening on' "$tmp/tcpdump.err" || die "tcpdump did not start: $(cat "$tmp/tcpdump.err")"
        softflowd -r "$SRC" -n "127.0.0.1:$REC_PORT" -v "$version" -d -p "$tmp/pid" -c "$tmp/ctl" \
            </dev/null >"$tmp/softflowd.log" 2>&1 &
        sf=$!
        PIDS+=("$sf")
        deadline=$((SECONDS + 300))
        while kill -0 "$sf" 2>/dev/null && ((SECONDS < deadline)); do
            [[ -S $tmp/ctl ]] && softflowctl -c "$tmp/ctl" statistics >/dev/null 2>&1
            sleep "$poke"
        done
        kill -0 "$sf" 2>/dev/null && { kill -TERM "$sf"; die "softflowd did not finish in 300 s"; }
        wait "$sf" || die "softflowd failed: $(tail -n 3 "$tmp/softflowd.log")"
        sleep 0.5
        kill -TERM "$td"
        wait "$td"
        exported=$(grep -o 'in [0-9]* packets' "$tmp/softflowd.log" | grep -o '[0-9]\+')
        captured=$(grep -o '^[0-9]* packets captured' "$tmp/tcpdump.err" | grep -o '^[0-9]\+')
        log "   softflowd: $(grep 'Flows exported' "$tmp/softflowd.log"); tcpdump: $captured captured"
        if [[ -n $exported && $exported == "$captured" ]]; then
            mv "$file.tmp" "$file"
            {
                echo "source: $SRC"
                echo "command: softflowd -r $SRC -n 127.0.0.1:$REC_PORT -v $version -d"
                grep -E 'Flows exported|Packets processed' "$tmp/softflowd.log"
            } >"${file%.pcap}.txt"
            rm -rf "$tmp"
            return 0
        fi
        log "   tcpdump captured $captured of $exported datagrams; recording again"
    done
    die "could not record every datagram of softflowd -v $version"
}

declare -A EXPORT=([v9]=$OUT/export-v9.pcap [IPFIX]=$OUT/export-ipfix.pcap)
declare -A SF_VERSION=([v9]=9 [IPFIX]=10)
VERSIONS=(v9 IPFIX)
for v in "${VERSIONS[@]}"; do
    f=${EXPORT[$v]}
    if [[ -s $f && -s ${f%.pcap}.txt ]] && grep -qxF "source: $SRC" "${f%.pcap}.txt"; then
        log "== $v exports: $f (cached)"
    else
        log "== recording $v exports of $SRC into $f"
        record "${SF_VERSION[$v]}" "$f"
    fi
done

# --- offline decode --------------------------------------------------------------
declare -A FILE_DGRAMS FILE_RECORDS
OFFLINE=$OUT/exports-offline.tsv
: >"$OFFLINE"
# offline V ROW ARGS...: RUNS timed runs of `zonewatch ARGS > /dev/null`;
# appends "V ROW MEDIAN_US RECORDS RSS_KB" to $OFFLINE.
offline() {
    local v=$1 row=$2 dir i t0 t1 rc
    shift 2
    dir=$RUNDIR/offline-$v-${row// /-}
    rm -rf "$dir"
    mkdir -p "$dir"
    log "== offline: zonewatch $* > /dev/null ($RUNS runs)"
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s%N)
        "$TIME_BIN" -f %M -a -o "$dir/rss" "$BIN/zonewatch" "$@" >/dev/null 2>"$dir/stderr"
        rc=$?
        t1=$(date +%s%N)
        # analyze exits 1 when it has findings.
        ((rc <= 1)) || die "zonewatch $* failed (exit $rc): $(tail -n 2 "$dir/stderr")"
        echo $(((t1 - t0) / 1000)) >>"$dir/times_us"
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$v" "$row" \
        "$(sort -n "$dir/times_us" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')" \
        "$(grep -o '[0-9]* export records' "$dir/stderr" | grep -o '^[0-9]\+')" \
        "$(grep -o '^[0-9]\+$' "$dir/rss" | sort -n | tail -n 1)" >>"$OFFLINE"
}
ZONES=${SRC%.pcap}.zones.toml
for v in "${VERSIONS[@]}"; do
    f=${EXPORT[$v]}
    # Datagrams and flow records of the recording, as the replay counts them.
    "$BIN/zonewatch-gencap" replay --pcap "$f" --to "127.0.0.1:$ZW_PORT" --rate 1 --dry-run \
        >"$RUNDIR/count-$v" 2>"$RUNDIR/count-$v.err" || die "cannot read $f: $(tail -n 2 "$RUNDIR/count-$v.err")"
    read -r _ "FILE_DGRAMS[$v]" _ "FILE_RECORDS[$v]" _ <"$RUNDIR/count-$v"
    cat "$f" >/dev/null
    offline "$v" "flows --unidirectional" flows --unidirectional "$f"
    offline "$v" "flows" flows "$f"
    [[ -s $ZONES ]] && offline "$v" "analyze" analyze "$f" --zones "$ZONES" --format jsonl
done

# --- live --------------------------------------------------------------------------
rcvbuf_errors() {
    awk '/^Udp:/ { n++; if (n == 1) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i } else { print $c; exit } }' /proc/net/snmp
}

# replay FILE PORT RATE OUT: RATE × SECS datagrams, looping over FILE; OUT
# gets "DATAGRAMS RECORDS SECONDS" from the replay's summary line.
replay() {
    "$BIN/zonewatch-gencap" replay --pcap "$1" --to "127.0.0.1:$2" --rate "$3" \
        --count $(($3 * SECS)) --seconds $((SECS * 4)) --loop >"$4.out" 2>"$4.err" ||
        die "replay failed: $(tail -n 2 "$4.err")"
    # sent D datagrams, R records in T s (X datagrams/s)
    awk '/^sent / { print $2, $4, $7 }' "$4.out" >"$4"
}

# run_zonewatch FILE RATE DIR: DIR/zw.result gets
# "SENT_DGRAMS SENT_RECORDS SECS RECEIVED_DGRAMS BEHIND RECORDS KERNEL_DROPS RSS_KB".
run_zonewatch() {
    local file=$1 rate=$2 dir=$3 tpid k0 k1 received behind records
    "$TIME_BIN" -f %M -o "$dir/zw.rss" sh -c 'echo $$ >"$0"; exec "$@"' "$dir/zw.pid" \
        "$BIN/zonewatch" flows --listen "netflow=127.0.0.1:$ZW_PORT" --unidirectional >/dev/null 2>"$dir/zw.err" &
    tpid=$!
    PIDS+=("$tpid")
    wait_for listening "$ZW_PORT" || die "zonewatch does not listen on $ZW_PORT: $(tail -n 3 "$dir/zw.err")"
    PIDS+=("$(cat "$dir/zw.pid")")
    k0=$(rcvbuf_errors)
    replay "$file" "$ZW_PORT" "$rate" "$dir/zw.replay"
    sleep "$DRAIN"
    kill -TERM "$(cat "$dir/zw.pid")"
    wait "$tpid" || log "   zonewatch exited with $?: $(tail -n 2 "$dir/zw.err")"
    k1=$(rcvbuf_errors)
    received=$(sed -n 's/^zonewatch: received \([0-9]*\) datagrams, \([0-9]*\) dropped.*/\1/p' "$dir/zw.err")
    behind=$(sed -n 's/^zonewatch: received \([0-9]*\) datagrams, \([0-9]*\) dropped.*/\2/p' "$dir/zw.err")
    records=$(grep '^zonewatch: exporter ' "$dir/zw.err" | grep -o '[0-9]* records' | awk '{ s += $1 } END { print s + 0 }')
    echo "$(cat "$dir/zw.replay") ${received:-0} ${behind:-0} $records $((k1 - k0)) $(grep -o '^[0-9]\+$' "$dir/zw.rss" | tail -n 1)" >"$dir/zw.result"
}

# run_nfcapd FILE RATE DIR: DIR/nf.result gets "SENT_DGRAMS SENT_RECORDS SECS RECORDS KERNEL_DROPS".
run_nfcapd() {
    local file=$1 rate=$2 dir=$3 pid k0 k1 flows
    rm -rf "$dir/nf"
    mkdir -p "$dir/nf"
    nfcapd -b 127.0.0.1 -p "$NF_PORT" -w "$dir/nf" >"$dir/nfcapd.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_for listening "$NF_PORT" || die "nfcapd does not listen on $NF_PORT: $(tail -n 3 "$dir/nfcapd.log")"
    k0=$(rcvbuf_errors)
    replay "$file" "$NF_PORT" "$rate" "$dir/nf.replay"
    sleep "$DRAIN"
    kill -TERM "$pid"
    wait "$pid" || log "   nfcapd exited with $?: $(tail -n 2 "$dir/nfcapd.log")"
    k1=$(rcvbuf_errors)
    flows=$(nfdump -R "$dir/nf" -I 2>"$dir/nfdump.err" | awk '/^Flows:/ { print $2; exit }')
    # The files are large (about 100 bytes per flow); only the counts are kept.
    rm -rf "$dir/nf"
    echo "$(cat "$dir/nf.replay") ${flows:-0} $((k1 - k0))" >"$dir/nf.result"
}

: >"$RESULTS"
for v in "${VERSIONS[@]}"; do
    for rate in $RATES; do
        dir=$RUNDIR/$v-$rate
        rm -rf "$dir"
        mkdir -p "$dir"
        log "== $v at $rate datagrams/s for ${SECS} s: zonewatch"
        run_zonewatch "${EXPORT[$v]}" "$rate" "$dir"
        read -r zd zr zs zrecv zbehind zrec zkern zrss <"$dir/zw.result"
        log "   sent $zd datagrams ($zr records) in $zs s; zonewatch: $zrec records, $zbehind datagrams dropped behind, $zkern kernel drops"
        log "== $v at $rate datagrams/s for ${SECS} s: nfcapd"
        run_nfcapd "${EXPORT[$v]}" "$rate" "$dir"
        read -r nd nr ns nrec nkern <"$dir/nf.result"
        log "   sent $nd datagrams ($nr records) in $ns s; nfcapd: $nrec records, $nkern kernel drops"
        printf '%s\t' "$v" "$rate" "$zd" "$zr" "$zs" "$zrecv" "$zbehind" "$zrec" "$zkern" "$zrss" "$nd" "$nr" "$ns" "$nrec" >>"$RESULTS"
        printf '%s\n' "$nkern" >>"$RESULTS"
    done
done

# --- report ----------------------------------------------------------------------
{
    echo "## zonewatch flow-export benchmark"
    echo
    echo "Exports: softflowd 1.1.0 \`-r\` on \`$SRC\` (default flow table), recorded on lo by tcpdump:"
    echo
    for v in "${VERSIONS[@]}"; do
        echo "- \`${EXPORT[$v]}\`: ${FILE_DGRAMS[$v]} $v datagrams, ${FILE_RECORDS[$v]} flow records ($(awk -v r="${FILE_RECORDS[$v]}" -v d="${FILE_DGRAMS[$v]}" 'BEGIN { printf "%.1f", r / d }') per datagram); softflowd said: $(grep -o 'Flows exported.*' "${EXPORT[$v]%.pcap}.txt")."
    done
    echo
    echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end. $(date -u +%Y-%m-%dT%H:%M:%SZ)."
    echo "Sender, receiver and anything else running share the CPUs (a niced fuzzer may run in the background)."
    echo
    echo "### Offline decode"
    echo
    echo "Median of $RUNS runs from a warm page cache, stdout to /dev/null; records from zonewatch's summary (\`N export records\`). Z: \`$ZONES\`."
    echo
    echo "| export | command | median wall | records | records/s | max RSS |"
    echo "| --- | --- | ---: | ---: | ---: | ---: |"
    awk -F'\t' -v z="$ZONES" '{
        f = ($1 == "v9") ? "bench/out/export-v9.pcap" : "bench/out/export-ipfix.pcap"
        cmd = ($2 == "analyze") ? "zonewatch analyze " f " --zones Z --format jsonl" : "zonewatch " $2 " " f
        printf "| %s | `%s > /dev/null` | %.3f s | %d | %.0f k | %.1f MiB |\n", $1, cmd, $3 / 1e6, $4, $4 / ($3 / 1e6) / 1e3, $5 / 1024 }' "$OFFLINE"
    echo
    echo "### Live, over loopback: ${SECS} s of replay per run, one receiver at a time"
    echo
    echo "Offered: the rate asked of the replay, and the records/s it makes. Sent: datagrams and flow records the replay sent (and the rate it reached). Received: records zonewatch decoded (its exporter summary) or nfdump counts in nfcapd's files. Loss = 1 − received / sent. \"Behind\": datagrams zonewatch received but dropped because its decoder fell behind; \"kernel\": datagrams the kernel dropped for a full socket receive buffer (RcvbufErrors, machine-wide, during the run)."
    echo
    awk -F'\t' '
        function loss(recv, sent) { return sent > 0 ? sprintf("%.2f %%", 100 * (sent - recv) / sent) : "-" }
        function sentcol(d, r, s) { return sprintf("%d / %d (%.0f/s)", d, r, d / s) }
        BEGIN {
          print "| export | offered datagrams/s | offered records/s | sent to zonewatch: datagrams / records (rate) | zonewatch records | zonewatch loss | behind / kernel | zonewatch max RSS | sent to nfcapd: datagrams / records (rate) | nfcapd records | nfcapd loss | kernel |"
          print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        }
        {
          v = $1; rate = $2; zd = $3; zr = $4; zs = $5; zrecv = $6; zb = $7; zrec = $8; zk = $9; zrss = $10
          nd = $11; nr = $12; ns = $13; nrec = $14; nk = $15
          printf "| %s | %d | %.0f k | %s | %d | %s | %d / %d | %.1f MiB | %s | %d | %s | %d |\n",
            v, rate, rate * (zd > 0 ? zr / zd : 0) / 1e3, sentcol(zd, zr, zs), zrec, loss(zrec, zr), zb, zk, zrss / 1024,
            sentcol(nd, nr, ns), nrec, loss(nrec, nr), nk
        }' "$RESULTS"
} | tee "$OUT/exports.md"
