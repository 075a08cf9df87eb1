//! The fast path (`read_capture_pipelined`: a reading thread, and the table
//! counting batches with prefetching) against the single-threaded path
//! (`read_capture`: one packet at a time) on every capture of the shared
//! corpus and on a capture that mixes fragments, ICMP errors and flow
//! exports into ordinary traffic: the same flow records (all fields), in
//! the same order, and the same counters.

use std::path::{Path, PathBuf};

use zonewatch_collector::capture::CaptureReader;
use zonewatch_collector::pcap_writer::PcapWriter;
use zonewatch_collector::table::TableConfig;
use zonewatch_collector::testkit::assert_paths_agree;
use zonewatch_collector::time::Timestamp;

/// `<workspace root>/../shared/corpus`, or `None` (with a message) when absent.
fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if dir.join("README.md").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/corpus is absent (CI always has it)");
        None
    }
}

/// Table settings that make sweeps, evictions and active-timeout splits
/// happen on small captures too.
fn tight() -> TableConfig {
    TableConfig {
        max_flows: 16,
        tcp_idle_secs: 2,
        tcp_half_open_secs: 1,
        tcp_closed_grace_secs: 1,
        udp_idle_secs: 1,
        icmp_idle_secs: 1,
        other_idle_secs: 1,
        active_secs: 3,
        sweep_interval_secs: 1,
    }
}

/// Both paths on one capture, with the default and the tight settings;
/// returns the number of flows (default settings).
fn check(path: &Path) -> usize {
    let mut n = 0;
    for (name, config) in [("default", TableConfig::default()), ("tight", tight())] {
        let at = format!("{} ({name} settings)", path.display());
        let Some(single) = assert_paths_agree(path, &config, &at) else {
            return 0;
        };
        if name == "default" {
            n = single.flows.len();
        }
    }
    n
}

#[test]
fn every_corpus_capture_gives_the_same_flows_both_ways() {
    let Some(dir) = corpus() else { return };
    let mut files = 0;
    let mut flows = 0;
    for sub in ["pcap", "netflow", "malformed"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths.iter().filter(|p| p.is_file()) {
            flows += check(p);
            files += 1;
        }
    }
    assert!(
        files > 50 && flows > 500,
        "{files} files, {flows} flows compared"
    );
}

/// Ethernet frames of the corpus captures with fragments, ICMP errors and
/// flow exports, spliced into a capture of ordinary traffic with times moved
/// forward, so that they meet live flows, sweeps and timeouts.
#[test]
fn fragments_icmp_errors_and_exports_amid_traffic() {
    let Some(dir) = corpus() else { return };
    let special = [
        "pcap/zeek-ipv4-fragmented-1.pcap",
        "pcap/zeek-ipv4-fragmented-2.pcap",
        "pcap/zeek-ipv4-fragmented-4.pcap",
        "pcap/zeek-ipv4-fragmented-syn.pcap",
        "pcap/zeek-icmp-destunreach-udp.pcap",
        "pcap/zeek-icmp6-destunreach-ip6ext-udp.pcap",
        "pcap/zeek-communityid-icmp.pcap",
        "netflow/akvorado-nfv5.pcap",
        "netflow/akvorado-icmp-template+data.pcap",
        "netflow/akvorado-sflow-data-icmpv4.pcap",
    ];
    let mut extra = Vec::new();
    for f in special {
        let Ok(mut r) = CaptureReader::open(&dir.join(f)) else {
            continue;
        };
        while let Ok(Some(p)) = r.next_packet() {
            if p.linktype == 1 {
                extra.push((p.wire_len, p.data.to_vec()));
            }
        }
    }
    let mut base = Vec::new();
    for f in ["pcap/zeek-wikipedia.pcap", "pcap/zeek-http-bro.org.pcap"] {
        let Ok(mut r) = CaptureReader::open(&dir.join(f)) else {
            continue;
        };
        while let Ok(Some(p)) = r.next_packet() {
            if p.linktype == 1 {
                base.push((p.wire_len, p.data.to_vec()));
            }
        }
    }
    assert!(extra.len() > 20 && base.len() > 500, "corpus files missing");
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mixed.pcap");
    let file = std::fs::File::create(&path).expect("create");
    let mut w = PcapWriter::new(std::io::BufWriter::new(file), 1, 65535).expect("header");
    let mut ts = Timestamp::from_secs_nanos(1_700_000_000, 0);
    let mut extras = extra.iter().cycle();
    // Every packet twice over (the second round meets the first's flows
    // after their timeouts), a special one every seventh packet, and time
    // going 0.1 s forward per packet, with a jump back now and then.
    for (i, (len, data)) in base.iter().chain(base.iter()).enumerate() {
        w.write_packet(ts, *len, data).expect("write");
        if i % 7 == 3
            && let Some((len, data)) = extras.next()
        {
            w.write_packet(ts, *len, data).expect("write");
        }
        ts = if i % 97 == 0 {
            Timestamp(ts.0 - 2_000_000_000)
        } else {
            Timestamp(ts.0 + 100_000_000)
        };
    }
    w.finish().expect("finish");
    let flows = check(&path);
    assert!(flows > 100, "{flows} flows");
}

/// An Ethernet frame with an IPv4 UDP datagram of 12 zero bytes.
fn udp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let check = !u16::try_from(sum).unwrap();
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    let mut frame = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&[0, 20, 0, 0]);
    frame.extend_from_slice(&[0; 12]);
    frame
}

#[test]
fn bursts_of_ended_flows_larger_than_a_hand_over() {
    // Three rounds of 13,522 UDP flows, each followed by 200 s of silence,
    // so that a sweep ends more flows at once than the table hands on in
    // one piece; also with a table small enough to evict.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bursts.pcap");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = PcapWriter::new(std::io::BufWriter::new(file), 1, 65535).unwrap();
    let mut ts = Timestamp::from_secs_nanos(1_700_000_000, 0);
    let per_round: u16 = 3 * 4096 + 1234;
    for round in 0..3u8 {
        for i in 0..per_round {
            let [hi, lo] = i.to_be_bytes();
            let frame = udp_frame([10, round, hi, lo], 1000 + i % 50, [10, 9, 9, 9], 53);
            w.write_packet(ts, 54, &frame).unwrap();
            if i % 5000 == 0 {
                ts = Timestamp(ts.0 + 1_000_000);
            }
        }
        ts = Timestamp(ts.0 + 200_000_000_000);
        for j in 0..20u16 {
            let frame = udp_frame([192, 168, 0, round], 7000 + j, [10, 9, 9, 9], 53);
            w.write_packet(ts, 54, &frame).unwrap();
            ts = Timestamp(ts.0 + 1_000_000);
        }
    }
    w.finish().unwrap();
    let tight = TableConfig {
        max_flows: 5000,
        ..TableConfig::default()
    };
    for config in [TableConfig::default(), tight] {
        let single = assert_paths_agree(&path, &config, "bursts").expect("capture");
        assert!(
            single.flows.len() >= 3 * usize::from(per_round),
            "{} flows",
            single.flows.len()
        );
    }
}
