//! Stitching: unidirectional [`ExportRecord`]s into oriented biflows.
//!
//! Records of one exporter and observation domain whose two directions arrive
//! within the idle timeouts become one [`FlowRecord`]; records from different
//! exporters or domains are never merged. Counters are scaled by the sampling
//! rate in force, and the flow says how it was oriented (`exporter` when the
//! exporter stated the direction, else `service-port` for TCP and sampled
//! records, else `first-packet`). A direction never seen makes the flow
//! `one-way`: exports cannot tell an unanswered attempt from an invisible reply.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use serde::Serialize;

use crate::export::{ExportRecord, FlowAction, StatedDirection};
use crate::packet::{ip_proto, tcp_flags};
use crate::record::{FlowRecord, FlowState, OrientedBy, Proto, TcpFlags};
use crate::services::is_service_port;
use crate::table::{TableConfig, addr_bytes, bytes_addr};
use crate::time::Timestamp;

/// Where an exported flow came from: its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportInfo {
    /// Export protocol.
    pub protocol: String,
    /// The exporter's address.
    pub exporter: IpAddr,
    /// Observation domain / source id.
    pub domain: u32,
    /// Template of the first record (v9 / IPFIX).
    pub template_id: Option<u16>,
    /// Records stitched into this flow.
    pub records: u32,
    /// The first record of the flow, as decoded (counters not scaled).
    pub record: Box<ExportRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    exporter: [u8; 16],
    domain: u32,
    lo: [u8; 16],
    hi: [u8; 16],
    lo_port: u16,
    hi_port: u16,
    proto: u8,
    v6: bool,
    vlan: u16,
    source: u16,
}

#[derive(Debug, Clone, Copy, Default)]
struct Side {
    packets: u64,
    bytes: u64,
    flags: u8,
    /// Earliest first-packet time of this side's records.
    first: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct Pending {
    first: Timestamp,
    last: Timestamp,
    /// Index 0: lo → hi, 1: hi → lo.
    sides: [Side; 2],
    /// Exporter-stated initiator side (true: lo initiates).
    stated_lo_initiates: Option<bool>,
    sampling: u32,
    rejected: bool,
    info: ExportInfo,
    /// Latest record time, for expiry.
    seen: Timestamp,
}

/// Counters of the stitcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StitchStats {
    /// Records taken in.
    pub records: u64,
    /// Flows emitted.
    pub flows: u64,
    /// Flows made of both directions.
    pub stitched: u64,
    /// Most flows pending at once.
    pub peak_live: usize,
    /// Flows ended early because the table was full.
    pub evicted: u64,
}

/// The stitching table.
pub struct Stitcher {
    config: TableConfig,
    default_sampling: u32,
    flows: HashMap<Key, Pending>,
    sources: Vec<Arc<str>>,
    now: Timestamp,
    stats: StitchStats,
}

impl Stitcher {
    /// An empty stitcher; `default_sampling` applies to records whose rate is unknown (0).
    pub fn new(config: TableConfig, default_sampling: u32) -> Stitcher {
        Stitcher {
            config,
            default_sampling: default_sampling.max(1),
            flows: HashMap::new(),
            sources: Vec::new(),
            now: Timestamp(i64::MIN),
            stats: StitchStats::default(),
        }
    }

    /// Registers an input; its name becomes the flows' `source`.
    pub fn add_source(&mut self, name: &str) -> u16 {
        if let Some(i) = self.sources.iter().position(|s| &**s == name) {
            return u16::try_from(i).unwrap_or(u16::MAX);
        }
        self.sources.push(Arc::from(name));
        u16::try_from(self.sources.len() - 1).unwrap_or(u16::MAX)
    }

    /// The sampling rate in force for a record (the default when unknown).
    fn sampling_of(&self, rec: &ExportRecord) -> u32 {
        if rec.sampling == 0 {
            self.default_sampling
        } else {
            rec.sampling
        }
    }

    /// Counters.
    pub fn stats(&self) -> &StitchStats {
        &self.stats
    }

