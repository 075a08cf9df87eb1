//! Our flows against tshark's per-packet tables for every corpus capture.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::{corpus, jsonl, s, zonewatch};

/// One packet of a `*.packets.tsv` (outermost headers only).
#[derive(Debug)]
struct Pkt {
    ns: i128,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ip_len: u64,
    ip_id: String,
    frag_later: bool,
    frag_first: bool,
    sport: Option<u16>,
    dport: Option<u16>,
    syn_only: bool,
}

fn first<'a>(cols: &HashMap<&str, usize>, row: &[&'a str], name: &str) -> Option<&'a str> {
    let v = row.get(*cols.get(name)?)?;
    let v = v.split(';').next()?;
    if v.is_empty() { None } else { Some(v) }
}

fn parse_ns(t: &str) -> i128 {
    let (sec, frac) = t.split_once('.').unwrap_or((t, "0"));
    let frac = format!("{frac:0<9}");
    sec.parse::<i128>().expect("secs") * 1_000_000_000 + frac[..9].parse::<i128>().expect("nanos")
}

fn parse_tsv(text: &str) -> Vec<Pkt> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let cols: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let mut out = Vec::new();
    for line in lines {
        let row: Vec<&str> = line.split('\t').collect();
        let protocols = first(&cols, &row, "frame.protocols").unwrap_or("");
        // The outermost IP header decides (tunnels list the inner one after it).
        let v6_outer = protocols
            .find(":ipv6")
            .is_some_and(|p6| protocols.find(":ip:").is_none_or(|p4| p6 < p4));
        let (src, dst, proto, ip_len, ip_id, frag_later, frag_first) =
            if first(&cols, &row, "ip.src").is_some() && !v6_outer {
                let num = |name: &str| {
                    first(&cols, &row, name)
                        .unwrap_or("0")
                        .parse::<u64>()
                        .unwrap_or(0)
                };
                let off = num("ip.frag_offset");
                let mf = first(&cols, &row, "ip.flags.mf").unwrap_or("0");
                (
                    first(&cols, &row, "ip.src").expect("ip.src"),
                    first(&cols, &row, "ip.dst").expect("ip.dst"),
                    u8::try_from(num("ip.proto")).unwrap_or(0),
                    num("ip.len"),
                    first(&cols, &row, "ip.id").unwrap_or("").to_string(),
                    off > 0,
                    off == 0 && (mf == "1" || mf == "True"),
                )
            } else if let Some(src) = first(&cols, &row, "ipv6.src") {
                let num = |name: &str| {
                    first(&cols, &row, name)
                        .unwrap_or("0")
                        .parse::<u64>()
                        .unwrap_or(0)
                };
                let off = num("ipv6.fraghdr.offset");
                let more = first(&cols, &row, "ipv6.fraghdr.more").unwrap_or("0");
                (
                    src,
                    first(&cols, &row, "ipv6.dst").expect("ipv6.dst"),
                    upper_v6(protocols, first(&cols, &row, "ipv6.nxt")),
                    num("ipv6.plen") + 40,
                    first(&cols, &row, "ipv6.fraghdr.ident")
                        .unwrap_or("")
                        .to_string(),
                    off > 0,
                    off == 0 && (more == "1" || more == "True"),
                )
            } else {
                continue;
            };
        let (sport, dport) = if frag_later {
            (None, None)
        } else if proto == 6 {
            (
                first(&cols, &row, "tcp.srcport").and_then(|p| p.parse().ok()),
                first(&cols, &row, "tcp.dstport").and_then(|p| p.parse().ok()),
            )
        } else if proto == 17 {
            (
                first(&cols, &row, "udp.srcport").and_then(|p| p.parse().ok()),
                first(&cols, &row, "udp.dstport").and_then(|p| p.parse().ok()),
            )
        } else {
            (None, None)
        };
        let flags = first(&cols, &row, "tcp.flags")
            .map(|f| u16::from_str_radix(f.trim_start_matches("0x"), 16).unwrap_or(0));
        out.push(Pkt {
            // tshark leaves the time empty where a pcapng block has none it can show.
            ns: first(&cols, &row, "frame.time_epoch").map_or(-1, parse_ns),
            src: src.parse().expect("src address"),
            dst: dst.parse().expect("dst address"),
            proto,
            ip_len,
            ip_id,
            frag_later,
            frag_first,
            sport,
            dport,
            syn_only: proto == 6 && flags.is_some_and(|f| f & 0x12 == 0x02),
        });
    }
    out
}

