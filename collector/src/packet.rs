//! The packet decoder: link layer to transport header, leniently.
//!
//! Contract (STYLE habit 2): [`decode`] takes untrusted captured bytes and
//! never panics, never indexes unchecked, never truncates wire values with
//! `as`. It walks the link layer (Ethernet, Linux SLL/SLL2, BSD NULL, raw
//! IPv4/IPv6, NFLOG), VLAN/QinQ and MPLS stacks and PPPoE sessions, then the
//! IP header (IPv4 with options, IPv6 with extension headers, fragments) and
//! the transport header. Whatever parsed is returned: a packet cut by the
//! snaplen inside its TCP header still yields its addresses, protocol and IP
//! length, with [`PacketInfo::truncated`] saying where parsing stopped.

use std::net::IpAddr;

/// TCP flag bits, as in the TCP header's flags byte.
pub mod tcp_flags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
    /// ECE
    pub const ECE: u8 = 0x40;
    /// CWR
    pub const CWR: u8 = 0x80;
}

/// Well-known IP protocol numbers.
pub mod ip_proto {
    /// ICMP
    pub const ICMP: u8 = 1;
    /// TCP
    pub const TCP: u8 = 6;
    /// UDP
    pub const UDP: u8 = 17;
    /// ICMPv6
    pub const ICMPV6: u8 = 58;
}

/// The layer at which decoding stopped or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Link header (Ethernet, SLL, NULL, NFLOG, ...).
    Link,
    /// VLAN, MPLS or PPPoE encapsulation.
    Encapsulation,
    /// IPv4 or IPv6 header, including IPv6 extension headers.
    Ip,
    /// TCP, UDP, ICMP or ICMPv6 header.
    Transport,
}

impl Layer {
    /// Short lowercase name used in counters and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Encapsulation => "encapsulation",
            Layer::Ip => "ip",
            Layer::Transport => "transport",
        }
    }
}

/// Fragmentation state of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fragment {
    /// Not a fragment (IPv6 atomic fragments, offset 0 and M=0, are `None` too).
    #[default]
    None,
    /// The first fragment (offset 0, more fragments follow): its transport
    /// header, if present, was parsed.
    First {
        /// IPv4 identification or IPv6 fragment identification.
        ident: u32,
    },
    /// A later fragment (offset > 0): no transport header.
    Later {
        /// IPv4 identification or IPv6 fragment identification.
        ident: u32,
    },
}

/// The flow tuple quoted inside an ICMP/ICMPv6 error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// Source of the quoted (offending) packet.
    pub src: IpAddr,
    /// Destination of the quoted packet.
    pub dst: IpAddr,
    /// IP protocol of the quoted packet.
    pub proto: u8,
    /// Source port of the quoted packet (0 when absent or not TCP/UDP).
    pub sport: u16,
    /// Destination port of the quoted packet (0 when absent or not TCP/UDP).
    pub dport: u16,
}

/// ICMP / ICMPv6 header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpInfo {
    /// Message type.
    pub icmp_type: u8,
    /// Message code.
    pub code: u8,
    /// Echo identifier for echo request/reply messages (ICMP 8/0, ICMPv6 128/129).
    pub echo_id: Option<u16>,
    /// For error messages (ICMP 3, 4, 5, 11, 12; ICMPv6 1-4): the quoted packet, if enough of it was captured.
    pub quoted: Option<Quoted>,
}

/// Up to four VLAN ids, outermost first. Tag 0 (priority tag) is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Vlans {
    ids: [u16; 4],
    len: u8,
}

impl Vlans {
    /// Appends a VLAN id (ignored beyond four tags, and for id 0).
    pub fn push(&mut self, id: u16) {
        if id == 0 {
            return;
        }
        if let Some(slot) = self.ids.get_mut(usize::from(self.len)) {
            *slot = id;
            self.len += 1;
        }
    }

    /// The VLAN ids, outermost first.
    pub fn as_slice(&self) -> &[u16] {
        &self.ids[..usize::from(self.len)]
    }
}

/// What the decoder learned from one IP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketInfo {
    /// IP source address (IPv4-mapped IPv6 is not converted).
    pub src: IpAddr,
    /// IP destination address.
    pub dst: IpAddr,
    /// IP protocol (IPv6: the upper-layer protocol after extension headers).
    pub proto: u8,
    /// IP-layer length from the header: IPv4 total length, IPv6 40 + payload
    /// length (+ jumbo handling not needed). Not the captured length.
    pub ip_len: u32,
    /// TCP/UDP source port, 0 when absent.
    pub sport: u16,
    /// TCP/UDP destination port, 0 when absent.
    pub dport: u16,
    /// TCP flags byte (see [`tcp_flags`]), 0 for non-TCP.
    pub tcp_flags: u8,
    /// Transport payload length computed from the IP length and header
    /// lengths (TCP: IP payload minus data offset; UDP: IP payload minus 8).
    pub payload_len: u32,
    /// ICMP or ICMPv6 details.
    pub icmp: Option<IcmpInfo>,
    /// Fragmentation.
    pub fragment: Fragment,
    /// VLAN stack.
    pub vlan: Vlans,
    /// The layer whose header was cut short by the capture length, if any.
    pub truncated: Option<Layer>,
}

/// A packet that carried no IP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NonIp {
    /// ARP, STP, LLC, LLDP, PPPoE discovery, PPP control, ... (counted, not an error).
    OtherProtocol,
}

/// Why a packet could not be decoded into an IP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DecodeError {
    /// Where it failed.
    pub layer: Layer,
    /// What was wrong.
    pub reason: DecodeReason,
}

/// The reason part of a [`DecodeError`]; stable names for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecodeReason {
    /// The captured bytes end before the header does.
    Truncated,
    /// A length field is inconsistent (IHL < 5, total length < header, ...).
    BadLength,
    /// IP version nibble does not match the link type / ethertype.
    BadVersion,
    /// The link type is not one we decode.
    UnsupportedLinkType,
}

impl DecodeReason {
    /// Short name used in counters and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeReason::Truncated => "truncated",
            DecodeReason::BadLength => "bad-length",
            DecodeReason::BadVersion => "bad-version",
            DecodeReason::UnsupportedLinkType => "unsupported-link-type",
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.layer.as_str(), self.reason.as_str())
    }
}

/// Result of decoding one captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// An IP packet (possibly with its transport header cut short).
    Ip(PacketInfo),
    /// A frame without IP.
    NotIp(NonIp),
    /// A frame that could not be decoded to an IP header.
    Error(DecodeError),
}
