//! sFlow v5 datagrams: flow samples to [`ExportRecord`]s.
//!
//! An sFlow agent sends XDR-encoded datagrams: a header (version 5, agent
//! address, sub-agent id, sequence number, uptime, sample count) followed by
//! samples. Each flow sample (compact format 1 or expanded format 3) carries
//! the sampling rate, the input and output interfaces and a list of flow
//! records; [`decode`] turns each flow sample into at most one
//! [`ExportRecord`]:
//!
//! * a raw packet header record (format 1; Ethernet, IPv4 or IPv6 headers) is
//!   run through [`crate::packet::decode`], the same decoder as pcap frames,
//!   so `bytes` is the IP length from the sampled IP header even when the
//!   header was cut short by the agent;
//! * otherwise a sampled IPv4 (format 3) or IPv6 (format 4) record gives the
//!   tuple;
//! * an extended switch record (format 1001) gives the VLAN when the sampled
//!   header had no 802.1Q tag.
//!
//! Every record is `packets = 1` with the sample's rate in `sampling`
//! (counters are not scaled here). Counter samples (formats 2 and 4) are
//! counted in [`SflowSummary`], never turned into records. Samples and flow
//! records of other formats or enterprises are skipped by their length and
//! counted as [`SflowSummary::skipped_records`].
//!
//! # Contract (STYLE habit 2)
//!
//! The input is untrusted. Every read goes through a cursor over a borrowed
//! slice that checks the length before it reads (`get` and `first_chunk`,
//! never an unchecked index), each sample and flow record is read inside a
//! sub-cursor bounded by its declared length, wire values are widened with
//! `From` or narrowed with `try_from`, never with `as`, and no allocation
//! depends on a count read from the wire. A datagram that breaks the format
//! returns an [`SflowError`] naming the reason and the byte offset; records
//! decoded from the samples before the fault stay in `out`.

use std::net::IpAddr;

use crate::export::{ExportProtocol, ExportRecord};
use crate::packet::{self, Decoded, PacketInfo, ip_proto, linktype};
use crate::time::Timestamp;

/// What [`decode`] read from one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SflowSummary {
    /// The agent address from the datagram header.
    pub agent: IpAddr,
    /// The sub-agent id (used as the records' observation domain).
    pub sub_agent: u32,
    /// The datagram sequence number (per agent and sub-agent).
    pub sequence: u32,
    /// Flow samples read (formats 1 and 3).
    pub flow_samples: usize,
    /// Counter samples read (formats 2 and 4); counted, not decoded.
    pub counter_samples: usize,
    /// Records appended to `out`.
    pub records: usize,
    /// Samples and flow records of unknown enterprise or format, skipped by length.
    pub skipped_records: usize,
    /// Flow samples that gave no record: the sampled header was not IP (ARP,
    /// an unsupported header protocol, a header cut before the IP addresses)
    /// and no sampled IPv4/IPv6 record stood in for it.
    pub samples_without_ip: usize,
}

/// A datagram that is not valid sFlow v5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sflow datagram from {exporter}: {reason} at byte {offset}")]
pub struct SflowError {
    /// The datagram's source.
    pub exporter: IpAddr,
    /// Stable name for counters: `truncated` (the data ends inside a field),
    /// `bad-version`, `bad-length` (a declared length overruns its
    /// container), `bad-address-type`, `bad-value` (a protocol or port
    /// out of range).
    pub reason: &'static str,
    /// Byte offset in the datagram of the field at fault.
    pub offset: usize,
}

/// Decoder errors before the exporter is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    reason: &'static str,
    offset: usize,
}

const TRUNCATED: &str = "truncated";
const BAD_LENGTH: &str = "bad-length";
const BAD_VALUE: &str = "bad-value";

/// A bounds-checked XDR cursor over a borrowed slice. `base` is the offset
/// of `data` in the datagram, for error offsets.
#[derive(Debug, Clone, Copy)]
struct Xdr<'a> {
    data: &'a [u8],
    base: usize,
    pos: usize,
}

impl<'a> Xdr<'a> {
    fn new(data: &'a [u8]) -> Self {
        Xdr {
            data,
            base: 0,
            pos: 0,
        }
    }

