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
//!
//! # Two layers
//!
//! Every header is read through a borrowed view: a fixed-size array
//! reference made by `array` (`slice.first_chunk::<N>()`),
//! so a header's length is checked once, when the view is made, and the
//! fields are read at constant offsets of a fixed-size array, which cannot
//! panic. Variable parts (options, extension headers) are skipped with
//! `slice.get(n..)`. Wire values are widened with `From`, never narrowed
//! with `as`. The owned result is [`PacketInfo`] (or a
//! [`NonIp`] / [`DecodeError`] value), built from those views.
//!
//! # What is returned
//!
//! * [`Decoded::Ip`] as soon as both IP addresses were read. Fields past the
//!   point where the capture ended keep their zero value and
//!   [`PacketInfo::truncated`] names the layer that was cut; a length field
//!   that contradicts its header (TCP data offset < 5) sets
//!   [`PacketInfo::malformed`] and keeps what was read before it.
//! * [`Decoded::NotIp`] for frames that carry no IP (ARP, LLC, PPPoE
//!   discovery, an MPLS payload that is neither IPv4 nor IPv6, ...).
//! * [`Decoded::Error`] when the frame ends before the IP addresses, a
//!   length field makes the IP header impossible, the IP version does not
//!   match the link type, or the link type is unknown.
//!
//! Tunnels (GRE, IPv6-in-IPv4, VXLAN, ...) are not followed: the outer
//! packet is the flow and [`PacketInfo::proto`] is the outer protocol.
//!
//! No allocation happens in [`decode`]; it is meant to run on every packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    /// lengths, never from the captured length (TCP: IP payload minus data
    /// offset; UDP and ICMP: IP payload minus 8; other protocols and later
    /// fragments: the IP payload). Saturates at 0.
    pub payload_len: u32,
    /// ICMP or ICMPv6 details.
    pub icmp: Option<IcmpInfo>,
    /// Fragmentation.
    pub fragment: Fragment,
    /// VLAN stack.
    pub vlan: Vlans,
    /// The layer whose header was cut short by the capture length, if any.
    pub truncated: Option<Layer>,
    /// Address of the first UDP payload byte inside the decoded frame (0: none);
    /// only compared with the frame's address, never dereferenced.
    pub(crate) payload_addr: usize,
    /// The layer whose header had an inconsistent length field (TCP data
    /// offset < 5), if any; the fields read before it are valid.
    pub malformed: Option<Layer>,
}

impl PacketInfo {
    /// The UDP payload, as captured, of the frame this was decoded from
    /// (`None` for other protocols, fragments after the first, or when the
    /// capture ends inside the UDP header). `frame` must be the bytes given
    /// to [`decode`]; any other slice gives `None`.
    pub fn udp_payload<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        if self.payload_addr == 0 || matches!(self.fragment, Fragment::Later { .. }) {
            return None;
        }
        let offset = self.payload_addr.checked_sub(frame.as_ptr() as usize)?;
        let len = usize::try_from(self.payload_len).ok()?;
        let rest = frame.get(offset..)?;
        Some(rest.get(..len).unwrap_or(rest))
    }
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

/// Link types (`LINKTYPE_*` values of pcap and pcapng) that [`decode`] understands.
pub mod linktype {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: u32 = 0;
    /// Ethernet II / 802.3.
    pub const ETHERNET: u32 = 1;
    /// Raw IP (OpenBSD value).
    pub const RAW_12: u32 = 12;
    /// Raw IP (BSD/OS value).
    pub const RAW_14: u32 = 14;
    /// Raw IP.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: u32 = 109;
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4 only.
    pub const IPV4: u32 = 228;
    /// Raw IPv6 only.
    pub const IPV6: u32 = 229;
    /// Linux netfilter NFLOG.
    pub const NFLOG: u32 = 239;
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: u32 = 276;
    /// Every link type [`decode`](super::decode) supports.
    pub const SUPPORTED: [u32; 11] = [
        NULL, ETHERNET, RAW_12, RAW_14, RAW, LOOP, LINUX_SLL, IPV4, IPV6, NFLOG, LINUX_SLL2,
    ];
}

/// Decodes one captured frame of the given link type.
///
/// Never panics and never allocates; see the module docs for what each
/// [`Decoded`] variant means.
pub fn decode(linktype: u32, data: &[u8]) -> Decoded {
    match linktype {
        linktype::ETHERNET => ethernet(data),
        linktype::LINUX_SLL => match data.get(16..) {
            Some(rest) => ethertype(be16(data, 14), rest, Vlans::default()),
            None => err(Layer::Link, DecodeReason::Truncated),
        },
        linktype::LINUX_SLL2 => match data.get(20..) {
            Some(rest) => ethertype(be16(data, 0), rest, Vlans::default()),
            None => err(Layer::Link, DecodeReason::Truncated),
        },
        linktype::NULL | linktype::LOOP => null(data),
        linktype::RAW | linktype::RAW_12 | linktype::RAW_14 => raw_ip(data, Vlans::default()),
        linktype::IPV4 => ipv4(data, Vlans::default()),
        linktype::IPV6 => ipv6(data, Vlans::default()),
        linktype::NFLOG => nflog(data),
        _ => err(Layer::Link, DecodeReason::UnsupportedLinkType),
    }
}

const fn err(layer: Layer, reason: DecodeReason) -> Decoded {
    Decoded::Error(DecodeError { layer, reason })
}

const NOT_IP: Decoded = Decoded::NotIp(NonIp::OtherProtocol);

/// The first `N` bytes of `data` as a fixed-size array, if there are that many.
#[inline(always)]
fn array<const N: usize>(data: &[u8]) -> Option<&[u8; N]> {
    data.first_chunk::<N>()
}

/// Big-endian u16 at `off`, 0 when out of range (callers check lengths first
/// where 0 would be ambiguous).
#[inline(always)]
fn be16(data: &[u8], off: usize) -> u16 {
    match data.get(off..).and_then(array::<2>) {
        Some(b) => u16::from_be_bytes(*b),
        None => 0,
    }
}

/// `len` widened to u32, saturating (captured lengths fit; this is for clarity).
#[inline(always)]
fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn ethernet(data: &[u8]) -> Decoded {
    let Some(h) = array::<14>(data) else {
        return err(Layer::Link, DecodeReason::Truncated);
    };
    let rest = data.get(14..).unwrap_or_default();
    ethertype(u16::from_be_bytes([h[12], h[13]]), rest, Vlans::default())
}

/// Dispatches on an ethertype, walking VLAN tags, MPLS labels and PPPoE.
fn ethertype(mut et: u16, mut data: &[u8], mut vlans: Vlans) -> Decoded {
    loop {
        match et {
            0x0800 => return ipv4(data, vlans),
            0x86DD => return ipv6(data, vlans),
            0x8100 | 0x88A8 | 0x9100 => {
                let Some(tag) = array::<4>(data) else {
                    return err(Layer::Encapsulation, DecodeReason::Truncated);
                };
                vlans.push(u16::from_be_bytes([tag[0], tag[1]]) & 0x0FFF);
                et = u16::from_be_bytes([tag[2], tag[3]]);
                data = data.get(4..).unwrap_or_default();
            }
            0x8847 | 0x8848 => return mpls(data, vlans),
            0x8864 => {
                // PPPoE session header (6 bytes) then the PPP protocol (2 bytes).
                let Some(h) = array::<8>(data) else {
                    return err(Layer::Encapsulation, DecodeReason::Truncated);
                };
                let rest = data.get(8..).unwrap_or_default();
                return match u16::from_be_bytes([h[6], h[7]]) {
                    0x0021 => ipv4(rest, vlans),
                    0x0057 => ipv6(rest, vlans),
                    _ => NOT_IP,
                };
            }
            // ARP, LLDP, 802.3 length fields (<= 1500), PPPoE discovery, ...
            _ => return NOT_IP,
        }
    }
}

fn mpls(mut data: &[u8], vlans: Vlans) -> Decoded {
    loop {
        let Some(label) = array::<4>(data) else {
            return err(Layer::Encapsulation, DecodeReason::Truncated);
        };
        data = data.get(4..).unwrap_or_default();
        if label[2] & 0x01 != 0 {
            break;
        }
    }
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data, vlans),
        Some(6) => ipv6(data, vlans),
        Some(_) => NOT_IP,
        None => err(Layer::Encapsulation, DecodeReason::Truncated),
    }
}