    /// Flows waiting for their other direction or their end.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Takes one record. `now` is the collector's time (the record's
    /// receive time live, the latest record time offline); flows idle past
    /// their timeout at `now` are appended to `out`.
    pub fn ingest(
        &mut self,
        source: u16,
        rec: &ExportRecord,
        now: Timestamp,
        out: &mut Vec<FlowRecord>,
    ) {
        self.stats.records += 1;
        if now > self.now {
            self.now = now;
        }
        let sampling = self.sampling_of(rec);
        let (exporter, _) = addr_bytes(rec.exporter);
        let (src, v6) = addr_bytes(rec.src);
        let (dst, _) = addr_bytes(rec.dst);
        let src_is_lo = (src, rec.sport) <= (dst, rec.dport);
        let (lo, hi, lo_port, hi_port) = if src_is_lo {
            (src, dst, rec.sport, rec.dport)
        } else {
            (dst, src, rec.dport, rec.sport)
        };
        let key = Key {
            exporter,
            domain: rec.domain,
            lo,
            hi,
            lo_port,
            hi_port,
            proto: rec.proto,
            v6,
            vlan: rec.vlan.unwrap_or(0),
            source,
        };
        if self.flows.len() >= self.config.max_flows && !self.flows.contains_key(&key) {
            self.evict(out);
        }
        let scale = u64::from(sampling);
        let idle = self.config.idle_secs(rec.proto);
        let entry = match self.flows.entry(key) {
            Entry::Occupied(o) => {
                let p = o.into_mut();
                // Too long apart: the earlier flow ends, this record starts another.
                if p.last.plus_secs(idle) < rec.first {
                    out.push(build(&self.sources, &key, p));
                    count(&mut self.stats, p);
                    *p = Pending::new(rec, sampling);
                }
                p
            }
            Entry::Vacant(v) => v.insert(Pending::new(rec, sampling)),
        };
        let fwd = usize::from(!src_is_lo);
        let side = &mut entry.sides[fwd];
        side.packets += rec.packets.saturating_mul(scale);
        side.bytes += rec.bytes.saturating_mul(scale);
        side.flags |= rec.tcp_flags;
        side.first = Some(side.first.map_or(rec.first, |f| f.min(rec.first)));
        if let Some(r) = rec.reverse {
            let back = &mut entry.sides[1 - fwd];
            back.packets += r.packets.saturating_mul(scale);
            back.bytes += r.bytes.saturating_mul(scale);
            back.flags |= r.tcp_flags;
            if r.packets > 0 && back.first.is_none() {
                back.first = Some(rec.first);
            }
        }
        if let Some(d) = rec.direction {
            entry.stated_lo_initiates = Some(match d {
                StatedDirection::SrcIsInitiator => src_is_lo,
                StatedDirection::SrcIsResponder => !src_is_lo,
            });
        }
        if rec.action == Some(FlowAction::Reject) {
            entry.rejected = true;
        }
        entry.sampling = entry.sampling.max(sampling);
        entry.first = entry.first.min(rec.first);
        entry.last = entry.last.max(rec.last);
        entry.seen = entry.seen.max(rec.last).max(now);
        entry.info.records = entry.info.records.saturating_add(1);
        self.stats.peak_live = self.stats.peak_live.max(self.flows.len());
    }

    /// Emits flows idle past their timeout at `now` (the latest of `now` and any record time seen).
    pub fn sweep(&mut self, now: Timestamp, out: &mut Vec<FlowRecord>) {
        if now > self.now {
            self.now = now;
        }
        let now = self.now;
        let config = &self.config;
        let sources = &self.sources;
        for (k, p) in self
            .flows
            .extract_if(|k, p| p.seen.plus_secs(config.idle_secs(k.proto)) < now)
        {
            out.push(build(sources, &k, &p));
            count(&mut self.stats, &p);
        }
    }

