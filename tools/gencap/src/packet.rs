//! Builds Ethernet frames carrying IPv4/IPv6 with TCP, UDP or ICMP, with every
//! length and checksum filled in the way a real stack would.

use std::net::IpAddr;

use crate::checksum::{accumulate, finish};

/// TCP flag bits.
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push buffered data to the application.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
}

/// Ethernet frames shorter than this (without FCS) are zero-padded on the wire.
pub const MIN_FRAME: usize = 60;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_ARP: u16 = 0x0806;

/// The link and network layer fields of one packet.
#[derive(Debug, Clone, Copy)]
pub struct IpHeader {
    /// Source MAC address.
    pub src_mac: [u8; 6],
    /// Destination MAC address.
    pub dst_mac: [u8; 6],
    /// Source address; must be the same family as `dst`.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification (ignored for IPv6).
    pub ip_id: u16,
    /// IPv6 flow label (20 bits; ignored for IPv4).
    pub flow_label: u32,
    /// IPv4 "don't fragment".
    pub dont_fragment: bool,
}

/// The transport layer of one packet.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    /// A TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number (0 unless ACK is set).
        ack: u32,
        /// Flag bits, see [`flags`].
        flags: u8,
        /// Receive window.
        window: u16,
        /// Options, a multiple of 4 bytes long.
        options: &'a [u8],
        /// Payload.
        payload: &'a [u8],
    },
    /// A UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Payload.
        payload: &'a [u8],
    },
    /// An ICMP (IPv4) or ICMPv6 (IPv6) message.
    Icmp {
        /// Message type.
        ty: u8,
        /// Message code.
        code: u8,
        /// The 4 type-specific header bytes (identifier and sequence for echo).
        rest: [u8; 4],
        /// Payload.
        payload: &'a [u8],
    },
}

impl Transport<'_> {
    fn protocol(&self, v6: bool) -> u8 {
        match self {
            Transport::Tcp { .. } => 6,
            Transport::Udp { .. } => 17,
            Transport::Icmp { .. } if v6 => 58,
            Transport::Icmp { .. } => 1,
        }
    }

    fn header_len(&self) -> usize {
        match self {
            Transport::Tcp { options, .. } => 20 + options.len(),
            Transport::Udp { .. } | Transport::Icmp { .. } => 8,
        }
    }

    fn payload(&self) -> &[u8] {
        match self {
            Transport::Tcp { payload, .. }
            | Transport::Udp { payload, .. }
            | Transport::Icmp { payload, .. } => payload,
        }
    }
}

/// Writes one complete Ethernet frame into `buf` (cleared first), padded to
/// [`MIN_FRAME`] bytes. Returns the IP-layer length (IP total length).
///
/// Panics if `src` and `dst` are of different families or the packet exceeds
/// 65535 bytes: both are programming errors in the generator, never input.
pub fn build(buf: &mut Vec<u8>, ip: &IpHeader, l4: &Transport<'_>) -> usize {
    buf.clear();
    let v6 = ip.src.is_ipv6();
    assert_eq!(v6, ip.dst.is_ipv6(), "mixed address families");
    let proto = l4.protocol(v6);
    let l4_len = l4.header_len() + l4.payload().len();

    buf.extend_from_slice(&ip.dst_mac);
    buf.extend_from_slice(&ip.src_mac);
    let ip_start = 14;
    let ip_len;
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            buf.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            ip_len = 20 + l4_len;
            let total = u16::try_from(ip_len).expect("IPv4 packet over 65535 bytes");
            buf.extend_from_slice(&[0x45, 0x00]);
            buf.extend_from_slice(&total.to_be_bytes());
            buf.extend_from_slice(&ip.ip_id.to_be_bytes());
            buf.extend_from_slice(if ip.dont_fragment {
                &[0x40, 0x00]
            } else {
                &[0, 0]
            });
            buf.extend_from_slice(&[ip.ttl, proto, 0, 0]);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
            let c = finish(accumulate(0, &buf[ip_start..ip_start + 20]));
            buf[ip_start + 10..ip_start + 12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            buf.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            ip_len = 40 + l4_len;
            let plen = u16::try_from(l4_len).expect("IPv6 payload over 65535 bytes");
            let first = (6u32 << 28) | (ip.flow_label & 0x000f_ffff);
            buf.extend_from_slice(&first.to_be_bytes());
            buf.extend_from_slice(&plen.to_be_bytes());
            buf.extend_from_slice(&[proto, ip.ttl]);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
        }
        _ => unreachable!("families checked above"),
    }

    let l4_start = buf.len();
    let csum_at = match *l4 {
        Transport::Tcp {
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            options,
            payload,
        } => {
            debug_assert!(options.len() % 4 == 0 && options.len() <= 40);
            buf.extend_from_slice(&sport.to_be_bytes());
            buf.extend_from_slice(&dport.to_be_bytes());
            buf.extend_from_slice(&seq.to_be_bytes());
            buf.extend_from_slice(&ack.to_be_bytes());
            let data_offset = ((20 + options.len()) / 4) as u8;
            buf.extend_from_slice(&[data_offset << 4, flags]);
            buf.extend_from_slice(&window.to_be_bytes());
            buf.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            buf.extend_from_slice(options);
            buf.extend_from_slice(payload);
            l4_start + 16
        }
        Transport::Udp {
            sport,
            dport,
            payload,
        } => {
            buf.extend_from_slice(&sport.to_be_bytes());
            buf.extend_from_slice(&dport.to_be_bytes());
            buf.extend_from_slice(&(l4_len as u16).to_be_bytes());
            buf.extend_from_slice(&[0, 0]);
            buf.extend_from_slice(payload);
            l4_start + 6
        }
        Transport::Icmp {
            ty,
            code,
            rest,
            payload,
        } => {
            buf.extend_from_slice(&[ty, code, 0, 0]);
            buf.extend_from_slice(&rest);
            buf.extend_from_slice(payload);
            l4_start + 2
        }
    };

    // ICMPv4 is the only one without a pseudo-header.
    let mut sum = 0u64;
    if proto != 1 {
        let (s, d) = if v6 {
            (ip_start + 8, ip_start + 24)
        } else {
            (ip_start + 12, ip_start + 16)
        };
        let alen = if v6 { 16 } else { 4 };
        sum = accumulate(sum, &buf[s..s + alen]);
        sum = accumulate(sum, &buf[d..d + alen]);
        sum += l4_len as u64 + u64::from(proto);
    }
    sum = accumulate(sum, &buf[l4_start..]);
    let mut c = finish(sum);
    if proto == 17 && c == 0 {
        c = 0xffff; // UDP sends a computed zero as all ones (zero means "none").
    }
    buf[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());

    if buf.len() < MIN_FRAME {
        buf.resize(MIN_FRAME, 0);
    }
    ip_len
}

