#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds (the files are gitignored):
#   capture_reader  every capture in ../shared/corpus/{pcap,malformed,netflow}
#   packet_decoder  every frame of those captures, prefixed with the byte that
#                   selects its link type (index in packet::linktype::SUPPORTED)
#   zones_loader    every .toml under examples/
# Usage: fuzz/seed.sh [CORPUS_DIR]   (default: the workspace's ../shared/corpus)
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz_dir")
shared=${1:-$root/../shared/corpus}

for t in capture_reader packet_decoder zones_loader; do
    mkdir -p "$fuzz_dir/corpus/$t"
done

if [ -d "$shared" ]; then
    for sub in pcap malformed netflow; do
        [ -d "$shared/$sub" ] || continue
        for f in "$shared/$sub"/*; do
            [ -f "$f" ] && cp "$f" "$fuzz_dir/corpus/capture_reader/$sub-$(basename "$f")"
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

find "$root/examples" -name '*.toml' -exec cp {} "$fuzz_dir/corpus/zones_loader/" \; 2>/dev/null || true
for t in capture_reader packet_decoder zones_loader; do
    echo "$t: $(find "$fuzz_dir/corpus/$t" -type f ! -name .gitkeep | wc -l) seeds"
done
