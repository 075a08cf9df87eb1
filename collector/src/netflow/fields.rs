//! Information elements we map (NetFlow v9 field types and IPFIX IEs share
//! their numbers), resolved once per template into a [`FieldKind`], and the
//! per-record accumulator that turns field values into an [`ExportRecord`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::export::{ExportProtocol, ExportRecord, ReverseCounters, StatedDirection};
use crate::packet::{self, Decoded, ip_proto};
use crate::time::Timestamp;

use super::template::VARLEN;

/// IANA private enterprise number of RFC 5103 reverse information elements.
pub(super) const REVERSE_PEN: u32 = 29305;

/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: i64 = 2_208_988_800;

/// IE numbers (IANA "IPFIX Information Elements"; v9 field types agree).
pub(super) mod ie {
    pub const OCTET_DELTA: u16 = 1;
    pub const PACKET_DELTA: u16 = 2;
    pub const PROTOCOL: u16 = 4;
    pub const TCP_FLAGS: u16 = 6;
    pub const SRC_PORT: u16 = 7;
    pub const SRC_V4: u16 = 8;
    pub const INPUT_IF: u16 = 10;
    pub const DST_PORT: u16 = 11;
    pub const DST_V4: u16 = 12;
    pub const OUTPUT_IF: u16 = 14;
    pub const LAST_SWITCHED: u16 = 21;
    pub const FIRST_SWITCHED: u16 = 22;
    pub const SRC_V6: u16 = 27;
    pub const DST_V6: u16 = 28;
    pub const ICMP_TYPE_CODE_V4: u16 = 32;
    pub const SAMPLING_INTERVAL: u16 = 34;
    pub const SAMPLER_ID: u16 = 48;
    pub const SAMPLER_RANDOM_INTERVAL: u16 = 50;
    pub const VLAN_ID: u16 = 58;
    pub const POST_VLAN_ID: u16 = 59;
    pub const OCTET_TOTAL: u16 = 85;
    pub const PACKET_TOTAL: u16 = 86;
    pub const ICMP_TYPE_CODE_V6: u16 = 139;
    pub const FLOW_START_SECONDS: u16 = 150;
    pub const FLOW_END_SECONDS: u16 = 151;
    pub const FLOW_START_MILLIS: u16 = 152;
    pub const FLOW_END_MILLIS: u16 = 153;
    pub const FLOW_START_MICROS: u16 = 154;
    pub const FLOW_END_MICROS: u16 = 155;
    pub const FLOW_START_NANOS: u16 = 156;
    pub const FLOW_END_NANOS: u16 = 157;
    pub const FLOW_START_DELTA_MICROS: u16 = 158;
    pub const FLOW_END_DELTA_MICROS: u16 = 159;
    pub const SYSTEM_INIT_MILLIS: u16 = 160;
    pub const ICMP_TYPE_V4: u16 = 176;
    pub const ICMP_CODE_V4: u16 = 177;
    pub const ICMP_TYPE_V6: u16 = 178;
    pub const ICMP_CODE_V6: u16 = 179;
    pub const BIFLOW_DIRECTION: u16 = 239;
    pub const DOT1Q_VLAN_ID: u16 = 243;
    pub const SELECTOR_ID: u16 = 302;
    pub const SAMPLING_PACKET_INTERVAL: u16 = 305;
    pub const SAMPLING_PACKET_SPACE: u16 = 306;
    pub const DATA_LINK_FRAME_SECTION: u16 = 315;
}

/// What a field's value means to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldKind {
    Skip,
    Octets,
    Packets,
    OctetsTotal,
    PacketsTotal,
    Proto,
    TcpFlags,
    SrcPort,
    DstPort,
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    IcmpTypeCode,
    IcmpType,
    IcmpCode,
    InputIf,
    OutputIf,
    Vlan,
    PostVlan,
    Dot1qVlan,
    SamplingInterval,
    SamplerRandomInterval,
    SamplingPacketInterval,
    SamplingPacketSpace,
    SamplerId,
    SystemInit,
    BiflowDirection,
    FirstUptime,
    LastUptime,
    StartSecs,
    EndSecs,
    StartMillis,
    EndMillis,
    StartNtp,
    EndNtp,
    StartDeltaMicros,
    EndDeltaMicros,
    FrameSection,
    RevOctets,
    RevPackets,
    RevTcpFlags,
}