/// Writes an ARP request (`target_mac` zero, broadcast) or reply into `buf`.
pub fn arp(
    buf: &mut Vec<u8>,
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: [u8; 4],
    target_mac: [u8; 6],
    target_ip: [u8; 4],
) {
    buf.clear();
    let dst = if op == 1 { [0xff; 6] } else { target_mac };
    buf.extend_from_slice(&dst);
    buf.extend_from_slice(&sender_mac);
    buf.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    buf.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]); // Ethernet, IPv4
    buf.extend_from_slice(&op.to_be_bytes());
    buf.extend_from_slice(&sender_mac);
    buf.extend_from_slice(&sender_ip);
    buf.extend_from_slice(&target_mac);
    buf.extend_from_slice(&target_ip);
    buf.resize(MIN_FRAME, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::checksum;

    fn hdr(src: &str, dst: &str) -> IpHeader {
        IpHeader {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 64,
            ip_id: 0x1234,
            flow_label: 0x12345,
            dont_fragment: true,
        }
    }

    /// Recomputes the transport checksum over pseudo-header + segment: a
    /// correct packet sums to zero.
    fn verify(frame: &[u8], v6: bool) {
        let (l4, src, dst, proto) = if v6 {
            let plen = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
            (
                &frame[54..54 + plen],
                &frame[22..38],
                &frame[38..54],
                frame[20],
            )
        } else {
            assert_eq!(checksum(&frame[14..34]), 0, "IPv4 header checksum");
            let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
            (
                &frame[34..14 + total],
                &frame[26..30],
                &frame[30..34],
                frame[23],
            )
        };
        let mut sum = 0;
        if proto != 1 {
            sum = accumulate(accumulate(0, src), dst);
            sum += l4.len() as u64 + u64::from(proto);
        }
        assert_eq!(finish(accumulate(sum, l4)), 0, "transport checksum");
    }

    #[test]
    fn tcp_udp_icmp_checksums_verify() {
        let mut buf = Vec::new();
        let payload = b"hello, odd length";
        for (s, d, v6) in [
            ("10.1.0.5", "10.2.0.10", false),
            ("2001:db8::1", "2001:db8::2", true),
        ] {
            let ip = hdr(s, d);
            let tcp = Transport::Tcp {
                sport: 51514,
                dport: 443,
                seq: 1,
                ack: 2,
                flags: flags::PSH | flags::ACK,
                window: 502,
                options: &[2, 4, 5, 0xb4],
                payload,
            };
            let udp = Transport::Udp {
                sport: 5353,
                dport: 53,
                payload,
            };
            let icmp = Transport::Icmp {
                ty: if v6 { 128 } else { 8 },
                code: 0,
                rest: [0, 1, 0, 1],
                payload,
            };
            for l4 in [tcp, udp, icmp] {
                let n = build(&mut buf, &ip, &l4);
                verify(&buf, v6);
                assert_eq!(buf.len(), (14 + n).max(MIN_FRAME));
            }
        }
    }

    #[test]
    fn short_frames_are_padded() {
        let mut buf = Vec::new();
        let ip_len = build(
            &mut buf,
            &hdr("10.0.0.1", "10.0.0.2"),
            &Transport::Tcp {
                sport: 1,
                dport: 2,
                seq: 0,
                ack: 0,
                flags: flags::SYN,
                window: 1,
                options: &[],
                payload: &[],
            },
        );
        assert_eq!(ip_len, 40);
        assert_eq!(buf.len(), MIN_FRAME);
        verify(&buf, false);
    }
}