    fn evict(&mut self, out: &mut Vec<FlowRecord>) {
        let n = self.flows.len() / 10 + 1;
        let mut seen: Vec<(Timestamp, Key)> =
            self.flows.iter().map(|(k, p)| (p.seen, *k)).collect();
        let nth = n.min(seen.len()).saturating_sub(1);
        seen.select_nth_unstable_by_key(nth, |e| e.0);
        for (_, k) in seen.into_iter().take(n) {
            if let Some(p) = self.flows.remove(&k) {
                out.push(build(&self.sources, &k, &p));
                count(&mut self.stats, &p);
                self.stats.evicted += 1;
            }
        }
    }

    /// One record as exported, not stitched (`flows --unidirectional`):
    /// source → destination as the exporter sent it, counters scaled.
    pub fn as_exported(&mut self, source: u16, rec: &ExportRecord) -> FlowRecord {
        self.stats.records += 1;
        self.stats.flows += 1;
        let sampling = self.sampling_of(rec);
        let (exporter, _) = addr_bytes(rec.exporter);
        let (src, v6) = addr_bytes(rec.src);
        let (dst, _) = addr_bytes(rec.dst);
        let key = Key {
            exporter,
            domain: rec.domain,
            lo: src,
            hi: dst,
            lo_port: rec.sport,
            hi_port: rec.dport,
            proto: rec.proto,
            v6,
            vlan: rec.vlan.unwrap_or(0),
            source,
        };
        let mut p = Pending::new(rec, sampling);
        let scale = u64::from(sampling);
        p.sides[0] = Side {
            packets: rec.packets.saturating_mul(scale),
            bytes: rec.bytes.saturating_mul(scale),
            flags: rec.tcp_flags,
            first: Some(rec.first),
        };
        p.stated_lo_initiates = Some(true);
        p.rejected = rec.action == Some(FlowAction::Reject);
        p.info.records = 1;
        let mut f = build(&self.sources, &key, &p);
        f.oriented_by = OrientedBy::FirstPacket;
        f
    }

    /// Emits every pending flow, oldest first.
    pub fn flush(&mut self, out: &mut Vec<FlowRecord>) {
        let start = out.len();
        let sources = &self.sources;
        for (k, p) in self.flows.drain() {
            out.push(build(sources, &k, &p));
            count(&mut self.stats, &p);
        }
        out[start..].sort_by_key(|r| (r.first, r.id));
    }
}

impl Pending {
    fn new(rec: &ExportRecord, sampling: u32) -> Pending {
        Pending {
            first: rec.first,
            last: rec.last,
            sides: [Side::default(); 2],
            stated_lo_initiates: None,
            sampling,
            rejected: false,
            info: ExportInfo {
                protocol: rec.protocol.as_str().to_string(),
                exporter: rec.exporter,
                domain: rec.domain,
                template_id: rec.template_id,
                records: 0,
                record: Box::new(rec.clone()),
            },
            seen: rec.last,
        }
    }
}

fn count(stats: &mut StitchStats, p: &Pending) {
    stats.flows += 1;
    if p.sides[0].packets > 0 && p.sides[1].packets > 0 {
        stats.stitched += 1;
    }
}

/// Decides the initiator side (true: lo) and how.
fn orient(key: &Key, p: &Pending) -> (bool, OrientedBy) {
    if let Some(lo) = p.stated_lo_initiates {
        return (lo, OrientedBy::Exporter);
    }
    let port_rule = || match (is_service_port(key.lo_port), is_service_port(key.hi_port)) {
        (true, false) => false,
        (false, true) => true,
        _ => key.hi_port <= key.lo_port,
    };
    let (lo_first, hi_first) = (p.sides[0].first, p.sides[1].first);
    if key.proto == ip_proto::TCP || p.sampling > 1 {
        return (port_rule(), OrientedBy::ServicePort);
    }
    let (sender_lo, seen_both) = match (lo_first, hi_first) {
        (Some(a), Some(b)) if a != b => (a < b, true),
        (Some(_), None) => (true, false),
        (None, Some(_)) => (false, false),
        _ => return (port_rule(), OrientedBy::ServicePort),
    };
    let _ = seen_both;
    // The first sender initiates, unless only its port is a service port.
    let (sport, dport) = if sender_lo {
        (key.lo_port, key.hi_port)
    } else {
        (key.hi_port, key.lo_port)
    };
    if is_service_port(sport)
        && !is_service_port(dport)
        && !matches!(key.proto, ip_proto::ICMP | ip_proto::ICMPV6)
    {
        (!sender_lo, OrientedBy::ServicePort)
    } else {
        (sender_lo, OrientedBy::FirstPacket)
    }
}