/// Resolves a template field. Values whose length cannot hold the element
/// (an IPv4 address that is not 4 bytes, an integer over 8 bytes) are skipped.
pub(super) fn kind(enterprise: u32, id: u16, len: u16) -> FieldKind {
    use FieldKind as K;
    let int = len != VARLEN && (1..=8).contains(&len);
    if enterprise == REVERSE_PEN {
        return match id {
            ie::OCTET_DELTA | ie::OCTET_TOTAL if int => K::RevOctets,
            ie::PACKET_DELTA | ie::PACKET_TOTAL if int => K::RevPackets,
            ie::TCP_FLAGS if int => K::RevTcpFlags,
            _ => K::Skip,
        };
    }
    if enterprise != 0 {
        return K::Skip;
    }
    match id {
        ie::OCTET_DELTA if int => K::Octets,
        ie::PACKET_DELTA if int => K::Packets,
        ie::OCTET_TOTAL if int => K::OctetsTotal,
        ie::PACKET_TOTAL if int => K::PacketsTotal,
        ie::PROTOCOL if int => K::Proto,
        ie::TCP_FLAGS if int => K::TcpFlags,
        ie::SRC_PORT if int => K::SrcPort,
        ie::DST_PORT if int => K::DstPort,
        ie::SRC_V4 if len == 4 => K::SrcV4,
        ie::DST_V4 if len == 4 => K::DstV4,
        ie::SRC_V6 if len == 16 => K::SrcV6,
        ie::DST_V6 if len == 16 => K::DstV6,
        ie::ICMP_TYPE_CODE_V4 | ie::ICMP_TYPE_CODE_V6 if int => K::IcmpTypeCode,
        ie::ICMP_TYPE_V4 | ie::ICMP_TYPE_V6 if int => K::IcmpType,
        ie::ICMP_CODE_V4 | ie::ICMP_CODE_V6 if int => K::IcmpCode,
        ie::INPUT_IF if int => K::InputIf,
        ie::OUTPUT_IF if int => K::OutputIf,
        ie::VLAN_ID if int => K::Vlan,
        ie::POST_VLAN_ID if int => K::PostVlan,
        ie::DOT1Q_VLAN_ID if int => K::Dot1qVlan,
        ie::SAMPLING_INTERVAL if int => K::SamplingInterval,
        ie::SAMPLER_RANDOM_INTERVAL if int => K::SamplerRandomInterval,
        ie::SAMPLING_PACKET_INTERVAL if int => K::SamplingPacketInterval,
        ie::SAMPLING_PACKET_SPACE if int => K::SamplingPacketSpace,
        ie::SAMPLER_ID | ie::SELECTOR_ID if int => K::SamplerId,
        ie::SYSTEM_INIT_MILLIS if int => K::SystemInit,
        ie::BIFLOW_DIRECTION if int => K::BiflowDirection,
        ie::FIRST_SWITCHED if int => K::FirstUptime,
        ie::LAST_SWITCHED if int => K::LastUptime,
        ie::FLOW_START_SECONDS if int => K::StartSecs,
        ie::FLOW_END_SECONDS if int => K::EndSecs,
        ie::FLOW_START_MILLIS if int => K::StartMillis,
        ie::FLOW_END_MILLIS if int => K::EndMillis,
        ie::FLOW_START_MICROS | ie::FLOW_START_NANOS if len == 8 => K::StartNtp,
        ie::FLOW_END_MICROS | ie::FLOW_END_NANOS if len == 8 => K::EndNtp,
        ie::FLOW_START_DELTA_MICROS if int => K::StartDeltaMicros,
        ie::FLOW_END_DELTA_MICROS if int => K::EndDeltaMicros,
        ie::DATA_LINK_FRAME_SECTION => K::FrameSection,
        // samplerMode (49) and samplingAlgorithm (35) name the method, not
        // the rate; NAT fields (225-228) are not part of the flow key.
        _ => K::Skip,
    }
}