fn null(data: &[u8]) -> Decoded {
    let Some(h) = array::<4>(data) else {
        return err(Layer::Link, DecodeReason::Truncated);
    };
    let rest = data.get(4..).unwrap_or_default();
    // Host byte order for NULL (either), network byte order for LOOP: accept both.
    let (le, be) = (u32::from_le_bytes(*h), u32::from_be_bytes(*h));
    let is = |family: u32| le == family || be == family;
    if is(2) {
        ipv4(rest, Vlans::default())
    } else if is(24) || is(28) || is(30) {
        ipv6(rest, Vlans::default())
    } else {
        NOT_IP
    }
}

fn raw_ip(data: &[u8], vlans: Vlans) -> Decoded {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data, vlans),
        Some(6) => ipv6(data, vlans),
        Some(_) => err(Layer::Ip, DecodeReason::BadVersion),
        None => err(Layer::Ip, DecodeReason::Truncated),
    }
}

fn nflog(data: &[u8]) -> Decoded {
    // 4-byte header: address family, version, resource id; then TLVs.
    let Some(mut tlvs) = data.get(4..) else {
        return err(Layer::Link, DecodeReason::Truncated);
    };
    loop {
        if tlvs.is_empty() {
            return NOT_IP; // no payload TLV: a log message without packet
        }
        let Some(h) = array::<4>(tlvs) else {
            return err(Layer::Link, DecodeReason::Truncated);
        };
        let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
        let kind = u16::from_le_bytes([h[2], h[3]]) & 0x3FFF; // without the netlink flag bits
        if len < 4 {
            return err(Layer::Link, DecodeReason::BadLength);
        }
        if kind == 9 {
            // The payload may be cut by the snaplen: take what was captured.
            let value = tlvs
                .get(4..len)
                .or_else(|| tlvs.get(4..))
                .unwrap_or_default();
            return raw_ip(value, Vlans::default());
        }
        let padded = len.next_multiple_of(4);
        match tlvs.get(padded..) {
            Some(rest) => tlvs = rest,
            None => return err(Layer::Link, DecodeReason::Truncated),
        }
    }
}

fn blank(src: IpAddr, dst: IpAddr, proto: u8, ip_len: u32, vlan: Vlans) -> PacketInfo {
    PacketInfo {
        src,
        dst,
        proto,
        ip_len,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        payload_len: 0,
        icmp: None,
        fragment: Fragment::None,
        vlan,
        truncated: None,
        malformed: None,
        payload_addr: 0,
    }
}

fn ipv4(data: &[u8], vlans: Vlans) -> Decoded {
    let Some(h) = array::<20>(data) else {
        return match data.first() {
            Some(b) if b >> 4 != 4 => err(Layer::Ip, DecodeReason::BadVersion),
            _ => err(Layer::Ip, DecodeReason::Truncated),
        };
    };
    if h[0] >> 4 != 4 {
        return err(Layer::Ip, DecodeReason::BadVersion);
    }
    let hlen = usize::from(h[0] & 0x0F) * 4;
    let total = u16::from_be_bytes([h[2], h[3]]);
    if hlen < 20 || usize::from(total) < hlen {
        return err(Layer::Ip, DecodeReason::BadLength);
    }
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    let mut info = blank(src, dst, h[9], u32::from(total), vlans);
    let ip_payload = u32::from(total).saturating_sub(len32(hlen));
    info.payload_len = ip_payload;
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let ident = u32::from(u16::from_be_bytes([h[4], h[5]]));
    if frag & 0x1FFF != 0 {
        info.fragment = Fragment::Later { ident };
        if data.len() < hlen {
            info.truncated = Some(Layer::Ip);
        }
        return Decoded::Ip(info);
    }
    if frag & 0x2000 != 0 {
        info.fragment = Fragment::First { ident };
    }
    // Transport bytes: after the options, without link-layer padding.
    let Some(segment) = data.get(hlen..) else {
        info.truncated = Some(Layer::Ip);
        return Decoded::Ip(info);
    };
    let segment = segment
        .get(..usize::from(total).saturating_sub(hlen))
        .unwrap_or(segment);
    transport(&mut info, segment, ip_payload);
    Decoded::Ip(info)
}

/// Where the IPv6 extension-header walk ended.
struct Ipv6Upper<'a> {
    /// Upper-layer protocol (or the last next-header value read).
    proto: u8,
    /// Bytes after the extension headers.
    rest: &'a [u8],
    /// Bytes of extension headers skipped.
    ext_len: usize,
    fragment: Fragment,
    /// The capture ended inside the extension headers.
    truncated: bool,
}

/// Walks IPv6 extension headers starting with next-header value `next`.
fn ipv6_extensions(mut next: u8, mut data: &[u8]) -> Ipv6Upper<'_> {
    let mut ext_len = 0usize;
    let mut fragment = Fragment::None;
    let mut truncated = false;
    loop {
        // Every extension header starts with its next-header byte and, except
        // the fixed-size fragment header, a length byte.
        let Some(h) = array::<2>(data) else {
            truncated = matches!(next, 0 | 43 | 44 | 51 | 60 | 135);
            break;
        };
        let hdr_len = match next {
            0 | 43 | 60 | 135 => (usize::from(h[1]) + 1) * 8,
            51 => (usize::from(h[1]) + 2) * 4,
            44 => {
                let Some(f) = array::<8>(data) else {
                    truncated = true;
                    break;
                };
                let off_m = u16::from_be_bytes([f[2], f[3]]);
                let ident = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                if off_m >> 3 != 0 {
                    // A later fragment: the upper-layer header is not in it.
                    return Ipv6Upper {
                        proto: f[0],
                        rest: &[],
                        ext_len: ext_len + 8,
                        fragment: Fragment::Later { ident },
                        truncated: false,
                    };
                }
                if off_m & 1 != 0 {
                    fragment = Fragment::First { ident };
                }
                8
            }
            _ => break,
        };
        next = h[0];
        ext_len += hdr_len;
        match data.get(hdr_len..) {
            Some(rest) => data = rest,
            None => {
                truncated = true;
                break;
            }
        }
    }
    Ipv6Upper {
        proto: next,
        rest: if truncated { &[] } else { data },
        ext_len,
        fragment,
        truncated,
    }
}

/// Source and destination of an IPv6 header view.
fn ipv6_addrs(h: &[u8; 40]) -> (IpAddr, IpAddr) {
    let addrs = h.last_chunk::<32>().copied().unwrap_or([0; 32]);
    let (src, dst) = addrs.split_at(16);
    let v6 = |b: &[u8]| IpAddr::V6(Ipv6Addr::from(array::<16>(b).copied().unwrap_or([0; 16])));
    (v6(src), v6(dst))
}

fn ipv6(data: &[u8], vlans: Vlans) -> Decoded {
    let Some(h) = array::<40>(data) else {
        return match data.first() {
            Some(b) if b >> 4 != 6 => err(Layer::Ip, DecodeReason::BadVersion),
            _ => err(Layer::Ip, DecodeReason::Truncated),
        };
    };
    if h[0] >> 4 != 6 {
        return err(Layer::Ip, DecodeReason::BadVersion);
    }
    let plen = u16::from_be_bytes([h[4], h[5]]);
    let (src, dst) = ipv6_addrs(h);
    let mut info = blank(src, dst, h[6], 40 + u32::from(plen), vlans);
    let mut payload = data.get(40..).unwrap_or_default();
    if plen != 0 {
        // Drop link-layer padding (a zero length is a jumbogram or TSO: keep all).
        payload = payload.get(..usize::from(plen)).unwrap_or(payload);
    }
    let upper = ipv6_extensions(h[6], payload);
    info.proto = upper.proto;
    info.fragment = upper.fragment;
    let ip_payload = u32::from(plen).saturating_sub(len32(upper.ext_len));
    info.payload_len = ip_payload;
    if upper.truncated {
        info.truncated = Some(Layer::Ip);
    } else if !matches!(upper.fragment, Fragment::Later { .. }) {
        transport(&mut info, upper.rest, ip_payload);
    }
    Decoded::Ip(info)
}

