//! A small reader of classic pcap files that keeps the UDP datagrams: the
//! input of `replay` (a recording of export traffic to a collector).
//!
//! Link types: Ethernet (with 802.1Q / 802.1ad tags), BSD loopback (NULL and
//! LOOP), raw IP, Linux cooked (SLL and SLL2). Network layer: IPv4 (fragments
//! are skipped and counted) and IPv6 (hop-by-hop, routing, destination
//! options and AH headers walked; fragments skipped and counted). pcapng is
//! refused with a hint.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Result, bail};

/// One UDP datagram of the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Source address (the exporter).
    pub src: IpAddr,
    /// Destination UDP port.
    pub dport: u16,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// The datagrams of a capture and what was left out, by reason.
#[derive(Debug, Default)]
pub struct Capture {
    /// UDP datagrams, in file order.
    pub datagrams: Vec<Datagram>,
    /// Frames in the file.
    pub frames: u64,
    /// Frames not kept, by reason (`not-udp`, `fragment`, `truncated`, ...).
    pub skipped: BTreeMap<&'static str, u64>,
}

const LINKTYPE_NULL: u32 = 0;
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW_OPENBSD: u32 = 12;
const LINKTYPE_RAW_BSDOS: u32 = 14;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LOOP: u32 = 108;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_IPV4: u32 = 228;
const LINKTYPE_IPV6: u32 = 229;
const LINKTYPE_LINUX_SLL2: u32 = 276;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// Reads a classic pcap file's bytes. `port`, if given, keeps only the
/// datagrams to that UDP destination port (the others count as `other-port`).
pub fn read(bytes: &[u8], port: Option<u16>) -> Result<Capture> {
    let Some(magic) = bytes.first_chunk::<4>() else {
        bail!("too short for a pcap file ({} bytes)", bytes.len());
    };
    let big_endian = match *magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => false,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => true,
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            bail!("pcapng is not supported; convert it with `editcap -F pcap IN OUT`")
        }
        m => bail!("not a pcap file (magic {m:02x?})"),
    };
    let u32_at = |at: usize| -> Option<u32> {
        bytes.get(at..at + 4).map(|s| {
            let a = [s[0], s[1], s[2], s[3]];
            if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        })
    };
    let Some(linktype) = u32_at(20).map(|l| l & 0x0fff_ffff) else {
        bail!("truncated pcap header");
    };
    let mut cap = Capture::default();
    let mut off = 24usize;
    while off < bytes.len() {
        let (Some(incl), Some(orig)) = (u32_at(off + 8), u32_at(off + 12)) else {
            *cap.skipped.entry("truncated-file").or_default() += 1;
            break;
        };
        let start = off + 16;
        let Some(end) = usize::try_from(incl)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= bytes.len())
        else {
            *cap.skipped.entry("truncated-file").or_default() += 1;
            break;
        };
        off = end;
        cap.frames += 1;
        let frame = &bytes[start..end];
        if incl < orig {
            *cap.skipped.entry("truncated").or_default() += 1;
            continue;
        }
        match datagram(linktype, frame) {
            Ok(d) if port.is_some_and(|p| p != d.dport) => {
                *cap.skipped.entry("other-port").or_default() += 1;
            }
            Ok(d) => cap.datagrams.push(d),
            Err(reason) => *cap.skipped.entry(reason).or_default() += 1,
        }
    }
    Ok(cap)
}

/// The UDP datagram in one frame, or why there is none.
fn datagram(linktype: u32, frame: &[u8]) -> Result<Datagram, &'static str> {
    let ip = match linktype {
        LINKTYPE_ETHERNET => {
            let mut at = 12;
            let mut ethertype = be16(frame, at).ok_or("short-link-header")?;
            while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                at += 4;
                ethertype = be16(frame, at).ok_or("short-link-header")?;
            }
            match ethertype {
                0x0800 | 0x86dd => frame.get(at + 2..).ok_or("short-link-header")?,
                _ => return Err("not-ip"),
            }
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => frame.get(4..).ok_or("short-link-header")?,
        LINKTYPE_RAW | LINKTYPE_RAW_OPENBSD | LINKTYPE_RAW_BSDOS | LINKTYPE_IPV4
        | LINKTYPE_IPV6 => frame,
        LINKTYPE_LINUX_SLL => frame.get(16..).ok_or("short-link-header")?,
        LINKTYPE_LINUX_SLL2 => frame.get(20..).ok_or("short-link-header")?,
        _ => return Err("unsupported-link-type"),
    };
    let (src, udp) = match ip.first().map(|b| b >> 4) {
        Some(4) => ipv4(ip)?,
        Some(6) => ipv6(ip)?,
        _ => return Err("not-ip"),
    };
    let dport = be16(udp, 2).ok_or("short-udp-header")?;
    let len = usize::from(be16(udp, 4).ok_or("short-udp-header")?);
    if len < 8 {
        return Err("bad-udp-length");
    }
    let payload = udp.get(8..len).ok_or("truncated")?;
    Ok(Datagram {
        src,
        dport,
        payload: payload.to_vec(),
    })
}