/// An unsigned big-endian integer of 1 to 8 bytes (reduced-size encoding);
/// longer values keep their low 8 bytes.
#[inline]
pub(super) fn uint(v: &[u8]) -> u64 {
    v.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn u16_of(v: &[u8]) -> u16 {
    u16::try_from(uint(v)).unwrap_or(u16::MAX)
}

fn u32_of(v: &[u8]) -> u32 {
    u32::try_from(uint(v)).unwrap_or(u32::MAX)
}

fn u8_of(v: &[u8]) -> u8 {
    // The low byte: a 2-byte tcpControlBits (IPFIX) carries the classic
    // flags in its low byte.
    v.last().copied().unwrap_or(0)
}

/// A dateTimeMicroseconds / dateTimeNanoseconds value (NTP format: seconds
/// since 1900, 32-bit binary fraction).
fn ntp(v: &[u8]) -> Option<Timestamp> {
    let v = v.first_chunk::<8>()?;
    let secs = i64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
    let frac = u64::from(u32::from_be_bytes([v[4], v[5], v[6], v[7]]));
    let nanos = (frac * 1_000_000_000) >> 32;
    Some(Timestamp::from_secs_nanos(secs - NTP_UNIX_OFFSET, nanos))
}

fn millis(ms: u64) -> Timestamp {
    Timestamp(
        i64::try_from(ms)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000),
    )
}

/// The datagram header values record times are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Clock {
    /// Export time (header unix_secs [+ nsecs] / IPFIX export time).
    pub export: Timestamp,
    /// v5 / v9 header sysUptime in milliseconds (None for IPFIX).
    pub sys_uptime_ms: Option<u32>,
}

impl Clock {
    /// The time of a sysUptime value, from the header's uptime (v9) or the
    /// exporter's system init time (IPFIX); the export time when neither is known.
    pub fn uptime(&self, up_ms: u32, system_init_ms: Option<u64>) -> Timestamp {
        if let Some(now_up) = self.sys_uptime_ms {
            let back = i64::from(now_up.wrapping_sub(up_ms).cast_signed());
            Timestamp(self.export.0.saturating_sub(back.saturating_mul(1_000_000)))
        } else if let Some(init) = system_init_ms {
            millis(init.saturating_add(u64::from(up_ms)))
        } else {
            self.export
        }
    }
}

/// Where a data record came from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin {
    /// v9 or IPFIX.
    pub protocol: ExportProtocol,
    /// The exporter's address.
    pub exporter: IpAddr,
    /// Source id / observation domain.
    pub domain: u32,
    /// The template that decoded it.
    pub template_id: u16,
}

/// Field values of one data record, as read.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Acc<'a> {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    proto: u8,
    sport: Option<u16>,
    dport: Option<u16>,
    octets: Option<u64>,
    packets: Option<u64>,
    octets_total: Option<u64>,
    packets_total: Option<u64>,
    tcp_flags: u8,
    icmp_type_code: Option<u16>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    input_if: Option<u32>,
    output_if: Option<u32>,
    vlan: Option<u16>,
    post_vlan: Option<u16>,
    dot1q_vlan: Option<u16>,
    sampling_interval: Option<u64>,
    random_interval: Option<u64>,
    packet_interval: Option<u64>,
    packet_space: Option<u64>,
    pub sampler_id: Option<u64>,
    pub system_init_ms: Option<u64>,
    direction: Option<u8>,
    first_up: Option<u32>,
    last_up: Option<u32>,
    first_abs: Option<Timestamp>,
    last_abs: Option<Timestamp>,
    start_delta_us: Option<u64>,
    end_delta_us: Option<u64>,
    frame: Option<&'a [u8]>,
    rev_octets: Option<u64>,
    rev_packets: Option<u64>,
    rev_flags: Option<u8>,
}