/// An ordinary packet as [`decode_plain`] reads it, without building a
/// [`PacketInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain<'a> {
    /// Source address: IPv4 in the first 4 bytes (the rest 0), or IPv6.
    pub src: [u8; 16],
    /// Destination address, laid out as `src`.
    pub dst: [u8; 16],
    /// Whether the addresses are IPv6.
    pub v6: bool,
    /// [`ip_proto::TCP`] or [`ip_proto::UDP`].
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// As [`PacketInfo::ip_len`].
    pub ip_len: u32,
    /// As [`PacketInfo::payload_len`].
    pub payload_len: u32,
    /// TCP flags, 0 for UDP.
    pub tcp_flags: u8,
    /// UDP: the payload as captured (as [`PacketInfo::udp_payload`] gives
    /// it); empty for TCP.
    pub udp_payload: &'a [u8],
}

/// The common case of [`decode`], read in one pass: an untagged Ethernet or
/// Linux cooked (SLL, SLL2) frame, or a raw IP one, carrying IPv4 (options
/// allowed) or IPv6 without extension headers,
/// not a fragment, TCP or UDP with its whole header captured, no address
/// IPv4-mapped. `None` for anything else: then [`decode`] it. Where this
/// returns a packet, `decode` gives the same one with no VLAN tag, fragment,
/// cut or malformed header ([`Plain::agrees_with`], checked by the tests and
/// the `packet_decoder` fuzz target); it skips building a [`PacketInfo`]
/// for the packets that are nearly all of a busy link's.
#[inline]
pub fn decode_plain(linktype: u32, data: &[u8]) -> Option<Plain<'_>> {
    // The ethertype (or what stands for it) and the IP header's bytes.
    let (et, ip) = match linktype {
        linktype::ETHERNET => (be16(array::<14>(data)?, 12), data.get(14..)?),
        linktype::LINUX_SLL => (be16(data, 14), data.get(16..)?),
        linktype::LINUX_SLL2 => (be16(data, 0), data.get(20..)?),
        linktype::IPV4 => (0x0800, data),
        linktype::IPV6 => (0x86DD, data),
        linktype::RAW | linktype::RAW_12 | linktype::RAW_14 => match data.first()? >> 4 {
            4 => (0x0800, data),
            6 => (0x86DD, data),
            _ => return None,
        },
        _ => return None,
    };
    // Addresses, protocol, IP length, the IP payload as captured (without
    // link-layer padding) and its length according to the IP header.
    let (src, dst, v6, proto, ip_len, seg, ip_payload) = match et {
        0x0800 => {
            let h = array::<20>(ip)?;
            let hlen = usize::from(h[0] & 0x0F) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            // Version 4, a consistent length, neither flag MF nor an offset.
            if h[0] >> 4 != 4 || hlen < 20 || total < hlen || h[6] & 0x3F != 0 || h[7] != 0 {
                return None;
            }
            let (mut src, mut dst) = ([0; 16], [0; 16]);
            src[..4].copy_from_slice(&h[12..16]);
            dst[..4].copy_from_slice(&h[16..20]);
            let seg = ip.get(hlen..total.min(ip.len()))?;
            (
                src,
                dst,
                false,
                h[9],
                len32(total),
                seg,
                len32(total - hlen),
            )
        }
        0x86DD => {
            let h = array::<40>(ip)?;
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            // A zero length (jumbogram, TSO) keeps the whole capture: decode's case.
            if h[0] >> 4 != 6 || plen == 0 {
                return None;
            }
            let (src, dst) = ipv6_addrs(h);
            // The flow key takes an IPv4-mapped address as IPv4
            // (`IpAddr::to_canonical`): decode's case.
            let (IpAddr::V6(src), IpAddr::V6(dst)) = (src, dst) else {
                return None;
            };
            if src.to_ipv4_mapped().is_some() || dst.to_ipv4_mapped().is_some() {
                return None;
            }
            let rest = ip.get(40..)?;
            let seg = rest.get(..plen).unwrap_or(rest);
            (
                src.octets(),
                dst.octets(),
                true,
                h[6],
                40 + len32(plen),
                seg,
                len32(plen),
            )
        }
        _ => return None,
    };
    // Ports, flags, transport payload length and (UDP) the payload: `seg`
    // ends with the IP payload, so a UDP payload is all of it after the header.
    let (sport, dport, tcp_flags, payload_len, udp_payload) = match proto {
        ip_proto::TCP => {
            let h = array::<20>(seg)?;
            let doff = u32::from(h[12] >> 4) * 4;
            if doff < 20 {
                return None;
            }
            let ports = (be16(h, 0), be16(h, 2));
            (
                ports.0,
                ports.1,
                h[13],
                ip_payload.saturating_sub(doff),
                &[][..],
            )
        }
        ip_proto::UDP => {
            let h = array::<8>(seg)?;
            let payload = seg.get(8..).unwrap_or_default();
            (
                be16(h, 0),
                be16(h, 2),
                0,
                ip_payload.saturating_sub(8),
                payload,
            )
        }
        _ => return None,
    };
    Some(Plain {
        src,
        dst,
        v6,
        proto,
        sport,
        dport,
        ip_len,
        payload_len,
        tcp_flags,
        udp_payload,
    })
}

impl Plain<'_> {
    /// Whether `info`, which [`decode`] made of `frame`, is this same packet.
    pub fn agrees_with(&self, info: &PacketInfo, frame: &[u8]) -> bool {
        let bytes = crate::table::addr_bytes;
        info.vlan.as_slice().is_empty()
            && info.fragment == Fragment::None
            && info.truncated.is_none()
            && info.malformed.is_none()
            && info.icmp.is_none()
            && bytes(info.src) == (self.src, self.v6)
            && bytes(info.dst) == (self.dst, self.v6)
            && (info.proto, info.sport, info.dport, info.tcp_flags)
                == (self.proto, self.sport, self.dport, self.tcp_flags)
            && (info.ip_len, info.payload_len) == (self.ip_len, self.payload_len)
            && match self.proto {
                ip_proto::UDP => info.udp_payload(frame) == Some(self.udp_payload),
                _ => info.udp_payload(frame).is_none(),
            }
    }
}

/// Reads the transport header in `seg` (captured bytes of the IP payload,
/// `ip_payload` being its length according to the IP header).
fn transport(info: &mut PacketInfo, seg: &[u8], ip_payload: u32) {
    match info.proto {
        ip_proto::TCP => {
            if let Some(p) = array::<4>(seg) {
                info.sport = u16::from_be_bytes([p[0], p[1]]);
                info.dport = u16::from_be_bytes([p[2], p[3]]);
            }
            let Some(h) = array::<14>(seg) else {
                info.truncated = Some(Layer::Transport);
                info.payload_len = ip_payload.saturating_sub(20);
                return;
            };
            info.tcp_flags = h[13];
            let doff = u32::from(h[12] >> 4) * 4;
            if doff < 20 {
                info.malformed = Some(Layer::Transport);
                info.payload_len = ip_payload.saturating_sub(20);
                return;
            }
            info.payload_len = ip_payload.saturating_sub(doff);
            if seg.len() < 20 {
                info.truncated = Some(Layer::Transport);
            }
        }
        ip_proto::UDP => {
            info.payload_len = ip_payload.saturating_sub(8);
            match array::<8>(seg) {
                Some(h) => {
                    info.sport = u16::from_be_bytes([h[0], h[1]]);
                    info.dport = u16::from_be_bytes([h[2], h[3]]);
                    // Where the datagram's payload starts (an address only, see `PacketInfo::udp_payload`).
                    info.payload_addr = seg.get(8..).map_or(0, |p| p.as_ptr() as usize);
                }
                None => {
                    if let Some(p) = array::<4>(seg) {
                        info.sport = u16::from_be_bytes([p[0], p[1]]);
                        info.dport = u16::from_be_bytes([p[2], p[3]]);
                    }
                    info.truncated = Some(Layer::Transport);
                }
            }
        }
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            info.payload_len = ip_payload.saturating_sub(8);
            let v6 = info.proto == ip_proto::ICMPV6;
            let Some(h) = array::<2>(seg) else {
                info.truncated = Some(Layer::Transport);
                return;
            };
            let (icmp_type, code) = (h[0], h[1]);
            let mut icmp = IcmpInfo {
                icmp_type,
                code,
                echo_id: None,
                quoted: None,
            };
            let echo = if v6 {
                matches!(icmp_type, 128 | 129)
            } else {
                matches!(icmp_type, 0 | 8)
            };
            let error = if v6 {
                matches!(icmp_type, 1..=4)
            } else {
                matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
            };
            if echo {
                match array::<6>(seg) {
                    Some(e) => icmp.echo_id = Some(u16::from_be_bytes([e[4], e[5]])),
                    None => info.truncated = Some(Layer::Transport),
                }
            } else if seg.len() < 8 {
                info.truncated = Some(Layer::Transport);
            } else if error {
                icmp.quoted = seg.get(8..).and_then(|q| quoted(q, v6));
            }
            info.icmp = Some(icmp);
        }
        _ => {}
    }
}