fn build(sources: &[Arc<str>], key: &Key, p: &Pending) -> FlowRecord {
    let (lo_init, by) = orient(key, p);
    let lo = bytes_addr(&key.lo, key.v6);
    let hi = bytes_addr(&key.hi, key.v6);
    let (src, sport, dst, dport, fwd, back) = if lo_init {
        (lo, key.lo_port, hi, key.hi_port, p.sides[0], p.sides[1])
    } else {
        (hi, key.hi_port, lo, key.lo_port, p.sides[1], p.sides[0])
    };
    let icmp = matches!(key.proto, ip_proto::ICMP | ip_proto::ICMPV6);
    // ICMP: the exporter's type/code sits on the destination port.
    let (sport, dport) = if icmp {
        (0, if dport != 0 { dport } else { sport })
    } else {
        (sport, dport)
    };
    let state = if p.rejected {
        FlowState::Rejected
    } else if back.packets == 0 || fwd.packets == 0 {
        FlowState::OneWay
    } else if key.proto == ip_proto::TCP
        && back.flags & tcp_flags::RST != 0
        && back.flags & (tcp_flags::SYN | tcp_flags::PSH) == 0
    {
        FlowState::Rejected
    } else {
        FlowState::Established
    };
    let id = {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(0x6578_706f).hash_one((key, p.first))
    };
    FlowRecord {
        id,
        first: p.first,
        last: p.last,
        proto: Proto(key.proto),
        src,
        sport,
        dst,
        dport,
        packets: fwd.packets,
        bytes: fwd.bytes,
        rpackets: back.packets,
        rbytes: back.bytes,
        answered: state.answered(),
        state,
        tcp_flags: TcpFlags(fwd.flags),
        rtcp_flags: TcpFlags(back.flags),
        oriented_by: by,
        vlan: if key.vlan == 0 {
            Vec::new()
        } else {
            vec![key.vlan]
        },
        source: sources
            .get(usize::from(key.source))
            .cloned()
            .unwrap_or_else(|| Arc::from("?")),
        sampling: p.sampling,
        export: Some(p.info.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::ExportProtocol;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs_nanos(1_700_000_000 + secs, 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn rec(
        exporter: &str,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        proto: u8,
        first: i64,
        packets: u64,
    ) -> ExportRecord {
        ExportRecord {
            protocol: ExportProtocol::NetflowV9,
            exporter: ip(exporter),
            domain: 0,
            template_id: Some(256),
            first: at(first),
            last: at(first + 1),
            src: ip(src),
            dst: ip(dst),
            proto,
            sport,
            dport,
            packets,
            bytes: packets * 100,
            tcp_flags: if proto == 6 {
                tcp_flags::ACK | tcp_flags::PSH
            } else {
                0
            },
            sampling: 1,
            direction: None,
            reverse: None,
            vlan: None,
            input_if: None,
            output_if: None,
            action: None,
        }
    }

    fn run(records: &[ExportRecord]) -> Vec<FlowRecord> {
        let mut s = Stitcher::new(TableConfig::default(), 1);
        let src = s.add_source("exports.pcap");
        let mut out = Vec::new();
        for r in records {
            s.ingest(src, r, r.last, &mut out);
        }
        s.flush(&mut out);
        out
    }

    const E: &str = "192.0.2.1";

    #[test]
    fn two_directions_become_one_oriented_flow() {
        let out = run(&[
            rec(E, "10.2.0.10", 5432, "198.51.100.7", 51514, 6, 0, 5),
            rec(E, "198.51.100.7", 51514, "10.2.0.10", 5432, 6, 0, 6),
        ]);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(
            (f.src, f.sport, f.dst, f.dport),
            (ip("198.51.100.7"), 51514, ip("10.2.0.10"), 5432)
        );
        assert_eq!((f.packets, f.bytes, f.rpackets, f.rbytes), (6, 600, 5, 500));
        assert_eq!(f.oriented_by, OrientedBy::ServicePort);
        assert_eq!(f.state, FlowState::Established);
        let info = f.export.as_ref().expect("export evidence");
        assert_eq!(
            (info.exporter, info.template_id, info.records),
            (ip(E), Some(256), 2)
        );
    }

    #[test]
    fn exporters_and_domains_never_merge() {
        let a = rec(E, "10.0.0.1", 40000, "10.0.0.2", 53, 17, 0, 1);
        let b = rec("192.0.2.2", "10.0.0.2", 53, "10.0.0.1", 40000, 17, 0, 1);
        let mut c = rec(E, "10.0.0.2", 53, "10.0.0.1", 40000, 17, 0, 1);
        c.domain = 7;
        let out = run(&[a, b, c]);
        assert_eq!(out.len(), 3);
        assert!(
            out.iter()
                .all(|f| f.state == FlowState::OneWay && f.answered.is_none())
        );
    }

    #[test]
    fn udp_first_sender_initiates_and_sampling_scales() {
        let mut q = rec(E, "10.0.0.1", 40000, "10.0.0.2", 9999, 17, 0, 2);
        let mut r = rec(E, "10.0.0.2", 9999, "10.0.0.1", 40000, 17, 1, 3);
        let out = run(&[r.clone(), q.clone()]);
        assert_eq!(
            (out[0].src, out[0].oriented_by),
            (ip("10.0.0.1"), OrientedBy::FirstPacket)
        );
        q.sampling = 100;
        r.sampling = 100;
        let out = run(&[q, r]);
        assert_eq!(
            (out[0].packets, out[0].rpackets, out[0].sampling),
            (200, 300, 100)
        );
        // Sampled flows are oriented by ports: the lower port is the responder.
        assert_eq!(
            (out[0].dport, out[0].oriented_by),
            (9999, OrientedBy::ServicePort)
        );
    }

    #[test]
    fn exporter_stated_direction_and_biflow_records() {
        let mut r = rec(E, "10.2.0.10", 5432, "198.51.100.7", 51514, 6, 0, 5);
        r.direction = Some(StatedDirection::SrcIsInitiator);
        r.reverse = Some(crate::export::ReverseCounters {
            packets: 4,
            bytes: 400,
            tcp_flags: tcp_flags::ACK,
        });
        let out = run(&[r]);
        let f = &out[0];
        assert_eq!(
            (f.src, f.dport, f.oriented_by),
            (ip("10.2.0.10"), 51514, OrientedBy::Exporter)
        );
        assert_eq!(
            (f.packets, f.rpackets, f.state),
            (5, 4, FlowState::Established)
        );
    }

    #[test]
    fn records_far_apart_are_separate_flows_and_rejects_show() {
        let a = rec(E, "10.0.0.1", 40000, "10.0.0.2", 9999, 17, 0, 1);
        let b = rec(E, "10.0.0.1", 40000, "10.0.0.2", 9999, 17, 500, 1);
        let mut c = rec(E, "10.0.0.1", 40001, "10.0.0.2", 22, 6, 0, 1);
        c.action = Some(FlowAction::Reject);
        let out = run(&[a, b, c]);
        assert_eq!(out.iter().filter(|f| f.dport == 9999).count(), 2);
        assert_eq!(
            out.iter().find(|f| f.dport == 22).expect("ssh").state,
            FlowState::Rejected
        );
    }
}