    /// Offset in the datagram of the next byte.
    fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    fn fault(&self, reason: &'static str) -> Fault {
        Fault {
            reason,
            offset: self.offset(),
        }
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.fault(TRUNCATED))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| self.fault(TRUNCATED))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], Fault> {
        let a = self
            .data
            .get(self.pos..)
            .and_then(<[u8]>::first_chunk::<N>)
            .ok_or_else(|| self.fault(TRUNCATED))?;
        self.pos = self.pos.saturating_add(N);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, Fault> {
        self.array::<4>().map(|b| u32::from_be_bytes(*b))
    }

    /// A `u32` that must fit a narrower type (protocol, port).
    fn narrow<T: TryFrom<u32>>(&mut self) -> Result<T, Fault> {
        let at = self.fault(BAD_VALUE);
        T::try_from(self.u32()?).map_err(|_| at)
    }

    /// Reads a length word and returns a cursor over that many bytes,
    /// advancing past them. A length beyond the container is `bad-length`.
    fn opaque(&mut self) -> Result<Xdr<'a>, Fault> {
        let at = self.fault(BAD_LENGTH);
        let len = usize::try_from(self.u32()?).map_err(|_| at)?;
        if len > self.remaining() {
            return Err(at);
        }
        let base = self.offset();
        let data = self.bytes(len)?;
        Ok(Xdr { data, base, pos: 0 })
    }

    /// An XDR address: type 1 IPv4, type 2 IPv6.
    fn address(&mut self) -> Result<IpAddr, Fault> {
        let at = self.fault("bad-address-type");
        match self.u32()? {
            1 => Ok(IpAddr::from(*self.array::<4>()?)),
            2 => Ok(IpAddr::from(*self.array::<16>()?)),
            _ => Err(at),
        }
    }
}

/// sFlow data format word: enterprise in the top 20 bits, format in the low 12.
fn split_format(word: u32) -> (u32, u32) {
    (word >> 12, word & 0xFFF)
}

/// Whether `data` looks like an sFlow v5 datagram: version 5, an IPv4 or
/// IPv6 agent address, a sample count that fits the datagram and a first
/// sample whose length fits too. Cheap: for recognising sFlow on any port.
pub fn looks_like_sflow(data: &[u8]) -> bool {
    plausible_header(&mut Xdr::new(data)).unwrap_or(false)
}

