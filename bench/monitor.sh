#!/usr/bin/env bash
# Monitor load benchmark: `zonewatch monitor` with one NetFlow listener and
# its SQLite store, fed synthetic NetFlow v5 over loopback at rising rates
# (each record: 1 packet, 100 bytes), side by side with nfcapd receiving the
# same datagrams; then one long run at a steady rate with memory sampled.
#
#   bench/monitor.sh
#   RATES="1000 5000" SECS=5 LONG_SECS=60 bench/monitor.sh
#
# Per rate: a fresh monitor and store; `zonewatch-gencap replay` sends RATE x
# SECS datagrams (30 records each); the monitor's /metrics give the records'
# packets it counted and its drops, SIGTERM commits everything, and the
# store's totals are read back with `sqlite3`-free means (`zonewatch zones
# suggest` is not involved: the aggregates are summed by the bench helper
# `python3 -c` over the SQLite file). nfcapd receives the same replay; its
# records are counted with nfdump -I. Peak RSS (VmHWM) of the monitor.
#
# The long run keeps RATE_LONG datagrams/s for LONG_SECS and samples the
# monitor's RSS every 10 s: memory must stay flat.
# Markdown to stdout and bench/out/monitor.md; progress to stderr.

set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

RATES=${RATES:-"1000 2000 5000 10000 20000"}
SECS=${SECS:-5}
RATE_LONG=${RATE_LONG:-2000}
LONG_SECS=${LONG_SECS:-300}
ZW_PORT=${ZW_PORT:-39601}
NF_PORT=${NF_PORT:-39602}
MET_PORT=${MET_PORT:-39603}
OUT=bench/out
BIN=${CARGO_TARGET_DIR:-target}/release
RUN=$OUT/monitor-runs

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }
for tool in nfcapd nfdump python3 curl; do
    command -v "$tool" >/dev/null || die "\`$tool\` is needed (packages nfdump, python3, curl)"
done

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

log "building release binaries"
cargo build --release -q -p zonewatch -p zonewatch-gencap || die "build failed"
mkdir -p "$RUN"
CAP=$OUT/v5-load.pcap
[ -f "$CAP" ] || "$BIN/zonewatch-gencap" v5 --out "$CAP" --datagrams 20000 --flows 50000 >&2

store_totals() {
    python3 - "$1" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(*c.execute("select coalesce(sum(packets),0), coalesce(sum(flows),0) from aggregates").fetchone())
PY
}

start_monitor() { # DIR
    local dir=$1
    rm -rf "$dir"; mkdir -p "$dir"
    printf 'zones = "%s"\nstore = "%s/zonewatch.db"\n[monitor]\nsilent_after = "1h"\n[[source]]\ntype = "netflow"\nname = "load"\nlisten = "127.0.0.1:%s"\n[metrics]\nlisten = "127.0.0.1:%s"\n' \
        "$PWD/examples/zones.toml" "$PWD/$dir" "$ZW_PORT" "$MET_PORT" > "$dir/zonewatch.toml"
    "$BIN/zonewatch" monitor --config "$dir/zonewatch.toml" >"$dir/stdout" 2>"$dir/stderr" &
    MON=$!
    PIDS+=("$MON")
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$MET_PORT/metrics" >/dev/null && return 0
        sleep 0.1
    done
    die "monitor did not start: $(cat "$dir/stderr")"
}

metric() { # NAME-PREFIX
    curl -sf "http://127.0.0.1:$MET_PORT/metrics" | awk -v p="$1" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}

rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }

{
echo "| datagrams/s | records/s | sent records | monitor counted | monitor dropped | store packets | monitor loss | nfcapd records | nfcapd loss | monitor peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$OUT/monitor.md"

for rate in $RATES; do
    dir=$RUN/r$rate
    start_monitor "$dir"
    count=$((rate * SECS))
    sent=$("$BIN/zonewatch-gencap" replay --pcap "$CAP" --to "127.0.0.1:$ZW_PORT" --rate "$rate" --count "$count" --loop | awk '{ print $4 }')
    sleep 1
    counted=$(metric 'zonewatch_packets_total{source="load"}')
    dropped=$(metric 'zonewatch_dropped_total')
    hwm=$(hwm_kib "$MON")
    kill -TERM "$MON"; wait "$MON" 2>/dev/null
    read -r stored _ < <(store_totals "$dir/zonewatch.db")
    # nfcapd on the same datagrams.
    rm -rf "$dir/nf"; mkdir -p "$dir/nf"
    nfcapd -b 127.0.0.1 -p "$NF_PORT" -w "$dir/nf" >/dev/null 2>&1 &
    NF=$!; PIDS+=("$NF"); sleep 0.5
    "$BIN/zonewatch-gencap" replay --pcap "$CAP" --to "127.0.0.1:$NF_PORT" --rate "$rate" --count "$count" --loop >/dev/null
    sleep 1; kill -TERM "$NF"; wait "$NF" 2>/dev/null
    nf=$(nfdump -R "$dir/nf" -I 2>/dev/null | awk '/^Flows:/ { print $2; exit }')
    nf=${nf:-0}
    loss=$(python3 -c "print(f'{100*(1-$stored/$sent):.2f} %')")
    nfloss=$(python3 -c "print(f'{100*(1-$nf/$sent):.2f} %')")
    echo "| $rate | $((rate * 30)) | $sent | $counted | $dropped | $stored | $loss | $nf | $nfloss | $((hwm / 1024)) MiB |" >> "$OUT/monitor.md"
    log "rate $rate: sent $sent, counted $counted, stored $stored, nfcapd $nf"
done

# The long run: memory over time at a steady rate.
dir=$RUN/long
start_monitor "$dir"
"$BIN/zonewatch-gencap" replay --pcap "$CAP" --to "127.0.0.1:$ZW_PORT" --rate "$RATE_LONG" --seconds "$LONG_SECS" --loop > "$dir/replay.txt" &
REP=$!
samples=()
for _ in $(seq $((LONG_SECS / 10))); do
    sleep 10
    samples+=("$(( $(rss_kib "$MON") / 1024 ))")
done
wait "$REP"
sent=$(awk '{ print $4 }' "$dir/replay.txt")
sleep 1
counted=$(metric 'zonewatch_packets_total{source="load"}')
kill -TERM "$MON"; wait "$MON" 2>/dev/null
read -r stored _ < <(store_totals "$dir/zonewatch.db")
{
echo
echo "Long run: $RATE_LONG datagrams/s ($((RATE_LONG * 30)) records/s) for $LONG_SECS s: sent $sent records, counted $counted, stored $stored."
echo "RSS every 10 s (MiB): ${samples[*]}"
} >> "$OUT/monitor.md"
cat "$OUT/monitor.md"