impl<'a> Acc<'a> {
    /// Takes one field value.
    #[inline]
    pub fn set(&mut self, kind: FieldKind, v: &'a [u8]) {
        use FieldKind as K;
        match kind {
            K::Skip => {}
            K::Octets => self.octets = Some(uint(v)),
            K::Packets => self.packets = Some(uint(v)),
            K::OctetsTotal => self.octets_total = Some(uint(v)),
            K::PacketsTotal => self.packets_total = Some(uint(v)),
            K::Proto => self.proto = u8_of(v),
            K::TcpFlags => self.tcp_flags |= u8_of(v),
            K::SrcPort => self.sport = Some(u16_of(v)),
            K::DstPort => self.dport = Some(u16_of(v)),
            K::SrcV4 => address(
                &mut self.src,
                v.first_chunk::<4>().map(|a| IpAddr::V4(Ipv4Addr::from(*a))),
            ),
            K::DstV4 => address(
                &mut self.dst,
                v.first_chunk::<4>().map(|a| IpAddr::V4(Ipv4Addr::from(*a))),
            ),
            K::SrcV6 => address(
                &mut self.src,
                v.first_chunk::<16>()
                    .map(|a| IpAddr::V6(Ipv6Addr::from(*a))),
            ),
            K::DstV6 => address(
                &mut self.dst,
                v.first_chunk::<16>()
                    .map(|a| IpAddr::V6(Ipv6Addr::from(*a))),
            ),
            K::IcmpTypeCode => self.icmp_type_code = Some(u16_of(v)),
            K::IcmpType => self.icmp_type = Some(u8_of(v)),
            K::IcmpCode => self.icmp_code = Some(u8_of(v)),
            K::InputIf => self.input_if = Some(u32_of(v)),
            K::OutputIf => self.output_if = Some(u32_of(v)),
            K::Vlan => self.vlan = Some(u16_of(v)),
            K::PostVlan => self.post_vlan = Some(u16_of(v)),
            K::Dot1qVlan => self.dot1q_vlan = Some(u16_of(v)),
            K::SamplingInterval => self.sampling_interval = Some(uint(v)),
            K::SamplerRandomInterval => self.random_interval = Some(uint(v)),
            K::SamplingPacketInterval => self.packet_interval = Some(uint(v)),
            K::SamplingPacketSpace => self.packet_space = Some(uint(v)),
            K::SamplerId => self.sampler_id = Some(uint(v)),
            K::SystemInit => self.system_init_ms = Some(uint(v)),
            K::BiflowDirection => self.direction = Some(u8_of(v)),
            K::FirstUptime => self.first_up = Some(u32_of(v)),
            K::LastUptime => self.last_up = Some(u32_of(v)),
            K::StartSecs => {
                self.first_abs = Some(Timestamp::from_secs_nanos(i64::from(u32_of(v)), 0))
            }
            K::EndSecs => self.last_abs = Some(Timestamp::from_secs_nanos(i64::from(u32_of(v)), 0)),
            K::StartMillis => self.first_abs = Some(millis(uint(v))),
            K::EndMillis => self.last_abs = Some(millis(uint(v))),
            K::StartNtp => self.first_abs = ntp(v),
            K::EndNtp => self.last_abs = ntp(v),
            K::StartDeltaMicros => self.start_delta_us = Some(uint(v)),
            K::EndDeltaMicros => self.end_delta_us = Some(uint(v)),
            K::FrameSection => self.frame = Some(v),
            K::RevOctets => self.rev_octets = Some(uint(v)),
            K::RevPackets => self.rev_packets = Some(uint(v)),
            K::RevTcpFlags => self.rev_flags = Some(self.rev_flags.unwrap_or(0) | u8_of(v)),
        }
    }

    /// The sampling rate the record's own fields state, if any:
    /// samplingInterval, samplerRandomInterval, or
    /// (samplingPacketInterval + samplingPacketSpace) / samplingPacketInterval.
    pub fn own_sampling(&self) -> Option<u32> {
        let rate = match (
            self.sampling_interval,
            self.random_interval,
            self.packet_interval,
        ) {
            (Some(i), _, _) if i > 0 => i,
            (_, Some(i), _) if i > 0 => i,
            (_, _, Some(i)) if i > 0 => i.saturating_add(self.packet_space.unwrap_or(0)) / i,
            _ => return None,
        };
        Some(u32::try_from(rate).unwrap_or(u32::MAX))
    }

