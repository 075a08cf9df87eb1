//! The fast path (`read_capture_pipelined`) against the single-threaded
//! path (`read_capture`) on a generated benchmark capture (20k flows, 300k
//! packets) with NetFlow v5 exports, and (when the shared corpus is there)
//! IP fragments and ICMP errors, spliced in: the same flow records (all
//! fields) in the same order, and the same counters.

use std::path::{Path, PathBuf};
use std::process::Command;

use zonewatch_collector::capture::CaptureReader;
use zonewatch_collector::pcap_writer::PcapWriter;
use zonewatch_collector::table::TableConfig;
use zonewatch_collector::testkit::assert_paths_agree;
use zonewatch_collector::time::Timestamp;

fn gencap(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_zonewatch-gencap"))
        .args(args)
        .output()
        .expect("gencap runs");
    assert!(
        out.status.success(),
        "gencap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Ethernet frames of a capture.
fn frames(path: &Path) -> Vec<(u32, Vec<u8>)> {
    let mut v = Vec::new();
    if let Ok(mut r) = CaptureReader::open(path) {
        while let Ok(Some(p)) = r.next_packet() {
            if p.linktype == 1 {
                v.push((p.wire_len, p.data.to_vec()));
            }
        }
    }
    v
}

#[test]
fn generated_capture_with_exports_fragments_and_icmp_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bench = tmp.path().join("bench.pcap");
    let v5 = tmp.path().join("v5.pcap");
    let zones = tmp.path().join("zones.toml");
    gencap(&[
        "bench",
        "--out",
        bench.to_str().expect("utf-8"),
        "--flows",
        "20000",
        "--packets",
        "300000",
        "--seed",
        "7",
        "--duration-secs",
        "10",
        "--zones-out",
        zones.to_str().expect("utf-8"),
    ]);
    gencap(&[
        "v5",
        "--out",
        v5.to_str().expect("utf-8"),
        "--datagrams",
        "300",
        "--flows",
        "2000",
    ]);
    let mut special = frames(&v5);
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    if corpus.join("README.md").exists() {
        for f in [
            "pcap/zeek-ipv4-fragmented-1.pcap",
            "pcap/zeek-ipv4-fragmented-2.pcap",
            "pcap/zeek-ipv4-fragmented-4.pcap",
            "pcap/zeek-ipv4-fragmented-syn.pcap",
            "pcap/zeek-icmp-destunreach-udp.pcap",
            "pcap/zeek-icmp6-destunreach-ip6ext-udp.pcap",
            "pcap/zeek-communityid-icmp.pcap",
        ] {
            special.extend(frames(&corpus.join(f)));
        }
    } else {
        eprintln!("note: ../shared/corpus is absent: no fragments or ICMP errors spliced in");
    }
    assert!(special.len() >= 300, "{} special frames", special.len());
    // The bench capture with a special frame after every 500th packet, at its time.
    let mixed = tmp.path().join("mixed.pcap");
    let file = std::fs::File::create(&mixed).expect("create");
    let mut w = PcapWriter::new(std::io::BufWriter::new(file), 1, 65535).expect("header");
    let mut r = CaptureReader::open(&bench).expect("bench capture");
    let mut specials = special.iter().cycle();
    let mut n = 0u64;
    let mut last = Timestamp(0);
    while let Some(p) = r.next_packet().expect("read") {
        w.write_packet(p.ts, p.wire_len, p.data).expect("write");
        n += 1;
        last = p.ts;
        if n.is_multiple_of(500)
            && let Some((len, data)) = specials.next()
        {
            w.write_packet(last, *len, data).expect("write");
        }
    }
    w.finish().expect("finish");
    assert!(n >= 300_000 && last.0 > 0);

    let tight = TableConfig {
        max_flows: 5000,
        tcp_idle_secs: 4,
        tcp_half_open_secs: 2,
        udp_idle_secs: 3,
        active_secs: 6,
        sweep_interval_secs: 1,
        ..TableConfig::default()
    };
    for (name, config) in [("default", TableConfig::default()), ("tight", tight)] {
        let single = assert_paths_agree(&mixed, &config, name).expect("a capture");
        assert!(
            single.stats.export_datagrams >= 300,
            "{name}: {:?}",
            single.stats
        );
        assert!(single.table.flows >= 20_000, "{name}: {:?}", single.table);
        if name == "tight" {
            assert!(
                single.table.evicted > 0 && single.table.active_splits > 0,
                "{:?}",
                single.table
            );
        }
    }
}