/// The upper-layer protocol of an IPv6 packet: `ipv6.nxt` names the first
/// extension header, so take the transport tshark dissected after `ipv6`.
fn upper_v6(protocols: &str, nxt: Option<&str>) -> u8 {
    let after = protocols.split_once("ipv6").map_or("", |x| x.1);
    for p in after.split(':') {
        match p {
            "tcp" => return 6,
            "udp" => return 17,
            "icmpv6" => return 58,
            _ => {}
        }
    }
    nxt.and_then(|n| n.parse().ok()).unwrap_or(0)
}

type ConvKey = (u8, IpAddr, u16, IpAddr, u16);

#[derive(Debug, Default)]
struct Conv {
    /// packets and bytes from the lower endpoint, and back.
    fwd: (u64, u64),
    back: (u64, u64),
    first: i128,
    last: i128,
    syn_sender: Option<(IpAddr, u16)>,
}

fn canon(proto: u8, a: IpAddr, ap: u16, b: IpAddr, bp: u16) -> (ConvKey, bool) {
    if (a, ap) <= (b, bp) {
        ((proto, a, ap, b, bp), true)
    } else {
        ((proto, b, bp, a, ap), false)
    }
}

#[test]
fn flows_match_tshark_per_packet_tables() {
    let Some(corpus) = corpus() else { return };
    let expected = corpus.join("expected").join("pcap");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(corpus.join("pcap"))
        .expect("corpus/pcap")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let tsv = expected.join(format!("{name}.packets.tsv"));
        let Ok(text) = std::fs::read_to_string(&tsv) else {
            continue;
        };
        let pkts = parse_tsv(&text);
        let out = zonewatch(&["flows", s(&file)]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let flows = jsonl(&out.stdout);
        let total: u64 = flows
            .iter()
            .map(|f| f["packets"].as_u64().unwrap() + f["rpackets"].as_u64().unwrap())
            .sum();
        if total != pkts.len() as u64 {
            failures.push(format!(
                "{name}: {total} packets in flows, tshark saw {} IP packets",
                pkts.len()
            ));
        }
        // Conversations by the outer header; later fragments follow their first.
        let mut frag_owner: HashMap<(IpAddr, IpAddr, String), (u16, u16)> = HashMap::new();
        let mut convs: HashMap<ConvKey, Conv> = HashMap::new();
        for p in &pkts {
            if p.proto != 6 && p.proto != 17 {
                continue;
            }
            let ports = match (p.sport, p.dport) {
                (Some(a), Some(b)) => {
                    if p.frag_first {
                        frag_owner.insert((p.src, p.dst, p.ip_id.clone()), (a, b));
                    }
                    (a, b)
                }
                _ if p.frag_later => match frag_owner.get(&(p.src, p.dst, p.ip_id.clone())) {
                    Some(&ports) => ports,
                    None => continue,
                },
                _ => continue,
            };
            let (key, fwd) = canon(p.proto, p.src, ports.0, p.dst, ports.1);
            let c = convs.entry(key).or_insert_with(|| Conv {
                first: p.ns,
                last: p.ns,
                ..Default::default()
            });
            let d = if fwd { &mut c.fwd } else { &mut c.back };
            d.0 += 1;
            d.1 += p.ip_len;
            c.first = c.first.min(p.ns);
            c.last = c.last.max(p.ns);
            if p.syn_only && c.syn_sender.is_none() {
                c.syn_sender = Some((p.src, ports.0));
            }
        }
        // Our flows, summed per 5-tuple (timeout splits and VLANs merged).
        let mut ours: HashMap<ConvKey, (Conv, Vec<&serde_json::Value>)> = HashMap::new();
        for f in &flows {
            let proto = match f["proto"].as_str().unwrap() {
                "tcp" => 6,
                "udp" => 17,
                _ => continue,
            };
            let src: IpAddr = f["src"].as_str().unwrap().parse().unwrap();
            let dst: IpAddr = f["dst"].as_str().unwrap().parse().unwrap();
            let sp = f["sport"].as_u64().unwrap() as u16;
            let dp = f["dport"].as_u64().unwrap() as u16;
            let (key, fwd) = canon(proto, src, sp, dst, dp);
            let first = time_ns(f["first"].as_str().unwrap());
            let last = time_ns(f["last"].as_str().unwrap());
            let e = ours.entry(key).or_insert_with(|| {
                (
                    Conv {
                        first,
                        last,
                        ..Default::default()
                    },
                    Vec::new(),
                )
            });
            let (a, b) = (
                (f["packets"].as_u64().unwrap(), f["bytes"].as_u64().unwrap()),
                (
                    f["rpackets"].as_u64().unwrap(),
                    f["rbytes"].as_u64().unwrap(),
                ),
            );
            let (lo, hi) = if fwd { (a, b) } else { (b, a) };
            e.0.fwd.0 += lo.0;
            e.0.fwd.1 += lo.1;
            e.0.back.0 += hi.0;
            e.0.back.1 += hi.1;
            e.0.first = e.0.first.min(first);
            e.0.last = e.0.last.max(last);
            e.1.push(f);
        }
        for (key, c) in &convs {
            let Some((o, fl)) = ours.get(key) else {
                failures.push(format!(
                    "{name}: conversation {key:?} is not among our flows"
                ));
                continue;
            };
            if (o.fwd, o.back) != (c.fwd, c.back) {
                failures.push(format!(
                    "{name}: {key:?}: ours {:?}/{:?}, tshark {:?}/{:?}",
                    o.fwd, o.back, c.fwd, c.back
                ));
            }
            if c.first >= 0 && (o.first != c.first / 1000 * 1000 || o.last != c.last / 1000 * 1000)
            {
                failures.push(format!(
                    "{name}: {key:?}: times ours {}..{}, tshark {}..{}",
                    o.first, o.last, c.first, c.last
                ));
            }
            if let Some((ip, port)) = c.syn_sender {
                let f = fl[0];
                let src: IpAddr = f["src"].as_str().unwrap().parse().unwrap();
                if src != ip
                    || f["sport"].as_u64() != Some(u64::from(port))
                    || f["oriented_by"] != "handshake"
                {
                    failures.push(format!(
                        "{name}: {key:?}: SYN from {ip}:{port} but flow says src {src}:{} by {}",
                        f["sport"], f["oriented_by"]
                    ));
                }
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 40,
        "only {checked} corpus captures had reference tables"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// RFC 3339 with microseconds to epoch nanoseconds.
fn time_ns(t: &str) -> i128 {
    // 2011-03-18T19:06:07.096535Z
    let (date, rest) = t.split_once('T').expect("T");
    let mut d = date.split('-').map(|x| x.parse::<i64>().expect("date"));
    let (y, m, day) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = rest.split_once('.').expect("fraction");
    let mut h = hms.split(':').map(|x| x.parse::<i64>().expect("time"));
    let (hh, mm, ss) = (h.next().unwrap(), h.next().unwrap(), h.next().unwrap());
    // days from civil (H. Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    i128::from(secs) * 1_000_000_000 + i128::from(frac.parse::<i64>().expect("micros")) * 1000
}