fn plausible_header(x: &mut Xdr<'_>) -> Result<bool, Fault> {
    if x.u32()? != 5 {
        return Ok(false);
    }
    x.address()?;
    let _sub_agent = x.u32()?;
    let _sequence = x.u32()?;
    let _uptime = x.u32()?;
    let count = usize::try_from(x.u32()?).unwrap_or(usize::MAX);
    if count > x.remaining() / 8 {
        return Ok(false);
    }
    if count > 0 {
        let _format = x.u32()?;
        let len = usize::try_from(x.u32()?).unwrap_or(usize::MAX);
        if len > x.remaining() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Decodes one sFlow v5 datagram received from `exporter` at `received_at`,
/// appending one [`ExportRecord`] per flow sample that carried an IP packet.
///
/// On error the records of the samples read before the fault stay in `out`.
pub fn decode(
    exporter: IpAddr,
    received_at: Timestamp,
    data: &[u8],
    out: &mut Vec<ExportRecord>,
) -> Result<SflowSummary, SflowError> {
    decode_inner(exporter, received_at, data, out).map_err(|f| SflowError {
        exporter,
        reason: f.reason,
        offset: f.offset,
    })
}

fn decode_inner(
    exporter: IpAddr,
    received_at: Timestamp,
    data: &[u8],
    out: &mut Vec<ExportRecord>,
) -> Result<SflowSummary, Fault> {
    let mut x = Xdr::new(data);
    let at = x.fault("bad-version");
    if x.u32()? != 5 {
        return Err(at);
    }
    let agent = x.address()?;
    let sub_agent = x.u32()?;
    let sequence = x.u32()?;
    let _uptime_ms = x.u32()?;
    let count = x.u32()?;
    let mut summary = SflowSummary {
        agent,
        sub_agent,
        sequence,
        flow_samples: 0,
        counter_samples: 0,
        records: 0,
        skipped_records: 0,
        samples_without_ip: 0,
    };
    let ctx = Context {
        exporter,
        received_at,
        domain: sub_agent,
    };
    // The count bounds the loop; each pass consumes at least 8 bytes or fails.
    for _ in 0..count {
        let (enterprise, format) = split_format(x.u32()?);
        let mut body = x.opaque()?;
        match (enterprise, format) {
            (0, 1 | 3) => {
                summary.flow_samples += 1;
                let sample = flow_sample(&mut body, format == 3, &mut summary)?;
                match sample.into_record(&ctx) {
                    Some(rec) => {
                        out.push(rec);
                        summary.records += 1;
                    }
                    None => summary.samples_without_ip += 1,
                }
            }
            (0, 2 | 4) => summary.counter_samples += 1,
            _ => summary.skipped_records += 1,
        }
    }
    // Bytes after the last announced sample are ignored (some agents pad).
    Ok(summary)
}

/// What every record of one datagram shares.
struct Context {
    exporter: IpAddr,
    received_at: Timestamp,
    domain: u32,
}

/// The tuple of a sampled packet, from a raw header or a sampled IP record.
#[derive(Debug, Clone, Copy)]
struct Tuple {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    ip_len: u32,
    vlan: Option<u16>,
}

impl Tuple {
    fn from_packet(p: &PacketInfo) -> Tuple {
        let (sport, dport) = match (p.proto, p.icmp) {
            (ip_proto::ICMP | ip_proto::ICMPV6, Some(icmp)) => {
                (0, u16::from_be_bytes([icmp.icmp_type, icmp.code]))
            }
            _ => (p.sport, p.dport),
        };
        Tuple {
            src: p.src,
            dst: p.dst,
            proto: p.proto,
            sport,
            dport,
            tcp_flags: p.tcp_flags,
            ip_len: p.ip_len,
            vlan: p.vlan.as_slice().first().copied(),
        }
    }
}

/// The owned result of one flow sample.
#[derive(Debug, Clone, Copy)]
struct FlowSample {
    sampling_rate: u32,
    input_if: Option<u32>,
    output_if: Option<u32>,
    /// From a raw packet header record (preferred).
    header: Option<Tuple>,
    /// From a sampled IPv4/IPv6 record.
    sampled_ip: Option<Tuple>,
    /// From an extended switch record.
    switch_vlan: Option<u16>,
}

impl FlowSample {
    fn into_record(self, ctx: &Context) -> Option<ExportRecord> {
        let t = self.header.or(self.sampled_ip)?;
        Some(ExportRecord {
            protocol: ExportProtocol::Sflow,
            exporter: ctx.exporter,
            domain: ctx.domain,
            template_id: None,
            first: ctx.received_at,
            last: ctx.received_at,
            src: t.src,
            dst: t.dst,
            proto: t.proto,
            sport: t.sport,
            dport: t.dport,
            packets: 1,
            bytes: u64::from(t.ip_len),
            tcp_flags: t.tcp_flags,
            sampling: self.sampling_rate,
            direction: None,
            reverse: None,
            vlan: t.vlan.or(self.switch_vlan),
            input_if: self.input_if,
            output_if: self.output_if,
            action: None,
        })
    }
}

/// An interface word of a compact flow sample: 2 format bits, 30 value bits.
fn compact_interface(word: u32) -> Option<u32> {
    interface(word >> 30, word & 0x3FFF_FFFF)
}

/// Format 0 is an ifIndex; 1 (dropped, value = reason) and 2 (several
/// output interfaces, value = count) name no single interface.
fn interface(format: u32, value: u32) -> Option<u32> {
    (format == 0).then_some(value)
}

/// A VLAN id from an extended switch record, if it is a real one.
fn vlan_id(v: u32) -> Option<u16> {
    u16::try_from(v).ok().filter(|v| (1..=4094).contains(v))
}

/// Reads a flow sample body (format 1, or 3 when `expanded`) with whatever
/// records it had.
fn flow_sample(
    x: &mut Xdr<'_>,
    expanded: bool,
    summary: &mut SflowSummary,
) -> Result<FlowSample, Fault> {
    let _sequence = x.u32()?;
    if expanded {
        let _source_type = x.u32()?;
        let _source_index = x.u32()?;
    } else {
        let _source_id = x.u32()?;
    }
    let sampling_rate = x.u32()?;
    let _sample_pool = x.u32()?;
    let _drops = x.u32()?;
    let (input_if, output_if) = if expanded {
        let (inf, inv, outf, outv) = (x.u32()?, x.u32()?, x.u32()?, x.u32()?);
        (interface(inf, inv), interface(outf, outv))
    } else {
        (compact_interface(x.u32()?), compact_interface(x.u32()?))
    };
    let count = x.u32()?;
    let mut sample = FlowSample {
        sampling_rate,
        input_if,
        output_if,
        header: None,
        sampled_ip: None,
        switch_vlan: None,
    };
    for _ in 0..count {
        let (enterprise, format) = split_format(x.u32()?);
        let mut rec = x.opaque()?;
        match (enterprise, format) {
            (0, 1) => {
                if let Some(t) = raw_header(&mut rec)? {
                    sample.header.get_or_insert(t);
                }
            }
            (0, 3) => {
                let t = sampled_ip::<4>(&mut rec)?;
                sample.sampled_ip.get_or_insert(t);
            }
            (0, 4) => {
                let t = sampled_ip::<16>(&mut rec)?;
                sample.sampled_ip.get_or_insert(t);
            }
            (0, 1001) => {
                let (src_vlan, _src_pri) = (rec.u32()?, rec.u32()?);
                let (dst_vlan, _dst_pri) = (rec.u32()?, rec.u32()?);
                sample.switch_vlan = vlan_id(src_vlan).or(vlan_id(dst_vlan));
            }
            // Sampled Ethernet (2) and the standard extended records (router,
            // gateway, user, url, MPLS, NAT, tunnels, ...): known, not needed.
            (0, 2 | 1002..=1036) => {}
            _ => summary.skipped_records += 1,
        }
    }
    Ok(sample)
}

/// A raw packet header record (format 1): the header bytes go through the
/// packet decoder. `None` when they hold no IP packet.
fn raw_header(x: &mut Xdr<'_>) -> Result<Option<Tuple>, Fault> {
    let protocol = x.u32()?;
    let _frame_length = x.u32()?;
    let _stripped = x.u32()?;
    let header = x.opaque()?;
    let lt = match protocol {
        1 => linktype::ETHERNET,
        11 => linktype::IPV4,
        12 => linktype::IPV6,
        _ => return Ok(None),
    };
    Ok(match packet::decode(lt, header.data) {
        Decoded::Ip(info) => Some(Tuple::from_packet(&info)),
        Decoded::NotIp(_) | Decoded::Error(_) => None,
    })
}

/// A sampled IPv4 (`N` = 4, format 3) or IPv6 (`N` = 16, format 4) record.
fn sampled_ip<const N: usize>(x: &mut Xdr<'_>) -> Result<Tuple, Fault>
where
    IpAddr: From<[u8; N]>,
{
    let ip_len = x.u32()?;
    let proto: u8 = x.narrow()?;
    let src = IpAddr::from(*x.array::<N>()?);
    let dst = IpAddr::from(*x.array::<N>()?);
    let sport: u16 = x.narrow()?;
    let dport: u16 = x.narrow()?;
    let tcp_flags = u8::try_from(x.u32()? & 0xFF).unwrap_or(0);
    let _tos_or_priority = x.u32()?;
    Ok(Tuple {
        src,
        dst,
        proto,
        sport,
        dport,
        tcp_flags,
        ip_len,
        vlan: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const EXPORTER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    const T: Timestamp = Timestamp(1_700_000_000_000_000_000);

    fn be(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// An XDR block: format word, length, body.
    fn block(format: u32, body: &[u8]) -> Vec<u8> {
        let mut v = be(&[format, u32::try_from(body.len()).unwrap()]);
        v.extend_from_slice(body);
        v
    }

    fn datagram(samples: &[Vec<u8>]) -> Vec<u8> {
        let mut v = be(&[5, 1]);
        v.extend_from_slice(&[192, 0, 2, 1]);
        v.extend(be(&[
            7,
            1234,
            99_000,
            u32::try_from(samples.len()).unwrap(),
        ]));
        for s in samples {
            v.extend_from_slice(s);
        }
        v
    }

    fn flow_sample(rate: u32, input: u32, output: u32, records: &[Vec<u8>]) -> Vec<u8> {
        let mut body = be(&[
            1,
            0x0000_0003,
            rate,
            1000,
            0,
            input,
            output,
            u32::try_from(records.len()).unwrap(),
        ]);
        for r in records {
            body.extend_from_slice(r);
        }
        block(1, &body)
    }

    fn expanded_flow_sample(rate: u32, input: u32, output: u32, records: &[Vec<u8>]) -> Vec<u8> {
        let mut body = be(&[
            1,
            0,
            3,
            rate,
            1000,
            0,
            0,
            input,
            0,
            output,
            u32::try_from(records.len()).unwrap(),
        ]);
        for r in records {
            body.extend_from_slice(r);
        }
        block(3, &body)
    }

    fn raw_header(protocol: u32, header: &[u8]) -> Vec<u8> {
        let len = u32::try_from(header.len()).unwrap();
        let mut body = be(&[protocol, len + 4, 4, len]);
        body.extend_from_slice(header);
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        block(1, &body)
    }

    fn sampled_ipv4(
        len: u32,
        proto: u32,
        src: [u8; 4],
        dst: [u8; 4],
        ports: (u32, u32),
    ) -> Vec<u8> {
        let mut body = be(&[len, proto]);
        body.extend_from_slice(&src);
        body.extend_from_slice(&dst);
        body.extend(be(&[ports.0, ports.1, 0x12, 0]));
        block(3, &body)
    }

    fn switch(src_vlan: u32, dst_vlan: u32) -> Vec<u8> {
        block(1001, &be(&[src_vlan, 0, dst_vlan, 0]))
    }

    /// IPv4 TCP SYN 198.51.100.1:40000 -> 203.0.113.5:443, total length 1500,
    /// with only 20 bytes of TCP present (as an agent samples it).
    fn ipv4_tcp() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0x05, 0xDC, 0, 1, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&[198, 51, 100, 1, 203, 0, 113, 5]);
        p.extend_from_slice(&[0x9C, 0x40, 0x01, 0xBB, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02]);
        p.extend_from_slice(&[0xFF, 0xFF, 0, 0, 0, 0]);
        p
    }

    fn ethernet(ethertype: [u8; 2], vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        if let Some(id) = vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&id.to_be_bytes());
        }
        f.extend_from_slice(&ethertype);
        f.extend_from_slice(payload);
        f
    }

    /// IPv6 UDP 2001:db8::1:5353 -> 2001:db8::2:53, payload length 100.
    fn ipv6_udp() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 100, 17, 64];
        p.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        p.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
        p.extend_from_slice(&[0x14, 0xE9, 0, 53, 0, 100, 0, 0]);
        p
    }

    fn run(data: &[u8]) -> (Result<SflowSummary, SflowError>, Vec<ExportRecord>) {
        let mut out = Vec::new();
        let r = decode(EXPORTER, T, data, &mut out);
        (r, out)
    }

    #[test]
    fn ipv4_raw_header_sample() {
        let frame = ethernet([0x08, 0x00], Some(42), &ipv4_tcp());
        let d = datagram(&[flow_sample(
            512,
            3,
            (2 << 30) | 2,
            &[switch(7, 8), raw_header(1, &frame)],
        )]);
        assert!(looks_like_sflow(&d));
        let (r, out) = run(&d);
        let s = r.unwrap();
        assert_eq!(
            (s.agent, s.sub_agent, s.sequence),
            (IpAddr::from([192, 0, 2, 1]), 7, 1234)
        );
        assert_eq!((s.flow_samples, s.records, s.skipped_records), (1, 1, 0));
        let rec = &out[0];
        assert_eq!(rec.protocol, ExportProtocol::Sflow);
        assert_eq!(rec.exporter, EXPORTER);
        assert_eq!(rec.domain, 7);
        assert_eq!(rec.src, IpAddr::from([198, 51, 100, 1]));
        assert_eq!(rec.dst, IpAddr::from([203, 0, 113, 5]));
        assert_eq!((rec.proto, rec.sport, rec.dport), (6, 40000, 443));
        assert_eq!((rec.packets, rec.bytes, rec.tcp_flags), (1, 1500, 0x02));
        assert_eq!(rec.sampling, 512);
        assert_eq!((rec.first, rec.last), (T, T));
        // The header's 802.1Q tag wins over the extended switch record.
        assert_eq!(rec.vlan, Some(42));
        // Output format 2 (several interfaces) names no single interface.
        assert_eq!((rec.input_if, rec.output_if), (Some(3), None));
        assert_eq!(rec.action, None);
    }

    #[test]
    fn switch_record_gives_vlan_when_header_has_none() {
        let frame = ethernet([0x08, 0x00], None, &ipv4_tcp());
        let d = datagram(&[flow_sample(
            1,
            1,
            2,
            &[raw_header(1, &frame), switch(0xFFFF_FFFF, 30)],
        )]);
        let (r, out) = run(&d);
        r.unwrap();
        assert_eq!(out[0].vlan, Some(30));
    }

    #[test]
    fn ipv6_raw_header_and_raw_ip_protocols() {
        let d = datagram(&[
            flow_sample(
                0,
                1,
                2,
                &[raw_header(1, &ethernet([0x86, 0xDD], None, &ipv6_udp()))],
            ),
            flow_sample(100, 1, 2, &[raw_header(12, &ipv6_udp()[..40])]),
            flow_sample(100, 1, 2, &[raw_header(11, &ipv4_tcp())]),
        ]);
        let (r, out) = run(&d);
        assert_eq!(r.unwrap().records, 3);
        assert_eq!(
            out[0].src,
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
        );
        assert_eq!((out[0].proto, out[0].sport, out[0].dport), (17, 5353, 53));
        assert_eq!(out[0].bytes, 140);
        assert_eq!(out[0].sampling, 0, "rate 0 means unknown");
        // A header cut inside UDP still gives the full IP length.
        assert_eq!((out[1].sport, out[1].dport, out[1].bytes), (0, 0, 140));
        assert_eq!((out[2].dport, out[2].bytes), (443, 1500));
    }

    #[test]
    fn icmp_dport_is_type_and_code() {
        let mut p = vec![0x45, 0, 0, 84, 0, 1, 0, 0, 64, 1, 0, 0];
        p.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        p.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 0]);
        let d = datagram(&[flow_sample(1, 1, 2, &[raw_header(11, &p)])]);
        let (_, out) = run(&d);
        assert_eq!((out[0].proto, out[0].sport, out[0].dport), (1, 0, 0x0301));
    }

    #[test]
    fn sampled_ipv4_record_and_header_preference() {
        let rec = sampled_ipv4(60, 17, [192, 0, 2, 3], [192, 0, 2, 4], (1000, 53));
        let d = datagram(&[flow_sample(10, 1, 2, std::slice::from_ref(&rec))]);
        let (r, out) = run(&d);
        r.unwrap();
        assert_eq!(out[0].src, IpAddr::from([192, 0, 2, 3]));
        assert_eq!((out[0].proto, out[0].sport, out[0].dport), (17, 1000, 53));
        assert_eq!((out[0].bytes, out[0].tcp_flags), (60, 0x12));
        // Both a raw header and a sampled IPv4 record: one record, from the header.
        let d = datagram(&[flow_sample(10, 1, 2, &[rec, raw_header(11, &ipv4_tcp())])]);
        let (r, out) = run(&d);
        assert_eq!(r.unwrap().records, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dport, 443);
        // A port that does not fit 16 bits is a bad value.
        let bad = sampled_ipv4(60, 17, [192, 0, 2, 3], [192, 0, 2, 4], (70_000, 53));
        let (r, _) = run(&datagram(&[flow_sample(10, 1, 2, &[bad])]));
        assert_eq!(r.unwrap_err().reason, "bad-value");
    }

    #[test]
    fn sampled_ipv6_record() {
        let mut body = be(&[1280, 6]);
        body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7).octets());
        body.extend(be(&[22, 50000, 0x10, 0]));
        let d = datagram(&[flow_sample(4, 1, 2, &[block(4, &body)])]);
        let (r, out) = run(&d);
        r.unwrap();
        assert_eq!(out[0].src, IpAddr::from(Ipv6Addr::LOCALHOST));
        assert_eq!(
            (out[0].sport, out[0].dport, out[0].bytes),
            (22, 50000, 1280)
        );
    }

    #[test]
    fn counter_samples_are_counted_and_unknown_formats_skipped() {
        let counters = block(2, &be(&[1, 3, 0]));
        let expanded_counters = block(4, &be(&[1, 0, 3, 0]));
        let vendor = block((9 << 12) | 1, &[1, 2, 3, 4]);
        let vendor_record = block((9 << 12) | 5, &[0; 8]);
        let d = datagram(&[
            counters,
            vendor,
            expanded_counters,
            flow_sample(1, 1, 2, &[vendor_record, raw_header(11, &ipv4_tcp())]),
        ]);
        let (r, out) = run(&d);
        let s = r.unwrap();
        assert_eq!(s.counter_samples, 2);
        assert_eq!(s.flow_samples, 1);
        assert_eq!(s.skipped_records, 2);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn expanded_flow_sample_is_decoded() {
        let frame = ethernet([0x08, 0x00], None, &ipv4_tcp());
        let d = datagram(&[expanded_flow_sample(
            2048,
            0x4000_0001,
            17,
            &[raw_header(1, &frame)],
        )]);
        let (r, out) = run(&d);
        assert_eq!(r.unwrap().flow_samples, 1);
        assert_eq!(out[0].sampling, 2048);
        assert_eq!(
            (out[0].input_if, out[0].output_if),
            (Some(0x4000_0001), Some(17))
        );
    }

    #[test]
    fn non_ip_header_gives_no_record() {
        let arp = ethernet([0x08, 0x06], None, &[0; 28]);
        let d = datagram(&[flow_sample(1, 1, 2, &[raw_header(1, &arp)])]);
        let (r, out) = run(&d);
        let s = r.unwrap();
        assert_eq!((s.flow_samples, s.records, s.samples_without_ip), (1, 0, 1));
        assert!(out.is_empty());
    }

    #[test]
    fn ipv6_agent_address() {
        let mut d = be(&[5, 2]);
        d.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9).octets());
        d.extend(be(&[0, 1, 2, 1]));
        d.extend(flow_sample(1, 1, 2, &[raw_header(11, &ipv4_tcp())]));
        assert!(looks_like_sflow(&d));
        let (r, out) = run(&d);
        assert_eq!(
            r.unwrap().agent,
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9))
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn truncated_at_every_offset_is_an_error() {
        let frame = ethernet([0x08, 0x00], None, &ipv4_tcp());
        let d = datagram(&[
            flow_sample(1, 1, 2, &[raw_header(1, &frame)]),
            block(2, &be(&[1, 3, 0])),
            expanded_flow_sample(1, 1, 2, &[sampled_ipv4(60, 17, [1; 4], [2; 4], (1, 2))]),
        ]);
        run(&d).0.unwrap();
        for cut in 0..d.len() {
            let (r, out) = run(&d[..cut]);
            let e = r.expect_err(&format!("cut at {cut}"));
            assert!(e.offset <= cut, "{e} beyond cut {cut}");
            assert!(["truncated", "bad-length"].contains(&e.reason), "{e}");
            // Records of samples complete before the cut are kept.
            assert!(out.len() <= 1);
        }
    }

    #[test]
    fn errors_name_reason_and_offset() {
        let mut d = datagram(&[]);
        d[3] = 4;
        let e = run(&d).0.unwrap_err();
        assert_eq!((e.reason, e.offset), ("bad-version", 0));
        assert_eq!(
            e.to_string(),
            "sflow datagram from 192.0.2.9: bad-version at byte 0"
        );
        assert!(!looks_like_sflow(&d));
        let mut d = datagram(&[]);
        d[7] = 3;
        let e = run(&d).0.unwrap_err();
        assert_eq!((e.reason, e.offset), ("bad-address-type", 4));
        // A sample longer than the datagram.
        let mut d = datagram(&[block(2, &be(&[1, 3, 0]))]);
        let at = 28 + 4;
        d[at + 3] = 200;
        let e = run(&d).0.unwrap_err();
        assert_eq!((e.reason, e.offset), ("bad-length", at));
        assert!(!looks_like_sflow(&d));
        // NetFlow v5 and v9 headers are not sFlow.
        assert!(!looks_like_sflow(&[0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!looks_like_sflow(&[0, 9, 0, 1]));
    }

    /// The UDP payload of an Ethernet/IPv4|IPv6/UDP frame.
    fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
        let (mut et, mut rest) = (u16::from_be_bytes([frame[12], frame[13]]), &frame[14..]);
        while et == 0x8100 {
            et = u16::from_be_bytes([rest[2], rest[3]]);
            rest = &rest[4..];
        }
        let udp = match et {
            0x0800 => {
                let ihl = usize::from(rest[0] & 0x0F) * 4;
                (rest[9] == 17).then(|| &rest[ihl..])?
            }
            0x86DD => (rest[6] == 17).then(|| &rest[40..])?,
            _ => return None,
        };
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        udp.get(8..len.min(udp.len()))
    }

    fn corpus() -> Option<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!("skipped: capture corpus not found at {}", dir.display());
            None
        }
    }

    fn sflow_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().contains("sflow"))
            .collect();
        files.sort();
        files
    }

    /// Decodes every sFlow capture of the shared corpus and compares the
    /// flow samples with tshark's (`expected/netflow/<file>.records.jsonl`).
    #[test]
    fn corpus_matches_tshark() {
        let Some(dir) = corpus() else { return };
        let (mut samples, mut compared, mut mismatches) = (0usize, 0usize, Vec::new());
        for path in sflow_files(&dir.join("netflow")) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let jsonl = dir.join(format!("expected/netflow/{name}.records.jsonl"));
            let text = std::fs::read_to_string(&jsonl).unwrap();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let mut reader = crate::capture::CaptureReader::open(&path).unwrap();
            let mut frame = 0usize;
            while let Some(pkt) = reader.next_packet().unwrap() {
                frame += 1;
                let payload = udp_payload(pkt.data).unwrap();
                let frame_str = frame.to_string();
                let tshark_sflow = lines
                    .iter()
                    .any(|l| l["type"] == "packet" && l["frame"] == frame_str.as_str());
                // tshark decodes sFlow by port; a NetFlow v5 datagram sent
                // to 6343 is "data" to it and not sFlow to us.
                assert_eq!(looks_like_sflow(payload), tshark_sflow, "{name} #{frame}");
                if !tshark_sflow {
                    continue;
                }
                let mut out = Vec::new();
                let s = decode(EXPORTER, pkt.ts, payload, &mut out)
                    .unwrap_or_else(|e| panic!("{name} #{frame}: {e}"));
                let of_frame: Vec<&serde_json::Value> = lines
                    .iter()
                    .filter(|l| l["type"] == "record" && l["frame"] == frame.to_string().as_str())
                    .collect();
                let flows: Vec<&serde_json::Map<String, serde_json::Value>> = of_frame
                    .iter()
                    .filter(|l| {
                        l["sample"]
                            .as_str()
                            .unwrap()
                            .to_lowercase()
                            .contains("flow sample")
                    })
                    .map(|l| l["fields"].as_object().unwrap())
                    .collect();
                let counters = of_frame.len() - flows.len();
                let mut fail = |what: String| mismatches.push(format!("{name} #{frame}: {what}"));
                if s.flow_samples != flows.len() || s.counter_samples != counters {
                    fail(format!(
                        "samples: ours {}+{} tshark {}+{counters}",
                        s.flow_samples,
                        s.counter_samples,
                        flows.len()
                    ));
                    continue;
                }
                samples += flows.len();
                let mut ours = out.iter();
                for f in flows {
                    let first = |k: &str| -> Option<String> {
                        match f.get(k)? {
                            serde_json::Value::Array(a) => a.first()?.as_str().map(str::to_string),
                            v => v.as_str().map(str::to_string),
                        }
                    };
                    let num = |k: &str| -> Option<u64> {
                        let v = first(k)?;
                        match v.strip_prefix("0x") {
                            Some(h) => u64::from_str_radix(h, 16).ok(),
                            None => v.parse().ok(),
                        }
                    };
                    let src = first("ip.src")
                        .or_else(|| first("ipv6.src"))
                        .or_else(|| first("sflow_245.ipv4_src"));
                    let Some(src) = src else {
                        continue;
                    };
                    let Some(rec) = ours.next() else {
                        fail("record missing".into());
                        break;
                    };
                    compared += 1;
                    let dst = first("ip.dst")
                        .or_else(|| first("ipv6.dst"))
                        .or_else(|| first("sflow_245.ipv4_dst"));
                    if (Some(rec.src.to_string()), Some(rec.dst.to_string())) != (Some(src), dst) {
                        fail(format!("addresses {} {}", rec.src, rec.dst));
                    }
                    if num("sflow.flow_sample.sampling_rate") != Some(u64::from(rec.sampling)) {
                        fail(format!("sampling {}", rec.sampling));
                    }
                    let proto = num("ip.proto").or_else(|| num("ipv6.nxt"));
                    if proto.is_some() && proto != Some(u64::from(rec.proto)) {
                        fail(format!("proto {}", rec.proto));
                    }
                    let len = num("ip.len").or_else(|| num("ipv6.plen").map(|p| p + 40));
                    if len.is_some() && len != Some(rec.bytes) {
                        fail(format!("bytes {}", rec.bytes));
                    }
                    let ports = match rec.proto {
                        6 => Some((num("tcp.srcport"), num("tcp.dstport"))),
                        17 => Some((num("udp.srcport"), num("udp.dstport"))),
                        1 => Some((
                            Some(0),
                            num("icmp.type")
                                .zip(num("icmp.code"))
                                .map(|(t, c)| t * 256 + c),
                        )),
                        58 => Some((
                            Some(0),
                            num("icmpv6.type")
                                .zip(num("icmpv6.code"))
                                .map(|(t, c)| t * 256 + c),
                        )),
                        _ => None,
                    };
                    if let Some(p) = ports.filter(|p| p.1.is_some())
                        && p != (Some(u64::from(rec.sport)), Some(u64::from(rec.dport)))
                    {
                        fail(format!("ports {} {}", rec.sport, rec.dport));
                    }
                    if rec.proto == 6
                        && num("tcp.flags").is_some_and(|f| f & 0xFF != u64::from(rec.tcp_flags))
                    {
                        fail(format!("tcp flags {}", rec.tcp_flags));
                    }
                    let tshark_vlan = num("vlan.id").filter(|v| *v != 0).or_else(|| {
                        [num("sflow_245.vlan.in"), num("sflow_245.vlan.out")]
                            .into_iter()
                            .flatten()
                            .find(|v| (1..=4094).contains(v))
                    });
                    if tshark_vlan != rec.vlan.map(u64::from) {
                        fail(format!("vlan {:?} tshark {tshark_vlan:?}", rec.vlan));
                    }
                    let out_if = num("sflow.flow_sample.output_interface_value");
                    let out_fmt = num("sflow.flow_sample.output_interface_format")
                        .or_else(|| num("sflow.flow_sample.output_interface.format"));
                    if out_fmt == Some(0) && out_if.map(|v| v as u32) != rec.output_if {
                        fail(format!("output_if {:?} tshark {out_if:?}", rec.output_if));
                    }
                }
                if ours.next().is_some() {
                    fail("extra records".into());
                }
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} mismatches:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
        eprintln!("{samples} flow samples, {compared} records compared");
        assert!(samples >= 29 && compared >= 29, "{samples} {compared}");
    }

    /// The malformed sFlow captures of the corpus: every UDP payload decodes
    /// or fails, never panics.
    #[test]
    fn corpus_malformed_never_panics() {
        let Some(dir) = corpus() else { return };
        let mut datagrams = 0;
        for path in sflow_files(&dir.join("malformed")) {
            let Ok(mut reader) = crate::capture::CaptureReader::open(&path) else {
                continue;
            };
            while let Ok(Some(pkt)) = reader.next_packet() {
                let Some(payload) = pkt.data.get(14..).and_then(|_| {
                    std::panic::catch_unwind(|| udp_payload(pkt.data).map(<[u8]>::to_vec))
                        .ok()
                        .flatten()
                }) else {
                    continue;
                };
                datagrams += 1;
                let _ = looks_like_sflow(&payload);
                let _ = decode(EXPORTER, pkt.ts, &payload, &mut Vec::new());
            }
        }
        assert!(datagrams > 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = looks_like_sflow(&data);
            let _ = decode(EXPORTER, T, &data, &mut Vec::new());
        }

        #[test]
        fn never_panics_on_mutated_datagrams(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..8),
            cut in 0usize..220,
        ) {
            let frame = ethernet([0x08, 0x00], Some(5), &ipv4_tcp());
            let mut d = datagram(&[
                flow_sample(1, 1, 2, &[switch(1, 2), raw_header(1, &frame)]),
                expanded_flow_sample(1, 1, 2, &[sampled_ipv4(60, 17, [1; 4], [2; 4], (1, 2))]),
            ]);
            for (at, v) in flips {
                if let Some(b) = d.get_mut(at) {
                    *b = v;
                }
            }
            d.truncate(cut);
            let mut out = Vec::new();
            let r = decode(EXPORTER, T, &d, &mut out);
            prop_assert!(out.len() <= 2);
            if let Err(e) = r {
                prop_assert!(e.offset <= d.len());
            }
        }
    }
}