/// The flow tuple of the packet quoted by an ICMP error, when its addresses were captured.
fn quoted(data: &[u8], v6: bool) -> Option<Quoted> {
    let (src, dst, proto, rest) = if v6 {
        let h = array::<40>(data)?;
        if h[0] >> 4 != 6 {
            return None;
        }
        let (src, dst) = ipv6_addrs(h);
        let upper = ipv6_extensions(h[6], data.get(40..).unwrap_or_default());
        (src, dst, upper.proto, upper.rest)
    } else {
        let h = array::<20>(data)?;
        if h[0] >> 4 != 4 {
            return None;
        }
        let hlen = usize::from(h[0] & 0x0F) * 4;
        let later = u16::from_be_bytes([h[6], h[7]]) & 0x1FFF != 0;
        let rest = if hlen < 20 || later {
            &[][..]
        } else {
            data.get(hlen..).unwrap_or_default()
        };
        (
            IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
            IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
            h[9],
            rest,
        )
    };
    let (sport, dport) = match (proto, array::<4>(rest)) {
        (ip_proto::TCP | ip_proto::UDP, Some(p)) => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        _ => (0, 0),
    };
    Some(Quoted {
        src,
        dst,
        proto,
        sport,
        dport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::check_plain;
    use proptest::prelude::*;

    const A4: [u8; 4] = [192, 0, 2, 1];
    const B4: [u8; 4] = [198, 51, 100, 2];

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::from(a)
    }

    fn v6(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = last;
        a
    }

    /// IPv4 header with `options` and a total length covering `payload_len` bytes.
    fn ipv4_hdr(proto: u8, payload_len: usize, ident: u16, frag: u16, options: &[u8]) -> Vec<u8> {
        let hlen = 20 + options.len();
        let total = u16::try_from(hlen + payload_len).unwrap();
        let mut h = vec![0x40 | u8::try_from(hlen / 4).unwrap(), 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&ident.to_be_bytes());
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&A4);
        h.extend_from_slice(&B4);
        h.extend_from_slice(options);
        h
    }

    fn ipv6_hdr(next: u8, payload_len: usize) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&u16::try_from(payload_len).unwrap().to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        h.extend_from_slice(&v6(1));
        h.extend_from_slice(&v6(2));
        h
    }

    fn tcp(sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        h.extend(std::iter::repeat_n(0xAB, payload));
        h
    }

    fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&u16::try_from(8 + payload).unwrap().to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        h.extend(std::iter::repeat_n(0xCD, payload));
        h
    }

    fn ipv4_tcp() -> Vec<u8> {
        let seg = tcp(40000, 443, tcp_flags::SYN | tcp_flags::ACK, 10);
        let mut p = ipv4_hdr(ip_proto::TCP, seg.len(), 7, 0x4000, &[]);
        p.extend_from_slice(&seg);
        p
    }

    fn ipv6_udp() -> Vec<u8> {
        let seg = udp(5353, 53, 4);
        let mut p = ipv6_hdr(ip_proto::UDP, seg.len());
        p.extend_from_slice(&seg);
        p
    }

    #[test]
    fn udp_payload_is_found_in_the_frame() {
        let mut frame = eth(0x0800);
        let seg = udp(40000, 2055, 6);
        frame.extend_from_slice(&ipv4_hdr(ip_proto::UDP, seg.len(), 1, 0, &[]));
        frame.extend_from_slice(&seg);
        frame.extend_from_slice(&[0xEE; 4]); // trailer beyond the IP length
        let Decoded::Ip(info) = decode(linktype::ETHERNET, &frame) else {
            panic!("not IP")
        };
        assert_eq!(info.udp_payload(&frame), Some(&[0xCD; 6][..]));
        // Another buffer is never mistaken for the frame.
        let other = frame.clone();
        assert_eq!(info.udp_payload(&other[..4]), None);
        let Decoded::Ip(tcp) = decode(linktype::RAW, &ipv4_tcp()) else {
            panic!("not IP")
        };
        assert_eq!(tcp.udp_payload(&ipv4_tcp()), None);
    }

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn ip(d: Decoded) -> PacketInfo {
        match d {
            Decoded::Ip(info) => info,
            other => panic!("expected an IP packet, got {other:?}"),
        }
    }

    fn error(layer: Layer, reason: DecodeReason) -> Decoded {
        Decoded::Error(DecodeError { layer, reason })
    }

    fn assert_v4_tcp(info: &PacketInfo) {
        assert_eq!(info.src, v4(A4));
        assert_eq!(info.dst, v4(B4));
        assert_eq!(info.proto, ip_proto::TCP);
        assert_eq!((info.sport, info.dport), (40000, 443));
        assert_eq!(info.tcp_flags, tcp_flags::SYN | tcp_flags::ACK);
        assert_eq!(info.ip_len, 50);
        assert_eq!(info.payload_len, 10);
        assert_eq!(info.truncated, None);
        assert_eq!(info.fragment, Fragment::None);
    }

    fn assert_v6_udp(info: &PacketInfo) {
        assert_eq!(info.src, IpAddr::from(v6(1)));
        assert_eq!(info.dst, IpAddr::from(v6(2)));
        assert_eq!(info.proto, ip_proto::UDP);
        assert_eq!((info.sport, info.dport), (5353, 53));
        assert_eq!(info.ip_len, 52);
        assert_eq!(info.payload_len, 4);
        assert_eq!(info.truncated, None);
    }

    #[test]
    fn ethernet_ipv4_tcp_with_padding() {
        let mut f = cat(&[&eth(0x0800), &ipv4_tcp()]);
        f.extend_from_slice(&[0; 6]); // Ethernet padding after the IP packet
        let info = ip(decode(linktype::ETHERNET, &f));
        assert_v4_tcp(&info);
        assert_eq!(info.vlan.as_slice(), &[] as &[u16]);
        assert_eq!(info.malformed, None);
    }

    #[test]
    fn ethernet_ipv6_udp() {
        let f = cat(&[&eth(0x86DD), &ipv6_udp()]);
        assert_v6_udp(&ip(decode(linktype::ETHERNET, &f)));
    }

    #[test]
    fn linux_sll_and_sll2() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
        sll.extend_from_slice(&0x0800u16.to_be_bytes());
        assert_v4_tcp(&ip(decode(linktype::LINUX_SLL, &cat(&[&sll, &ipv4_tcp()]))));
        let mut sll2 = 0x86DDu16.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
        assert_eq!(sll2.len(), 20);
        assert_v6_udp(&ip(decode(
            linktype::LINUX_SLL2,
            &cat(&[&sll2, &ipv6_udp()]),
        )));
        // SLL with a VLAN tag then ARP.
        let mut sll_vlan = sll.clone();
        sll_vlan[14..16].copy_from_slice(&0x8100u16.to_be_bytes());
        let f = cat(&[&sll_vlan, &[0, 5, 0x08, 0x06], &[0; 28]]);
        assert_eq!(decode(linktype::LINUX_SLL, &f), NOT_IP);
        assert_eq!(
            decode(linktype::LINUX_SLL2, &sll2[..19]),
            error(Layer::Link, DecodeReason::Truncated)
        );
    }

    #[test]
    fn null_and_loop_both_byte_orders() {
        for lt in [linktype::NULL, linktype::LOOP] {
            let le = cat(&[&2u32.to_le_bytes(), &ipv4_tcp()]);
            let be = cat(&[&2u32.to_be_bytes(), &ipv4_tcp()]);
            assert_v4_tcp(&ip(decode(lt, &le)));
            assert_v4_tcp(&ip(decode(lt, &be)));
            for family in [24u32, 28, 30] {
                let f = cat(&[&family.to_le_bytes(), &ipv6_udp()]);
                assert_v6_udp(&ip(decode(lt, &f)));
                let f = cat(&[&family.to_be_bytes(), &ipv6_udp()]);
                assert_v6_udp(&ip(decode(lt, &f)));
            }
            assert_eq!(decode(lt, &cat(&[&7u32.to_le_bytes(), &[0; 20]])), NOT_IP);
            assert_eq!(
                decode(lt, &[2, 0]),
                error(Layer::Link, DecodeReason::Truncated)
            );
        }
    }

    #[test]
    fn raw_ip_link_types() {
        for lt in [linktype::RAW, linktype::RAW_12, linktype::RAW_14] {
            assert_v4_tcp(&ip(decode(lt, &ipv4_tcp())));
            assert_v6_udp(&ip(decode(lt, &ipv6_udp())));
            assert_eq!(
                decode(lt, &[0x50; 40]),
                error(Layer::Ip, DecodeReason::BadVersion)
            );
            assert_eq!(decode(lt, &[]), error(Layer::Ip, DecodeReason::Truncated));
        }
        assert_v4_tcp(&ip(decode(linktype::IPV4, &ipv4_tcp())));
        assert_v6_udp(&ip(decode(linktype::IPV6, &ipv6_udp())));
    }

    #[test]
    fn bad_version_for_ipv4_and_ipv6_link_types() {
        let bad = error(Layer::Ip, DecodeReason::BadVersion);
        assert_eq!(decode(linktype::IPV4, &ipv6_udp()), bad);
        assert_eq!(decode(linktype::IPV6, &ipv4_tcp()), bad);
        // Even when too short to hold the header.
        assert_eq!(decode(linktype::IPV4, &[0x60, 0]), bad);
        assert_eq!(decode(linktype::IPV6, &[0x45, 0]), bad);
        // Ethertype IPv4 carrying an IPv6 header.
        assert_eq!(
            decode(linktype::ETHERNET, &cat(&[&eth(0x0800), &ipv6_udp()])),
            bad
        );
    }

    #[test]
    fn unsupported_link_type() {
        assert_eq!(
            decode(274, &ipv4_tcp()),
            error(Layer::Link, DecodeReason::UnsupportedLinkType)
        );
    }

    #[test]
    fn vlan_priority_tag_is_not_stored() {
        let f = cat(&[
            &eth(0x8100),
            &[0xA0, 0x00, 0x81, 0x00],
            &[0x20, 100, 0x08, 0x00],
            &ipv4_tcp(),
        ]);
        let info = ip(decode(linktype::ETHERNET, &f));
        assert_v4_tcp(&info);
        assert_eq!(info.vlan.as_slice(), &[100]);
    }

    #[test]
    fn qinq_and_triple_tags() {
        let f = cat(&[
            &eth(0x88A8),
            &[0, 13, 0x81, 0x00],
            &[0, 10, 0x86, 0xDD],
            &ipv6_udp(),
        ]);
        let info = ip(decode(linktype::ETHERNET, &f));
        assert_v6_udp(&info);
        assert_eq!(info.vlan.as_slice(), &[13, 10]);
        let f = cat(&[
            &eth(0x9100),
            &[0x0F, 0xFF, 0x91, 0x00],
            &[0, 20, 0x81, 0x00],
            &[0, 10, 0x08, 0x00],
            &ipv4_tcp(),
        ]);
        assert_eq!(
            ip(decode(linktype::ETHERNET, &f)).vlan.as_slice(),
            &[4095, 20, 10]
        );
        // QinQ carrying ARP: no IP flow.
        let f = cat(&[
            &eth(0x88A8),
            &[0, 13, 0x81, 0x00],
            &[0, 10, 0x08, 0x06],
            &[0; 28],
        ]);
        assert_eq!(decode(linktype::ETHERNET, &f), NOT_IP);
        let f = cat(&[&eth(0x8100), &[0, 13]]);
        assert_eq!(
            decode(linktype::ETHERNET, &f),
            error(Layer::Encapsulation, DecodeReason::Truncated)
        );
    }

    #[test]
    fn mpls_label_stack() {
        // Two labels, the second with bottom-of-stack set.
        let f = cat(&[
            &eth(0x8847),
            &[0, 0x01, 0x00, 64],
            &[0, 0x02, 0x01, 64],
            &ipv4_tcp(),
        ]);
        assert_v4_tcp(&ip(decode(linktype::ETHERNET, &f)));
        let f = cat(&[&eth(0x8848), &[0, 0x02, 0x01, 64], &ipv6_udp()]);
        assert_v6_udp(&ip(decode(linktype::ETHERNET, &f)));
        // A pseudowire control word (first nibble 0): not IP.
        let f = cat(&[&eth(0x8847), &[0, 0x02, 0x01, 64], &[0; 30]]);
        assert_eq!(decode(linktype::ETHERNET, &f), NOT_IP);
        // VLAN then MPLS.
        let f = cat(&[
            &eth(0x8100),
            &[0, 7, 0x88, 0x47],
            &[0, 0x02, 0x01, 64],
            &ipv4_tcp(),
        ]);
        assert_eq!(ip(decode(linktype::ETHERNET, &f)).vlan.as_slice(), &[7]);
        let f = cat(&[&eth(0x8847), &[0, 0x01, 0x00, 64]]);
        assert_eq!(
            decode(linktype::ETHERNET, &f),
            error(Layer::Encapsulation, DecodeReason::Truncated)
        );
    }

    #[test]
    fn pppoe_session() {
        let v6 = ipv6_udp();
        let mut pppoe = vec![0x11, 0x00, 0x12, 0x34];
        pppoe.extend_from_slice(&u16::try_from(v6.len() + 2).unwrap().to_be_bytes());
        let f = cat(&[&eth(0x8864), &pppoe, &[0x00, 0x57], &v6]);
        assert_v6_udp(&ip(decode(linktype::ETHERNET, &f)));
        let f = cat(&[&eth(0x8864), &pppoe, &[0x00, 0x21], &ipv4_tcp()]);
        assert_v4_tcp(&ip(decode(linktype::ETHERNET, &f)));
        // LCP and PPPoE discovery carry no IP.
        let f = cat(&[&eth(0x8864), &pppoe, &[0xC0, 0x21], &[1, 1, 0, 4]]);
        assert_eq!(decode(linktype::ETHERNET, &f), NOT_IP);
        assert_eq!(
            decode(linktype::ETHERNET, &cat(&[&eth(0x8863), &pppoe])),
            NOT_IP
        );
    }

    #[test]
    fn non_ip_ethernet() {
        assert_eq!(
            decode(linktype::ETHERNET, &cat(&[&eth(0x0806), &[0; 28]])),
            NOT_IP
        );
        // 802.3 length field then LLC.
        assert_eq!(
            decode(linktype::ETHERNET, &cat(&[&eth(38), &[0x42, 0x42, 3]])),
            NOT_IP
        );
        assert_eq!(
            decode(linktype::ETHERNET, &[0; 13]),
            error(Layer::Link, DecodeReason::Truncated)
        );
    }

    #[test]
    fn ipv4_options_are_skipped() {
        let seg = udp(1234, 53, 3);
        let p = cat(&[
            &ipv4_hdr(ip_proto::UDP, seg.len(), 1, 0, &[0x94, 4, 0, 0, 1, 0, 0, 0]),
            &seg,
        ]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!((info.sport, info.dport), (1234, 53));
        assert_eq!(info.ip_len, 39);
        assert_eq!(info.payload_len, 3);
        // Options cut by the capture: addresses only.
        let info = ip(decode(linktype::RAW, &p[..24]));
        assert_eq!(info.truncated, Some(Layer::Ip));
        assert_eq!(info.src, v4(A4));
        assert_eq!(info.sport, 0);
    }

    #[test]
    fn bad_ihl_and_total_length() {
        let mut p = ipv4_tcp();
        p[0] = 0x44;
        assert_eq!(
            decode(linktype::RAW, &p),
            error(Layer::Ip, DecodeReason::BadLength)
        );
        let mut p = ipv4_tcp();
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            decode(linktype::RAW, &p),
            error(Layer::Ip, DecodeReason::BadLength)
        );
        let mut p = ipv4_tcp();
        p[0] = 0x4F; // 60-byte header but total length 50
        assert_eq!(
            decode(linktype::RAW, &p),
            error(Layer::Ip, DecodeReason::BadLength)
        );
    }

    #[test]
    fn ip_header_cut_before_addresses() {
        let p = ipv4_tcp();
        assert_eq!(
            decode(linktype::RAW, &p[..19]),
            error(Layer::Ip, DecodeReason::Truncated)
        );
        let p = ipv6_udp();
        assert_eq!(
            decode(linktype::RAW, &p[..39]),
            error(Layer::Ip, DecodeReason::Truncated)
        );
        assert_eq!(
            decode(linktype::ETHERNET, &eth(0x86DD)),
            error(Layer::Ip, DecodeReason::Truncated)
        );
    }

    #[test]
    fn ipv4_first_and_later_fragments() {
        let seg = udp(5000, 6000, 100);
        // First fragment: MF set, offset 0; only 24 bytes of payload here.
        let mut first = ipv4_hdr(ip_proto::UDP, 24, 0xBEEF, 0x2000, &[]);
        first.extend_from_slice(&seg[..24]);
        let info = ip(decode(linktype::RAW, &first));
        assert_eq!(info.fragment, Fragment::First { ident: 0xBEEF });
        assert_eq!((info.sport, info.dport), (5000, 6000));
        assert_eq!(info.ip_len, 44);
        assert_eq!(info.truncated, None);
        // Later fragment: offset 3 (24 bytes), no ports even if bytes look like ports.
        let mut later = ipv4_hdr(ip_proto::UDP, 84, 0xBEEF, 3, &[]);
        later.extend_from_slice(&seg[24..]);
        let info = ip(decode(linktype::RAW, &later));
        assert_eq!(info.fragment, Fragment::Later { ident: 0xBEEF });
        assert_eq!((info.sport, info.dport), (0, 0));
        assert_eq!(info.proto, ip_proto::UDP);
        assert_eq!(info.payload_len, 84);
    }

    #[test]
    fn ipv6_extension_headers_and_atomic_fragment() {
        let seg = tcp(40000, 443, tcp_flags::SYN, 0);
        let hop = [60, 0, 1, 4, 0, 0, 0, 0]; // -> destination options, PadN
        let dest = [44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // 16 bytes -> fragment
        let frag = [ip_proto::TCP, 0, 0, 0, 0, 0, 0, 9]; // offset 0, M=0: atomic
        let ext = cat(&[&hop, &dest, &frag]);
        let p = cat(&[&ipv6_hdr(0, ext.len() + seg.len()), &ext, &seg]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!(info.proto, ip_proto::TCP);
        assert_eq!(info.fragment, Fragment::None);
        assert_eq!(
            (info.sport, info.dport, info.tcp_flags),
            (40000, 443, tcp_flags::SYN)
        );
        assert_eq!(info.ip_len, 40 + 32 + 20);
        assert_eq!(info.payload_len, 0);
        // AH (length in 4-byte units + 2) then UDP.
        let udp_seg = udp(1, 2, 0);
        let ah = cat(&[&[ip_proto::UDP, 4], &[0; 22]]); // (4 + 2) * 4 = 24 bytes
        let p = cat(&[&ipv6_hdr(51, ah.len() + udp_seg.len()), &ah, &udp_seg]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!((info.proto, info.sport, info.dport), (ip_proto::UDP, 1, 2));
        // Cut inside the destination options: addresses and the next header read so far.
        let p = cat(&[&ipv6_hdr(0, ext.len() + seg.len()), &ext, &seg]);
        let info = ip(decode(linktype::RAW, &p[..40 + 12]));
        assert_eq!(info.truncated, Some(Layer::Ip));
        assert_eq!(info.proto, 44);
    }

    #[test]
    fn ipv6_first_and_later_fragments() {
        let seg = udp(7, 9, 40);
        let first_hdr = [ip_proto::UDP, 0, 0, 1, 0, 0, 0x12, 0x34]; // offset 0, M=1
        let p = cat(&[&ipv6_hdr(44, 8 + 16), &first_hdr, &seg[..16]]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!(info.fragment, Fragment::First { ident: 0x1234 });
        assert_eq!((info.proto, info.sport, info.dport), (ip_proto::UDP, 7, 9));
        let later_hdr = [ip_proto::UDP, 0, 0, 16, 0, 0, 0x12, 0x34]; // offset 2 (16 bytes), M=0
        let p = cat(&[&ipv6_hdr(44, 8 + 32), &later_hdr, &seg[16..]]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!(info.fragment, Fragment::Later { ident: 0x1234 });
        assert_eq!((info.proto, info.sport, info.dport), (ip_proto::UDP, 0, 0));
        assert_eq!(info.payload_len, 32);
    }

    #[test]
    fn tcp_cut_by_snaplen_keeps_what_was_read() {
        let f = cat(&[&eth(0x0800), &ipv4_tcp()]);
        let info = ip(decode(linktype::ETHERNET, &f[..14 + 20 + 6]));
        assert_eq!(info.truncated, Some(Layer::Transport));
        assert_eq!((info.sport, info.dport), (40000, 443));
        assert_eq!(info.tcp_flags, 0);
        assert_eq!(info.ip_len, 50);
        // Flags read, options not: still truncated.
        let info = ip(decode(linktype::ETHERNET, &f[..14 + 20 + 14]));
        assert_eq!(info.tcp_flags, tcp_flags::SYN | tcp_flags::ACK);
        assert_eq!(info.truncated, Some(Layer::Transport));
        assert_eq!(info.payload_len, 10);
        let info = ip(decode(linktype::ETHERNET, &f[..14 + 20 + 2]));
        assert_eq!((info.sport, info.dport), (0, 0));
        assert_eq!(info.truncated, Some(Layer::Transport));
    }

    #[test]
    fn tcp_data_offset_below_five_is_malformed() {
        let mut p = ipv4_tcp();
        p[20 + 12] = 0x20;
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!(info.malformed, Some(Layer::Transport));
        assert_eq!(info.truncated, None);
        assert_eq!((info.sport, info.dport), (40000, 443));
        assert_eq!(info.tcp_flags, tcp_flags::SYN | tcp_flags::ACK);
    }

    #[test]
    fn icmp_echo_id() {
        let icmp = [8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xAA, 0xBB];
        let p = cat(&[&ipv4_hdr(ip_proto::ICMP, icmp.len(), 1, 0, &[]), &icmp]);
        let info = ip(decode(linktype::RAW, &p));
        let want = IcmpInfo {
            icmp_type: 8,
            code: 0,
            echo_id: Some(0x1234),
            quoted: None,
        };
        assert_eq!(info.icmp, Some(want));
        assert_eq!((info.sport, info.dport), (0, 0));
        assert_eq!(info.payload_len, 2);
        let icmp6 = [129, 0, 0, 0, 0xAB, 0xCD, 0, 1];
        let p = cat(&[&ipv6_hdr(ip_proto::ICMPV6, icmp6.len()), &icmp6]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!(info.icmp.and_then(|i| i.echo_id), Some(0xABCD));
        // Echo cut before the identifier.
        let p = cat(&[&ipv4_hdr(ip_proto::ICMP, icmp.len(), 1, 0, &[]), &icmp[..4]]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!(info.truncated, Some(Layer::Transport));
        assert_eq!(info.icmp.map(|i| (i.icmp_type, i.echo_id)), Some((8, None)));
    }

    #[test]
    fn icmp_unreachable_quotes_udp() {
        let inner_udp = udp(33434, 53, 20);
        let mut inner = ipv4_hdr(ip_proto::UDP, inner_udp.len(), 9, 0, &[]);
        inner[12..20].copy_from_slice(&[B4, A4].concat()); // the quoted packet went the other way
        let quote = cat(&[&inner, &inner_udp[..8]]);
        let icmp = cat(&[&[3, 3, 0, 0, 0, 0, 0, 0], &quote]);
        let p = cat(&[&ipv4_hdr(ip_proto::ICMP, icmp.len(), 1, 0, &[]), &icmp]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!((info.sport, info.dport), (0, 0));
        let icmp = info.icmp.unwrap();
        assert_eq!((icmp.icmp_type, icmp.code, icmp.echo_id), (3, 3, None));
        assert_eq!(
            icmp.quoted,
            Some(Quoted {
                src: v4(B4),
                dst: v4(A4),
                proto: ip_proto::UDP,
                sport: 33434,
                dport: 53
            })
        );
        // Quote cut inside the quoted IP header: nothing quoted, still an ICMP packet.
        let short = &p[..20 + 8 + 12];
        let icmp = ip(decode(linktype::RAW, short)).icmp.unwrap();
        assert_eq!(icmp.quoted, None);
    }

    #[test]
    fn icmpv6_error_quotes_ipv6_with_extension_and_udp() {
        let inner_udp = udp(546, 547, 10);
        let dest = [ip_proto::UDP, 0, 1, 4, 0, 0, 0, 0];
        let inner = cat(&[
            &ipv6_hdr(60, dest.len() + inner_udp.len()),
            &dest,
            &inner_udp,
        ]);
        let icmp = cat(&[&[1, 4, 0, 0, 0, 0, 0, 0], &inner]);
        let p = cat(&[&ipv6_hdr(ip_proto::ICMPV6, icmp.len()), &icmp]);
        let info = ip(decode(linktype::RAW, &p));
        let icmp = info.icmp.unwrap();
        assert_eq!((icmp.icmp_type, icmp.code), (1, 4));
        assert_eq!(
            icmp.quoted,
            Some(Quoted {
                src: IpAddr::from(v6(1)),
                dst: IpAddr::from(v6(2)),
                proto: ip_proto::UDP,
                sport: 546,
                dport: 547
            })
        );
    }

    #[test]
    fn nflog_payload_tlv() {
        let pkt = ipv4_tcp();
        let mut f = vec![2, 0, 0, 1]; // AF_INET, version 0, resource id 1
        // TLV 1 (packet header, 4-byte value), a prefix TLV of length 5 padded to 8, the payload.
        f.extend_from_slice(&[8, 0, 1, 0, 0x08, 0x00, 3, 0]);
        f.extend_from_slice(&[5, 0, 10, 0, b'p', 0, 0, 0]);
        f.extend_from_slice(&u16::try_from(4 + pkt.len()).unwrap().to_le_bytes());
        f.extend_from_slice(&9u16.to_le_bytes());
        f.extend_from_slice(&pkt);
        assert_v4_tcp(&ip(decode(linktype::NFLOG, &f)));
        // Payload cut by the snaplen inside TCP.
        let info = ip(decode(linktype::NFLOG, &f[..f.len() - 20]));
        assert_eq!(info.truncated, Some(Layer::Transport));
        assert_eq!(decode(linktype::NFLOG, &f[..14]), NOT_IP_TRUNCATED);
        // TLVs without a payload: a log message, not an IP packet.
        assert_eq!(decode(linktype::NFLOG, &f[..12]), NOT_IP);
        let mut bad = f.clone();
        bad[4] = 2; // TLV length 2 < 4
        assert_eq!(
            decode(linktype::NFLOG, &bad),
            error(Layer::Link, DecodeReason::BadLength)
        );
    }

    const NOT_IP_TRUNCATED: Decoded = Decoded::Error(DecodeError {
        layer: Layer::Link,
        reason: DecodeReason::Truncated,
    });

    #[test]
    fn other_protocols_are_outer_flows() {
        let sctp = [0x0B, 0x59, 0x0B, 0x59, 0, 0, 0, 0, 0, 0, 0, 0];
        let p = cat(&[&ipv4_hdr(132, sctp.len(), 1, 0, &[]), &sctp]);
        let info = ip(decode(linktype::RAW, &p));
        assert_eq!((info.proto, info.sport, info.dport), (132, 0, 0));
        assert_eq!(info.payload_len, 12);
        let p = cat(&[&ipv4_hdr(41, 40, 1, 0, &[]), &ipv6_udp()[..40]]);
        assert_eq!(ip(decode(linktype::RAW, &p)).proto, 41);
    }

    /// Replays every capture of the shared corpus that has a tshark
    /// `.packets.tsv` (dissection with reassembly off) and compares the outer
    /// flow fields packet by packet.
    #[test]
    fn corpus_matches_tshark() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        let Ok(entries) = std::fs::read_dir(dir.join("pcap")) else {
            eprintln!("skipped: capture corpus not found at {}", dir.display());
            return;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        let (mut compared, mut mismatches) = (0usize, Vec::new());
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let tsv = dir.join(format!("expected/pcap/{name}.packets.tsv"));
            let Ok(text) = std::fs::read_to_string(&tsv) else {
                continue;
            };
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
            let mut reader = crate::capture::CaptureReader::open(&path).unwrap();
            for line in lines {
                let row: Vec<&str> = line.split('\t').collect();
                let field = |name: &str| -> Vec<&str> {
                    let i = header.iter().position(|h| *h == name).unwrap();
                    row.get(i)
                        .filter(|v| !v.is_empty())
                        .map(|v| v.split(';').collect())
                        .unwrap_or_default()
                };
                let first = |name: &str| field(name).first().map(|v| v.to_string());
                let num = |name: &str| {
                    first(name).map(|v| {
                        v.strip_prefix("0x")
                            .map(|h| u32::from_str_radix(h, 16).unwrap())
                            .unwrap_or_else(|| v.parse::<u32>().unwrap())
                    })
                };
                let pkt = reader.next_packet().unwrap().unwrap();
                let got = decode(pkt.linktype, pkt.data);
                let mut fail =
                    |what: &str| mismatches.push(format!("{name} #{}: {what}: {got:?}", row[0]));
                compared += 1;
                let protocols = first("frame.protocols").unwrap_or_default();
                let outer = protocols.split(':').find(|p| *p == "ip" || *p == "ipv6");
                let Decoded::Ip(info) = &got else {
                    if outer.is_some() {
                        fail("tshark saw IP");
                    }
                    continue;
                };
                let (src, dst) = match outer {
                    Some("ip") => (first("ip.src"), first("ip.dst")),
                    Some(_) => (first("ipv6.src"), first("ipv6.dst")),
                    None => {
                        fail("tshark saw no IP");
                        continue;
                    }
                };
                if Some(info.src.to_string()) != src || Some(info.dst.to_string()) != dst {
                    fail("addresses");
                }
                if outer == Some("ip") && num("ip.proto") != Some(u32::from(info.proto)) {
                    fail("ip.proto");
                }
                if outer == Some("ip") && num("ip.len") != Some(info.ip_len) {
                    fail("ip.len");
                }
                if outer == Some("ipv6") && num("ipv6.plen").map(|p| p + 40) != Some(info.ip_len) {
                    fail("ipv6.plen");
                }
                let vlans: Vec<u32> = field("vlan.id")
                    .iter()
                    .map(|v| v.parse().unwrap())
                    .filter(|v| *v != 0)
                    .collect();
                if vlans
                    != info
                        .vlan
                        .as_slice()
                        .iter()
                        .map(|v| u32::from(*v))
                        .collect::<Vec<_>>()
                {
                    fail("vlan.id");
                }
                let later = matches!(info.fragment, Fragment::Later { .. });
                let ports = |p: &str| (num(&format!("{p}.srcport")), num(&format!("{p}.dstport")));
                let ours = (Some(u32::from(info.sport)), Some(u32::from(info.dport)));
                match info.proto {
                    ip_proto::TCP if !later && ports("tcp").0.is_some() => {
                        if ports("tcp") != ours {
                            fail("tcp ports");
                        }
                        if num("tcp.flags").map(|f| f & 0xFF) != Some(u32::from(info.tcp_flags)) {
                            fail("tcp.flags");
                        }
                    }
                    ip_proto::UDP if !later && ports("udp").0.is_some() && ports("udp") != ours => {
                        fail("udp ports");
                    }
                    ip_proto::ICMP | ip_proto::ICMPV6 => {
                        let t = if info.proto == ip_proto::ICMP {
                            "icmp.type"
                        } else {
                            "icmpv6.type"
                        };
                        if num(t) != info.icmp.map(|i| u32::from(i.icmp_type)) {
                            fail("icmp type");
                        }
                        if let Some(q) = info.icmp.and_then(|i| i.quoted) {
                            let v = if q.src.is_ipv4() { "ip" } else { "ipv6" };
                            let quoted_src = field(&format!("{v}.src"))
                                .get(usize::from(outer == Some(v)))
                                .map(|s| s.to_string());
                            if quoted_src != Some(q.src.to_string()) {
                                fail("quoted src");
                            }
                            let inner = if q.proto == ip_proto::TCP {
                                "tcp"
                            } else {
                                "udp"
                            };
                            if q.sport != 0
                                && ports(inner)
                                    != (Some(u32::from(q.sport)), Some(u32::from(q.dport)))
                            {
                                fail("quoted ports");
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} of {compared} packets differ:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
        assert!(compared > 3000, "only {compared} packets compared");
    }

    /// Frames of every kind `decode_plain` reads, with options, padding and
    /// a payload, and of kinds it must leave to `decode`.
    fn plain_and_other_frames() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let v6_tcp = {
            let seg = tcp(443, 40000, tcp_flags::ACK, 30);
            cat(&[&ipv6_hdr(ip_proto::TCP, seg.len()), &seg])
        };
        let v4_udp = {
            let seg = udp(5353, 53, 12);
            cat(&[&ipv4_hdr(ip_proto::UDP, seg.len(), 3, 0, &[]), &seg])
        };
        let v4_options_tcp = {
            let seg = tcp(40000, 22, tcp_flags::SYN, 0);
            cat(&[
                &ipv4_hdr(ip_proto::TCP, seg.len(), 9, 0x4000, &[1, 1, 1, 0]),
                &seg,
            ])
        };
        let plain = vec![
            cat(&[&eth(0x0800), &ipv4_tcp()]),
            cat(&[&eth(0x86DD), &ipv6_udp()]),
            cat(&[&eth(0x86DD), &v6_tcp]),
            cat(&[&eth(0x0800), &v4_udp]),
            cat(&[&eth(0x0800), &v4_options_tcp]),
            // Ethernet padding after a short datagram.
            cat(&[&eth(0x0800), &v4_udp, &[0; 6]]),
            // Cut by the snaplen inside the payload (the header is whole).
            cat(&[&eth(0x0800), &ipv4_tcp()])[..14 + 20 + 20 + 3].to_vec(),
        ];
        let mapped = |at: usize| {
            let mut h = ipv6_udp();
            h[at..at + 16].copy_from_slice(&Ipv4Addr::from(A4).to_ipv6_mapped().octets());
            h
        };
        let mut bad_doff = cat(&[&eth(0x0800), &ipv4_tcp()]);
        bad_doff[14 + 20 + 12] = 0x40;
        let mut jumbo = cat(&[&eth(0x86DD), &ipv6_udp()]);
        jumbo[14 + 4..14 + 6].copy_from_slice(&[0, 0]);
        // An Ethernet frame of an IPv4 packet with these flags and fragment offset.
        let eth_v4 = |proto: u8, frag: u16, seg: &[u8]| {
            cat(&[&eth(0x0800), &ipv4_hdr(proto, seg.len(), 5, frag, &[]), seg])
        };
        let icmp = eth_v4(ip_proto::ICMP, 0, &[8, 0, 0, 0, 0, 7, 0, 1]);
        let first_fragment = eth_v4(ip_proto::TCP, 0x2000, &tcp(1, 2, 0, 8));
        let later_fragment = eth_v4(ip_proto::TCP, 0x0003, &tcp(1, 2, 0, 8));
        let hop_by_hop = {
            let seg = udp(1, 2, 0);
            let mut h = ipv6_hdr(0, 8 + seg.len());
            h.extend_from_slice(&[ip_proto::UDP, 0, 0, 0, 0, 0, 0, 0]);
            cat(&[&eth(0x86DD), &h, &seg])
        };
        let other = vec![
            cat(&[&eth(0x8100), &[0, 5, 0x08, 0x00], &ipv4_tcp()]),
            cat(&[&eth(0x0800), &ipv4_tcp()])[..14 + 20 + 12].to_vec(),
            cat(&[&eth(0x86DD), &mapped(8)]),
            cat(&[&eth(0x86DD), &mapped(24)]),
            bad_doff,
            jumbo,
            icmp,
            first_fragment,
            later_fragment,
            hop_by_hop,
            cat(&[&eth(0x0806), &[0; 28]]),
        ];
        (plain, other)
    }

    #[test]
    fn plain_packets_are_read_as_decode_reads_them() {
        let (plain, other) = plain_and_other_frames();
        for f in &plain {
            // Read as decode reads it, and keyed alike.
            assert!(check_plain(linktype::ETHERNET, f), "not plain: {f:02x?}");
            let p = decode_plain(linktype::ETHERNET, f).unwrap();
            // The same packet under the other link types read this way.
            let ip_part = &f[14..];
            let sll = cat(&[
                &[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0],
                &f[12..14],
                ip_part,
            ]);
            let sll2 = cat(&[&f[12..14], &[0; 18], ip_part]);
            let version_link = if ip_part[0] >> 4 == 4 {
                linktype::IPV4
            } else {
                linktype::IPV6
            };
            for (lt, frame) in [
                (linktype::LINUX_SLL, &sll[..]),
                (linktype::LINUX_SLL2, &sll2[..]),
                (linktype::RAW, ip_part),
                (linktype::RAW_12, ip_part),
                (linktype::RAW_14, ip_part),
                (version_link, ip_part),
            ] {
                assert!(check_plain(lt, frame), "not plain as {lt}");
                let q = decode_plain(lt, frame).unwrap();
                assert_eq!((q.src, q.sport, q.ip_len), (p.src, p.sport, p.ip_len));
            }
        }
        // Link types left to decode, and an IPv4 packet where IPv6 is declared.
        assert_eq!(
            decode_plain(linktype::NULL, &cat(&[&[2, 0, 0, 0], &ipv4_tcp()])),
            None
        );
        assert_eq!(decode_plain(linktype::IPV6, &ipv4_tcp()), None);
        let udp = decode_plain(linktype::ETHERNET, &plain[3]).unwrap();
        assert_eq!(
            (udp.sport, udp.dport, udp.udp_payload),
            (5353, 53, &[0xCD; 12][..])
        );
        let padded = decode_plain(linktype::ETHERNET, &plain[5]).unwrap();
        assert_eq!(
            padded.udp_payload, udp.udp_payload,
            "padding is not payload"
        );
        for f in &other {
            assert_eq!(decode_plain(linktype::ETHERNET, f), None, "{f:02x?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever `decode_plain` reads, `decode` reads the same, and the
        /// table keys it the same way.
        #[test]
        fn plain_agrees_with_decode_on_mutated_frames(
            which in any::<proptest::sample::Index>(),
            link in 0usize..6,
            flips in proptest::collection::vec((0usize..100, any::<u8>()), 0..6),
            cut in 0usize..120,
        ) {
            let (plain, other) = plain_and_other_frames();
            let frames: Vec<Vec<u8>> = plain.into_iter().chain(other).collect();
            let eth = which.get(&frames).clone();
            // The frame's IP part under another link type.
            let (lt, mut f) = match link {
                0 => (linktype::ETHERNET, eth),
                1 => (linktype::LINUX_SLL, cat(&[&[0; 2], &eth])),
                2 => (linktype::LINUX_SLL2, cat(&[&eth[12..14], &[0; 18], &eth[14..]])),
                3 => (linktype::RAW, eth[14..].to_vec()),
                4 => (linktype::IPV4, eth[14..].to_vec()),
                _ => (linktype::IPV6, eth[14..].to_vec()),
            };
            for (at, v) in flips {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(cut);
            check_plain(lt, &f);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_panics_on_arbitrary_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            which in 0..linktype::SUPPORTED.len() + 1,
        ) {
            let lt = linktype::SUPPORTED.get(which).copied().unwrap_or(147);
            let _ = decode(lt, &data);
        }

        #[test]
        fn never_panics_on_mutated_packets(
            flips in proptest::collection::vec((0usize..80, any::<u8>()), 0..8),
            cut in 0usize..80,
        ) {
            let mut f = cat(&[&eth(0x8100), &[0, 5, 0x08, 0x00], &ipv4_tcp()]);
            for (at, v) in flips {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(cut);
            let _ = decode(linktype::ETHERNET, &f);
            let _ = decode(linktype::RAW, f.get(18..).unwrap_or_default());
        }
    }

    /// `cargo test --release -p zonewatch-collector decode_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "micro-benchmark: run with --release"]
    fn decode_speed() {
        let frames = [
            cat(&[&eth(0x0800), &ipv4_tcp()]),
            cat(&[&eth(0x86DD), &ipv6_udp()]),
        ];
        for f in &frames {
            let n = 50_000_000u32;
            let start = std::time::Instant::now();
            let mut sum = 0u64;
            for _ in 0..n {
                if let Decoded::Ip(info) = decode(linktype::ETHERNET, std::hint::black_box(f)) {
                    sum += u64::from(info.sport) + u64::from(info.ip_len);
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "decode: {:.1} M packets/s ({sum})",
                f64::from(n) / secs / 1e6
            );
        }
    }
}
