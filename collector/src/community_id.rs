//! Community ID v1 (<https://github.com/corelight/community-id-spec>), seed 0 by default.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::packet::ip_proto;

/// ICMP request/reply type pairs (echo, router solicitation/advertisement,
/// timestamp, information, address mask).
pub(crate) const ICMP_REQUEST_REPLY: [(u8, u8); 5] =
    [(8, 0), (10, 9), (13, 14), (15, 16), (17, 18)];

/// ICMPv6 request/reply type pairs (echo, router, MLD query/report, node
/// information, home agent discovery). Neighbour discovery (135/136) is not
/// a request/reply for flows: each message is a flow of its own.
pub(crate) const ICMPV6_REQUEST_REPLY: [(u8, u8); 5] =
    [(128, 129), (133, 134), (130, 131), (139, 140), (144, 145)];

/// The spec's port equivalents: the request/reply pairs, plus neighbour
/// solicitation/advertisement for ICMPv6.
fn icmp_counterpart(v6: bool, t: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = if v6 {
        &ICMPV6_REQUEST_REPLY
    } else {
        &ICMP_REQUEST_REPLY
    };
    let nd: &[(u8, u8)] = if v6 { &[(135, 136)] } else { &[] };
    pairs.iter().chain(nd).find_map(|&(a, b)| {
        if a == t {
            Some(b)
        } else if b == t {
            Some(a)
        } else {
            None
        }
    })
}

/// Computes the Community ID of a flow. For ICMP/ICMPv6, `sport` is the
/// message type and `dport` the code of the packet (or initiator's message).
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
) -> String {
    let (mut src, mut dst) = (src.to_canonical(), dst.to_canonical());
    let (mut sport, mut dport) = (sport, dport);
    let has_ports = matches!(
        proto,
        ip_proto::TCP | ip_proto::UDP | ip_proto::ICMP | ip_proto::ICMPV6 | 132
    );
    let mut one_way = false;
    if proto == ip_proto::ICMP || proto == ip_proto::ICMPV6 {
        let t = u8::try_from(sport).unwrap_or(u8::MAX);
        match icmp_counterpart(proto == ip_proto::ICMPV6, t) {
            Some(other) => dport = u16::from(other),
            None => one_way = true,
        }
    }
    // One-way ICMP messages keep the packet's direction; everything else is
    // ordered so that both directions hash alike.
    if !one_way && (src, sport) > (dst, dport) {
        std::mem::swap(&mut src, &mut dst);
        std::mem::swap(&mut sport, &mut dport);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    push_addr(&mut h, src);
    push_addr(&mut h, dst);
    h.update([proto, 0]);
    if has_ports {
        h.update(sport.to_be_bytes());
        h.update(dport.to_be_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out
}

fn push_addr(h: &mut Sha1, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    // Vectors computed with the reference Python implementation (PyPI `communityid`).
    #[test]
    fn reference_vectors() {
        let cases = [
            (
                6,
                "128.232.110.120",
                "66.35.250.204",
                34855,
                80,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                6,
                "66.35.250.204",
                "128.232.110.120",
                80,
                34855,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                17,
                "192.168.1.52",
                "8.8.8.8",
                54585,
                53,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                6,
                "2001:db8::1",
                "2001:db8::2",
                1234,
                443,
                "1:2h29Psz1danTKrAdwKC8Zw31l2Y=",
            ),
            (
                1,
                "192.168.0.89",
                "192.168.0.1",
                8,
                0,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                1,
                "192.168.0.1",
                "192.168.0.89",
                0,
                0,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                1,
                "10.0.0.1",
                "10.0.0.2",
                3,
                1,
                "1:gkoOC4ouXvyYq0Ek/WqwbLoqcxM=",
            ),
            (
                58,
                "fe80::1",
                "fe80::2",
                135,
                0,
                "1:7IIPGNVAHI2udmsuJVpA3RMOAqc=",
            ),
            (
                132,
                "10.0.0.1",
                "10.0.0.2",
                7,
                9,
                "1:Ftk37c4kPFC4W+O3cKXZoBNHYkg=",
            ),
            (
                47,
                "10.0.0.1",
                "10.0.0.2",
                0,
                0,
                "1:+KlEHDT0vJgzs/eNmzHq0aSpRYw=",
            ),
        ];
        for (proto, s, d, sp, dp, want) in cases {
            assert_eq!(
                community_id(0, ip(s), ip(d), proto, sp, dp),
                want,
                "{proto} {s} {d} {sp} {dp}"
            );
        }
    }
}
