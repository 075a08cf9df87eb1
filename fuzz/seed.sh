#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds (the files are gitignored):
#   capture_reader  every capture in ../shared/corpus/{pcap,malformed,netflow}
#   chunk_feed      those under 256 KiB, after a byte that picks the chunk size
#   packet_decoder  every frame of those captures, prefixed with the byte that
#                   selects its link type (index in packet::linktype::SUPPORTED)
#   zones_loader    every .toml under examples/
#   monitor_config  examples/zonewatch.toml and the config sketch of the README
#   sflow           the UDP payloads of every sFlow capture in netflow/ and malformed/
#   netflow_v5      the UDP payloads of every NetFlow/IPFIX capture (one datagram each)
#   netflow_template  each NetFlow/IPFIX capture's payloads framed in sequence
# Usage: fuzz/seed.sh [CORPUS_DIR]   (default: the workspace's ../shared/corpus)
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz_dir")
shared=${1:-$root/../shared/corpus}

for t in capture_reader chunk_feed packet_decoder zones_loader monitor_config; do
    mkdir -p "$fuzz_dir/corpus/$t"
done

if [ -d "$shared" ]; then
    for sub in pcap malformed netflow; do
        [ -d "$shared/$sub" ] || continue
        for f in "$shared/$sub"/*; do
            [ -f "$f" ] && cp "$f" "$fuzz_dir/corpus/capture_reader/$sub-$(basename "$f")"
            if [ -f "$f" ] && [ "$(stat -c %s "$f")" -lt 262144 ]; then
                { printf '\x15'; cat "$f"; } >"$fuzz_dir/corpus/chunk_feed/$sub-$(basename "$f")"
            fi
        done
    done
    if command -v python3 >/dev/null; then
        python3 - "$shared" "$fuzz_dir/corpus/packet_decoder" <<'PY'
import os, struct, sys

# Same order as zonewatch_collector::packet::linktype::SUPPORTED.
SUPPORTED = [0, 1, 12, 14, 101, 109, 113, 228, 229, 239, 276]
shared, out = sys.argv[1], sys.argv[2]

def pcap_frames(b):
    magic = b[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x34\xcd\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d", b"\xa1\xb2\xcd\x34"):
        e = ">"
    else:
        return
    extra = 8 if magic in (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34") else 0
    lt = struct.unpack(e + "I", b[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 + extra <= len(b):
        caplen = struct.unpack(e + "I", b[off + 8:off + 12])[0]
        start = off + 16 + extra
        if start + caplen > len(b):
            return
        yield lt, b[start:start + caplen]
        off = start + caplen

def pcapng_frames(b):
    off, e, links = 0, "<", []
    while off + 12 <= len(b):
        btype = struct.unpack(e + "I", b[off:off + 4])[0]
        if btype == 0x0A0D0D0A:
            e = "<" if b[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack(e + "I", b[off + 4:off + 8])[0]
        if blen < 12 or off + blen > len(b):
            return
        body = b[off + 8:off + blen - 4]
        if btype == 1 and len(body) >= 2:
            links.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6 and len(body) >= 20:
            iface, _, _, caplen = struct.unpack(e + "IIII", body[:16])
            if iface < len(links):
                yield links[iface], body[20:20 + caplen]
        off += blen

n = 0
for sub in ("pcap", "netflow"):
    d = os.path.join(shared, sub)
    if not os.path.isdir(d):
        continue
    for name in sorted(os.listdir(d)):
        b = open(os.path.join(d, name), "rb").read()
        frames = pcapng_frames(b) if b[:4] == b"\x0a\x0d\x0d\x0a" else pcap_frames(b)
        for i, (lt, frame) in enumerate(frames):
            if lt in SUPPORTED and i < 64:
                with open(os.path.join(out, f"{name}-{i}"), "wb") as f:
                    f.write(bytes([SUPPORTED.index(lt)]) + frame)
                n += 1
print(f"packet_decoder: {n} frames")
PY
    else
        echo "python3 not found: packet_decoder seeds skipped" >&2
    fi
else
    echo "no capture corpus at $shared: capture seeds skipped" >&2
fi

# sflow: the UDP payloads of every sFlow capture (Ethernet/IPv4|IPv6/UDP, pcap).
mkdir -p "$fuzz_dir/corpus/sflow"
if [ -d "$shared" ] && command -v python3 >/dev/null; then
    python3 - "$fuzz_dir/corpus/sflow" "$shared"/netflow/*sflow*.pcap "$shared"/malformed/*sflow*.pcap <<'PY'
import os, struct, sys
out, n = sys.argv[1], 0
for path in sys.argv[2:]:
    b = open(path, "rb").read()
    e = "<" if b[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, i = 24, 0
    while off + 16 <= len(b):
        caplen = struct.unpack(e + "I", b[off + 8:off + 12])[0]
        f, off, i = b[off + 16:off + 16 + caplen], off + 16 + caplen, i + 1
        et, p = f[12:14], f[14:]
        while et == b"\x81\x00" and len(p) >= 4:
            et, p = p[2:4], p[4:]
        if et == b"\x08\x00" and len(p) >= 20 and p[9] == 17:
            p = p[(p[0] & 15) * 4:]
        elif et == b"\x86\xdd" and len(p) >= 40 and p[6] == 17:
            p = p[40:]
        else:
            continue
        with open(os.path.join(out, f"{os.path.basename(path)}-{i}"), "wb") as o:
            o.write(p[8:])
        n += 1
print(f"sflow: {n} datagrams")
PY
fi

# netflow_v5: every UDP payload of the NetFlow/IPFIX captures in netflow/ and malformed/.
# netflow_template: per capture (and per split template/data pair), all its
# payloads framed as [exporter byte 0][u16 BE length][payload], in order.
mkdir -p "$fuzz_dir/corpus/netflow_v5" "$fuzz_dir/corpus/netflow_template"
if [ -d "$shared" ] && command -v python3 >/dev/null; then
    python3 - "$fuzz_dir/corpus" "$shared" <<'PY'
import glob, os, struct, sys
out, shared = sys.argv[1], sys.argv[2]

def payloads(path):
    b = open(path, "rb").read()
    e = "<" if b[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off = 24
    while off + 16 <= len(b):
        caplen = struct.unpack(e + "I", b[off + 8:off + 12])[0]
        f, off = b[off + 16:off + 16 + caplen], off + 16 + caplen
        et, p = f[12:14], f[14:]
        while et == b"\x81\x00" and len(p) >= 4:
            et, p = p[2:4], p[4:]
        if et == b"\x08\x00" and len(p) >= 20 and p[9] == 17:
            p = p[(p[0] & 15) * 4:]
        elif et == b"\x86\xdd" and len(p) >= 40 and p[6] == 17:
            p = p[40:]
        else:
            continue
        yield p[8:]

def framed(ps):
    return b"".join(b"\x00" + struct.pack(">H", len(p)) + p for p in ps)

files = [f for f in sorted(glob.glob(os.path.join(shared, "netflow", "*.pcap"))) if "sflow" not in f]
files += [f for f in sorted(glob.glob(os.path.join(shared, "malformed", "fuzz-*.pcap"))) if "sflow" not in f]
n1 = n2 = 0
for path in files:
    name = os.path.basename(path)
    ps = list(payloads(path))
    for i, p in enumerate(ps):
        open(os.path.join(out, "netflow_v5", f"{name}-{i}"), "wb").write(p)
        n1 += 1
    open(os.path.join(out, "netflow_template", name), "wb").write(framed(ps))
    n2 += 1
    data = path.replace("-template.pcap", "-data.pcap").replace("-templates.pcap", "-data.pcap")
    if data != path and os.path.exists(data):
        open(os.path.join(out, "netflow_template", name + "+data"), "wb").write(framed(ps + list(payloads(data))))
        n2 += 1
print(f"netflow_v5: {n1} datagrams, netflow_template: {n2} sequences")
PY
fi

find "$root/examples" -name '*.toml' ! -name zonewatch.toml -exec cp {} "$fuzz_dir/corpus/zones_loader/" \; 2>/dev/null || true
cp "$root/examples/zonewatch.toml" "$fuzz_dir/corpus/monitor_config/example.toml"
# The README's config sketch (the block after its "### `zonewatch.toml`" heading).
awk '/^### `zonewatch.toml`/ { on = 1 } on && /^```toml/ { grab = 1; next } grab && /^```/ { exit } grab { print }' \
    "$root/README.md" > "$fuzz_dir/corpus/monitor_config/readme.toml"
for t in capture_reader packet_decoder zones_loader monitor_config sflow netflow_v5 netflow_template; do
    echo "$t: $(find "$fuzz_dir/corpus/$t" -type f ! -name .gitkeep | wc -l) seeds"
done