/// Source address and the UDP segment (header included) of an IPv4 packet.
fn ipv4(ip: &[u8]) -> Result<(IpAddr, &[u8]), &'static str> {
    let h = ip.first_chunk::<20>().ok_or("short-ip-header")?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < 20 || total < ihl {
        return Err("bad-ip-header");
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    if frag & 0x3fff != 0 {
        // More fragments, or not the first one.
        return Err("fragment");
    }
    if h[9] != 17 {
        return Err("not-udp");
    }
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    // Ethernet pads short frames: the IP total length bounds the packet.
    let body = ip.get(ihl..total).ok_or("truncated")?;
    Ok((src, body))
}

/// Source address and the UDP segment (header included) of an IPv6 packet.
fn ipv6(ip: &[u8]) -> Result<(IpAddr, &[u8]), &'static str> {
    let h = ip.first_chunk::<40>().ok_or("short-ip-header")?;
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let src = IpAddr::V6(Ipv6Addr::from(src));
    let mut body = ip.get(40..40 + plen).ok_or("truncated")?;
    let mut next = h[6];
    loop {
        let ext_len = match next {
            17 => return Ok((src, body)),
            44 => return Err("fragment"),
            0 | 43 | 60 => (usize::from(*body.get(1).ok_or("truncated")?) + 1) * 8,
            51 => (usize::from(*body.get(1).ok_or("truncated")?) + 2) * 4,
            _ => return Err("not-udp"),
        };
        next = *body.first().ok_or("truncated")?;
        body = body.get(ext_len..).ok_or("truncated")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(linktype: u32, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        f.extend_from_slice(&[2, 0, 4, 0]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&linktype.to_le_bytes());
        for fr in frames {
            f.extend_from_slice(&[0; 8]);
            let l = u32::try_from(fr.len()).unwrap();
            f.extend_from_slice(&l.to_le_bytes());
            f.extend_from_slice(&l.to_le_bytes());
            f.extend_from_slice(fr);
        }
        f
    }

    fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = vec![0x30, 0x39];
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&u16::try_from(payload.len() + 8).unwrap().to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn v4(proto: u8, frag: u16, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&u16::try_from(body.len() + 20).unwrap().to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        p.extend_from_slice(body);
        p
    }

    fn eth(ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 12];
        e.extend_from_slice(&ethertype.to_be_bytes());
        e.extend_from_slice(ip);
        e
    }

    #[test]
    fn keeps_udp_payloads_in_order_and_counts_the_rest() {
        let mut v6 = vec![0x60, 0, 0, 0];
        let body = udp(2055, b"six");
        // Hop-by-hop header (8 bytes) before UDP.
        let mut ext = vec![17, 0, 0, 0, 0, 0, 0, 0];
        ext.extend_from_slice(&body);
        v6.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
        v6.extend_from_slice(&[0, 64]);
        v6.extend_from_slice(&[0; 15]);
        v6.push(1);
        v6.extend_from_slice(&[0; 16]);
        v6.extend_from_slice(&ext);
        let mut padded = eth(0x0800, &v4(17, 0, &udp(2055, b"a")));
        padded.extend_from_slice(&[0xee; 10]);
        let mut vlan = vec![0u8; 12];
        vlan.extend_from_slice(&[0x81, 0, 0, 5, 0x08, 0]);
        vlan.extend_from_slice(&v4(17, 0, &udp(9, b"other")));
        let file = pcap(
            LINKTYPE_ETHERNET,
            &[
                padded,
                eth(0x86dd, &v6),
                eth(0x0800, &v4(6, 0, &[0; 20])),
                eth(0x0800, &v4(17, 0x2000, &udp(2055, b"frag"))),
                eth(0x0806, &[0; 28]),
                vlan,
            ],
        );
        let all = read(&file, None).unwrap();
        let got: Vec<&[u8]> = all.datagrams.iter().map(|d| &d.payload[..]).collect();
        assert_eq!(got, [&b"a"[..], b"six", b"other"]);
        assert_eq!(all.datagrams[1].src, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(all.frames, 6);
        assert_eq!(all.skipped["not-udp"], 1);
        assert_eq!(all.skipped["fragment"], 1);
        assert_eq!(all.skipped["not-ip"], 1);
        let one_port = read(&file, Some(2055)).unwrap();
        assert_eq!(one_port.datagrams.len(), 2);
        assert_eq!(one_port.skipped["other-port"], 1);
    }

    #[test]
    fn raw_and_cooked_link_types() {
        let ip = v4(17, 0, &udp(4739, b"x"));
        assert_eq!(
            read(&pcap(LINKTYPE_RAW, std::slice::from_ref(&ip)), None)
                .unwrap()
                .datagrams
                .len(),
            1
        );
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[8, 0]);
        sll.extend_from_slice(&ip);
        assert_eq!(
            read(&pcap(LINKTYPE_LINUX_SLL, &[sll]), None)
                .unwrap()
                .datagrams
                .len(),
            1
        );
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        assert_eq!(
            read(&pcap(LINKTYPE_NULL, &[null]), None)
                .unwrap()
                .datagrams
                .len(),
            1
        );
    }

    #[test]
    fn refuses_pcapng_and_garbage() {
        assert!(read(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0], None).is_err());
        assert!(read(b"hello world, not a capture", None).is_err());
        // A truncated last record ends the file without an error.
        let mut f = pcap(LINKTYPE_RAW, &[v4(17, 0, &udp(1, b"x"))]);
        f.truncate(f.len() - 3);
        let c = read(&f, None).unwrap();
        assert!(c.datagrams.is_empty());
        assert_eq!(c.skipped["truncated-file"], 1);
    }
}