    /// The flow record, when the record carried addresses (or a data-link
    /// frame section the packet decoder could read them from).
    pub fn finish(
        self,
        origin: &Origin,
        clock: &Clock,
        system_init_ms: Option<u64>,
        sampling: u32,
    ) -> Option<ExportRecord> {
        let mut rec = ExportRecord {
            protocol: origin.protocol,
            exporter: origin.exporter,
            domain: origin.domain,
            template_id: Some(origin.template_id),
            first: clock.export,
            last: clock.export,
            src: self.src?,
            dst: self.dst?,
            proto: self.proto,
            sport: self.sport.unwrap_or(0),
            dport: self.dport.unwrap_or(0),
            packets: self.packets.or(self.packets_total).unwrap_or(0),
            bytes: self.octets.or(self.octets_total).unwrap_or(0),
            tcp_flags: self.tcp_flags,
            sampling,
            direction: match self.direction {
                Some(1) => Some(StatedDirection::SrcIsInitiator),
                Some(2) => Some(StatedDirection::SrcIsResponder),
                _ => None,
            },
            reverse: None,
            vlan: self.vlan.or(self.dot1q_vlan).or(self.post_vlan),
            input_if: self.input_if,
            output_if: self.output_if,
            action: None,
        };
        if self.rev_octets.is_some() || self.rev_packets.is_some() || self.rev_flags.is_some() {
            rec.reverse = Some(ReverseCounters {
                packets: self.rev_packets.unwrap_or(0),
                bytes: self.rev_octets.unwrap_or(0),
                tcp_flags: self.rev_flags.unwrap_or(0),
            });
        }
        if rec.proto == ip_proto::ICMP || rec.proto == ip_proto::ICMPV6 {
            let stated = self
                .icmp_type_code
                .or(match (self.icmp_type, self.icmp_code) {
                    (None, None) => None,
                    (t, c) => Some(u16::from(t.unwrap_or(0)) << 8 | u16::from(c.unwrap_or(0))),
                });
            if let Some(tc) = stated {
                rec.sport = 0;
                rec.dport = tc;
            }
        }
        let init = self.system_init_ms.or(system_init_ms);
        let first = self
            .first_abs
            .or_else(|| self.first_up.map(|up| clock.uptime(up, init)))
            .or_else(|| self.start_delta_us.map(|d| before(clock.export, d)));
        let last = self
            .last_abs
            .or_else(|| self.last_up.map(|up| clock.uptime(up, init)))
            .or_else(|| self.end_delta_us.map(|d| before(clock.export, d)));
        match (first, last) {
            (Some(f), Some(l)) => (rec.first, rec.last) = (f, l),
            (Some(t), None) | (None, Some(t)) => (rec.first, rec.last) = (t, t),
            (None, None) => {}
        }
        Some(rec)
    }

    /// For a record without address fields: fills them from the data-link
    /// frame section (a sampled packet's header), when it decodes to IP.
    /// Returns whether it did.
    pub fn fill_from_frame(&mut self) -> bool {
        if self.src.is_some() && self.dst.is_some() {
            return true;
        }
        let Some(frame) = self.frame else {
            return false;
        };
        let Decoded::Ip(p) = packet::decode(packet::linktype::ETHERNET, frame) else {
            return false;
        };
        self.src = Some(p.src);
        self.dst = Some(p.dst);
        self.proto = p.proto;
        self.sport = Some(p.sport);
        self.dport = Some(p.dport);
        self.tcp_flags |= p.tcp_flags;
        if let Some(icmp) = p.icmp {
            self.icmp_type = Some(icmp.icmp_type);
            self.icmp_code = Some(icmp.code);
        }
        if self.vlan.is_none() {
            self.vlan = p.vlan.as_slice().first().copied();
        }
        // One sampled packet, unless the record counts otherwise.
        if self.packets.is_none() && self.packets_total.is_none() {
            self.packets = Some(1);
        }
        if self.octets.is_none() && self.octets_total.is_none() {
            self.octets = Some(u64::from(p.ip_len));
        }
        true
    }
}

/// Templates that carry both IPv4 and IPv6 address fields fill the unused
/// family with zeros: an unspecified address never replaces a set one.
#[inline]
fn address(slot: &mut Option<IpAddr>, value: Option<IpAddr>) {
    if let Some(v) = value
        && (slot.is_none() || !v.is_unspecified())
    {
        *slot = Some(v);
    }
}

/// `t` minus `us` microseconds.
fn before(t: Timestamp, us: u64) -> Timestamp {
    let ns = i64::try_from(us).unwrap_or(i64::MAX).saturating_mul(1000);
    Timestamp(t.0.saturating_sub(ns))
}
