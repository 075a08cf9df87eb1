//! The flow table: packets in, oriented biflows ([`FlowRecord`]) out.
//!
//! [`FlowTable::ingest`] takes one decoded packet and the capture time; flows
//! that end (FIN/RST grace, idle or active timeout, eviction under pressure)
//! are pushed to the caller's output vector. Time only moves forward through
//! packet timestamps: the table never reads the clock.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::community_id::{ICMP_REQUEST_REPLY, ICMPV6_REQUEST_REPLY};
use crate::flowmap::FlowMap;
use crate::packet::{Fragment, IcmpInfo, PacketInfo, Plain, Vlans, ip_proto, tcp_flags};
use crate::record::{FlowRecord, FlowState, OrientedBy, Proto, TcpFlags};
use crate::services::is_service_port;
use crate::time::Timestamp;

/// Flow expiry and memory limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    /// Idle timeout of an established TCP flow.
    pub tcp_idle_secs: u64,
    /// Idle timeout of a TCP flow that has not been answered (half-open).
    pub tcp_half_open_secs: u64,
    /// How long a TCP flow closed by FIN (both ways) or RST lingers for its last packets.
    pub tcp_closed_grace_secs: u64,
    /// Idle timeout of a UDP flow.
    pub udp_idle_secs: u64,
    /// Idle timeout of an ICMP/ICMPv6 flow.
    pub icmp_idle_secs: u64,
    /// Idle timeout of any other protocol.
    pub other_idle_secs: u64,
    /// A flow longer than this is reported and continued as a new record.
    pub active_secs: u64,
    /// At most this many live flows; beyond it flows are evicted (half-open first).
    pub max_flows: usize,
    /// How often (in capture time) the table is swept for idle flows.
    pub sweep_interval_secs: u64,
}

impl TableConfig {
    /// The idle timeout of a protocol (TCP: the established one).
    pub fn idle_secs(&self, proto: u8) -> u64 {
        match proto {
            ip_proto::TCP => self.tcp_idle_secs,
            ip_proto::UDP => self.udp_idle_secs,
            ip_proto::ICMP | ip_proto::ICMPV6 => self.icmp_idle_secs,
            _ => self.other_idle_secs,
        }
    }
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            tcp_idle_secs: 300,
            tcp_half_open_secs: 30,
            tcp_closed_grace_secs: 5,
            udp_idle_secs: 60,
            icmp_idle_secs: 30,
            other_idle_secs: 60,
            active_secs: 1800,
            max_flows: 2_000_000,
            sweep_interval_secs: 5,
        }
    }
}

/// Identifies one input among those feeding a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId(u16);

/// Counters of the table's own work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Flows created.
    pub flows: u64,
    /// Most flows live at once.
    pub peak_live: usize,
    /// Flows ended early because the table was full.
    pub evicted: u64,
    /// Later IP fragments whose first fragment was not seen (counted as port-less flows).
    pub orphan_fragments: u64,
    /// Flows cut by the active timeout (each cut makes one more record).
    pub active_splits: u64,
}

/// The key of a biflow: endpoints in canonical (sorted) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    lo: [u8; 16],
    hi: [u8; 16],
    lo_port: u16,
    hi_port: u16,
    proto: u8,
    v6: bool,
    vlan: u16,
    source: u16,
}

impl std::hash::Hash for FlowKey {
    /// Three wide writes instead of one per field (the hot path hashes every packet).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.lo));
        h.write_u128(u128::from_ne_bytes(self.hi));
        h.write_u64(
            u64::from(self.lo_port)
                | u64::from(self.hi_port) << 16
                | u64::from(self.proto) << 32
                | u64::from(self.v6) << 40
                | u64::from(self.vlan ^ self.source.rotate_left(8)) << 48,
        );
    }
}

// Status bits of a flow.
const SYN_FWD: u16 = 1 << 0; // initiator sent a SYN without ACK
const SYNACK_BACK: u16 = 1 << 1;
const PAYLOAD_BACK: u16 = 1 << 2;
const RST_BACK: u16 = 1 << 3;
const ACK_BACK: u16 = 1 << 4; // a plain segment back (mid-stream flows)
const FIN_FWD: u16 = 1 << 5;
const FIN_BACK: u16 = 1 << 6;
const RST_ANY: u16 = 1 << 7;
const MID_STREAM: u16 = 1 << 8; // first packet was no SYN
const ICMP_REJECTED: u16 = 1 << 9;

#[derive(Debug, Clone)]
struct Flow {
    first: Timestamp,
    last: Timestamp,
    /// Packets per direction; a flow reaching `u32::MAX` is reported in parts.
    packets: [u32; 2],
    bytes: [u64; 2],
    flags: [u8; 2],
    status: u16,
    /// ICMP: type*256+code of the initiator's message.
    icmp_dport: u16,
    init_lo: bool,
    oriented_by: OrientedBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: [u8; 16],
    dst: [u8; 16],
    ident: u32,
    proto: u8,
    source: u16,
}

impl FragKey {
    /// The fragments of `pkt`'s datagram `ident` in `source`.
    fn of(source: SourceId, pkt: &PacketInfo, ident: u32) -> FragKey {
        FragKey {
            src: addr_bytes(pkt.src).0,
            dst: addr_bytes(pkt.dst).0,
            ident,
            proto: pkt.proto,
            source: source.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct FragEntry {
    key: FlowKey,
    src_is_lo: bool,
    last: Timestamp,
}

const MAX_FRAGMENT_ENTRIES: usize = 65_536;
/// Flows ended per sweep step, so one sweep never builds a huge batch of records.
const SWEEP_BUDGET: usize = 4096;
/// Records after which [`FlowTable::ingest_keyed`] returns them.
pub const OUT_BATCH: usize = SWEEP_BUDGET;
const FRAGMENT_TIMEOUT_SECS: u64 = 30;

/// What [`FlowTable::ingest`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// The id of the flow the packet was counted into (see [`FlowRecord::id`]).
    pub flow_id: u64,
    /// Whether this packet started the flow.
    pub new: bool,
    /// Whether the packet travelled initiator → responder.
    pub forward: bool,
}

/// The biflow table.
pub struct FlowTable {
    config: TableConfig,
    flows: FlowMap<FlowKey, Flow>,
    fragments: HashMap<FragKey, FragEntry>,
    sources: Vec<Arc<str>>,
    vlans: Vec<Vlans>,
    vlan_index: HashMap<Vlans, u16>,
    now: Timestamp,
    next_sweep: Timestamp,
    stats: TableStats,
    /// The flow the last packet went into (for [`FlowTable::current`]).
    last_key: Option<FlowKey>,
    /// Where in the table an unfinished sweep goes on.
    sweep_at: usize,
}

/// A packet as the table counts it: its flow key worked out (ahead of the
/// lookup, possibly on another thread, see [`Keyer`]) and the fields counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyed {
    key: FlowKey,
    /// The key's hash in the table.
    hash: u64,
    ts: Timestamp,
    ip_len: u32,
    payload_len: u32,
    tcp_flags: u8,
    /// Whether the packet's source is the key's `lo` end.
    src_is_lo: bool,
}

impl Keyed {
    /// `pkt` keyed in `source`; `vlan` is the table's number for its VLAN
    /// stack, `hasher` the table's.
    fn of(
        source: SourceId,
        vlan: u16,
        ts: Timestamp,
        pkt: &PacketInfo,
        hasher: &foldhash::fast::RandomState,
    ) -> Keyed {
        let (key, src_is_lo) = flow_key(source, vlan, pkt);
        Keyed::new(
            key,
            src_is_lo,
            hasher,
            ts,
            pkt.ip_len,
            pkt.payload_len,
            pkt.tcp_flags,
        )
    }

    fn new(
        key: FlowKey,
        src_is_lo: bool,
        hasher: &foldhash::fast::RandomState,
        ts: Timestamp,
        ip_len: u32,
        payload_len: u32,
        tcp_flags: u8,
    ) -> Keyed {
        Keyed {
            hash: std::hash::BuildHasher::hash_one(hasher, key),
            key,
            ts,
            ip_len,
            payload_len,
            tcp_flags,
            src_is_lo,
        }
    }

    /// The packet's ports as used in the key (ICMP: type and code, or echo id).
    fn ports(&self) -> (u16, u16) {
        if self.src_is_lo {
            (self.key.lo_port, self.key.hi_port)
        } else {
            (self.key.hi_port, self.key.lo_port)
        }
    }
}

/// Works out the keys of a source's ordinary packets away from the table
/// (see [`FlowTable::keyer`]), so that a reading thread can take that work.
#[derive(Clone)]
pub struct Keyer {
    hasher: foldhash::fast::RandomState,
    source: SourceId,
}

impl Keyer {
    /// The packet keyed for [`FlowTable::ingest_keyed`], or `None` when its
    /// key needs the table (VLAN tags, fragments, ICMP): pass it to
    /// [`FlowTable::ingest`] then.
    #[inline]
    pub fn key(&self, ts: Timestamp, pkt: &PacketInfo) -> Option<Keyed> {
        if !pkt.vlan.as_slice().is_empty()
            || pkt.fragment != Fragment::None
            || pkt.proto == ip_proto::ICMP
            || pkt.proto == ip_proto::ICMPV6
        {
            return None;
        }
        Some(Keyed::of(self.source, 0, ts, pkt, &self.hasher))
    }

    /// A packet read by [`crate::packet::decode_plain`], keyed: the same as
    /// [`Keyer::key`] of what [`crate::packet::decode`] makes of it. `p` must
    /// come from `decode_plain`: one built by hand with an IPv4-mapped
    /// address would be keyed apart from the same packet decoded.
    #[inline]
    pub fn key_plain(&self, ts: Timestamp, p: &Plain<'_>) -> Keyed {
        let (key, src_is_lo) = orient(
            self.source,
            0,
            p.proto,
            p.v6,
            (p.src, p.sport),
            (p.dst, p.dport),
        );
        Keyed::new(
            key,
            src_is_lo,
            &self.hasher,
            ts,
            p.ip_len,
            p.payload_len,
            p.tcp_flags,
        )
    }
}

/// A packet's biflow key and whether its source is the key's `lo` end;
/// `vlan` is the table's number for its VLAN stack. A later fragment's key
/// is settled when counted.
fn flow_key(source: SourceId, vlan: u16, pkt: &PacketInfo) -> (FlowKey, bool) {
    let (src, v6) = addr_bytes(pkt.src);
    let (dst, _) = addr_bytes(pkt.dst);
    let is_icmp = pkt.proto == ip_proto::ICMP || pkt.proto == ip_proto::ICMPV6;
    let icmp_v6 = pkt.proto == ip_proto::ICMPV6;

    // Ports used in the key.
    let (sport, dport) = if is_icmp {
        match pkt.icmp {
            Some(i) if is_icmp_echo(icmp_v6, i.icmp_type) => {
                let id = i.echo_id.unwrap_or(0);
                (id, id)
            }
            Some(i) => {
                let t =
                    u16::from(icmp_request_of_reply(icmp_v6, i.icmp_type).unwrap_or(i.icmp_type));
                let tc = t << 8 | u16::from(i.code);
                (tc, tc)
            }
            None => (0, 0),
        }
    } else {
        (pkt.sport, pkt.dport)
    };
    orient(source, vlan, pkt.proto, v6, (src, sport), (dst, dport))
}

/// The key of a packet from `(src, sport)` to `(dst, dport)` (addresses as
/// [`addr_bytes`] lays them out) and whether its source is the key's `lo` end.
#[inline]
fn orient(
    source: SourceId,
    vlan: u16,
    proto: u8,
    v6: bool,
    (src, sport): ([u8; 16], u16),
    (dst, dport): ([u8; 16], u16),
) -> (FlowKey, bool) {
    // (src, sport) <= (dst, dport), the addresses compared as big-endian numbers.
    let src_is_lo = (u128::from_be_bytes(src), sport) <= (u128::from_be_bytes(dst), dport);
    let (lo, hi, lo_port, hi_port) = if src_is_lo {
        (src, dst, sport, dport)
    } else {
        (dst, src, dport, sport)
    };
    let key = FlowKey {
        lo,
        hi,
        lo_port,
        hi_port,
        proto,
        v6,
        vlan,
        source: source.0,
    };
    (key, src_is_lo)
}

/// An address as 16 bytes (IPv4 in the first 4) and whether it is IPv6.
pub(crate) fn addr_bytes(a: IpAddr) -> ([u8; 16], bool) {
    match a.to_canonical() {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (b, false)
        }
        IpAddr::V6(v6) => (v6.octets(), true),
    }
}

/// The inverse of [`addr_bytes`].
pub(crate) fn bytes_addr(b: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(*b)
    } else {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    }
}

/// ICMP request types and the reply each one gets (v4 and v6).
fn icmp_pairs(v6: bool) -> &'static [(u8, u8)] {
    if v6 {
        &ICMPV6_REQUEST_REPLY
    } else {
        &ICMP_REQUEST_REPLY
    }
}

fn icmp_request_of_reply(v6: bool, t: u8) -> Option<u8> {
    icmp_pairs(v6).iter().find(|p| p.1 == t).map(|p| p.0)
}

fn is_icmp_echo(v6: bool, t: u8) -> bool {
    if v6 {
        t == 128 || t == 129
    } else {
        t == 8 || t == 0
    }
}

fn is_icmp_request(v6: bool, t: u8) -> bool {
    icmp_pairs(v6).iter().any(|p| p.0 == t)
}

impl FlowTable {
    /// An empty table.
    pub fn new(config: TableConfig) -> FlowTable {
        let mut vlan_index = HashMap::new();
        vlan_index.insert(Vlans::default(), 0);
        FlowTable {
            config,
            flows: FlowMap::new(),
            sweep_at: 0,
            fragments: HashMap::new(),
            sources: Vec::new(),
            vlans: vec![Vlans::default()],
            vlan_index,
            now: Timestamp(i64::MIN),
            next_sweep: Timestamp(i64::MIN),
            stats: TableStats::default(),
            last_key: None,
        }
    }

    /// Registers an input; its name becomes the flows' `source`.
    pub fn add_source(&mut self, name: &str) -> SourceId {
        if let Some(i) = self.sources.iter().position(|s| &**s == name) {
            return SourceId(u16::try_from(i).unwrap_or(u16::MAX));
        }
        self.sources.push(Arc::from(name));
        SourceId(u16::try_from(self.sources.len() - 1).unwrap_or(u16::MAX))
    }

    /// Live flows now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is live.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The table's counters.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    fn vlan_id(&mut self, v: Vlans) -> u16 {
        if v.as_slice().is_empty() {
            return 0;
        }
        if let Some(&i) = self.vlan_index.get(&v) {
            return i;
        }
        let i = u16::try_from(self.vlans.len()).unwrap_or(u16::MAX);
        if i < u16::MAX {
            self.vlans.push(v);
            self.vlan_index.insert(v, i);
        }
        i
    }

    /// Counts one packet. Ended flows are appended to `out`.
    pub fn ingest(
        &mut self,
        source: SourceId,
        ts: Timestamp,
        pkt: &PacketInfo,
        out: &mut Vec<FlowRecord>,
    ) -> Ingested {
        let vlan = self.vlan_id(pkt.vlan);
        let keyed = Keyed::of(source, vlan, ts, pkt, self.flows.hasher());
        self.count::<true>(source, &keyed, Some(pkt), out)
    }

    /// Keys packets of `source` for [`FlowTable::ingest_keyed`], on any thread.
    pub fn keyer(&self, source: SourceId) -> Keyer {
        Keyer {
            hasher: self.flows.hasher().clone(),
            source,
        }
    }

    /// Counts a run of packets keyed by [`FlowTable::keyer`], as
    /// [`FlowTable::ingest`] on each in turn would (same flows, same records
    /// in the same order), faster: each packet's index slot and flow are
    /// prefetched a few packets ahead. [`FlowTable::current`] is not kept.
    ///
    /// Returns how many packets it counted: all of them, unless `out` came
    /// to hold [`OUT_BATCH`] records or more, after which it stops at the
    /// end of that packet. The caller hands the records on and calls again
    /// with the rest, so that a sweep ending tens of thousands of flows at
    /// once is handed on in pieces that stay in the cache.
    pub fn ingest_keyed(
        &mut self,
        source: SourceId,
        packets: &[Keyed],
        out: &mut Vec<FlowRecord>,
    ) -> usize {
        /// Packets between an entry's prefetch and its use (and again between
        /// the index slot's prefetch and the entry's).
        const AHEAD: usize = 6;
        self.last_key = None;
        for (i, k) in packets.iter().enumerate() {
            if let Some(p) = packets.get(i + 2 * AHEAD) {
                self.flows.prefetch_slot(p.hash);
            }
            if let Some(p) = packets.get(i + AHEAD) {
                self.flows.prefetch_entry(p.hash);
            }
            self.count::<false>(source, k, None, out);
            if out.len() >= OUT_BATCH {
                return i + 1;
            }
        }
        packets.len()
    }

    /// Counts one keyed packet; `pkt` is the whole packet when its key needed
    /// the table (fragments and ICMP errors are only handled then). `ID`: work
    /// out the flow id and remember the flow for [`FlowTable::current`]
    /// (single packets).
    fn count<const ID: bool>(
        &mut self,
        source: SourceId,
        prep: &Keyed,
        pkt: Option<&PacketInfo>,
        out: &mut Vec<FlowRecord>,
    ) -> Ingested {
        let ts = prep.ts;
        let proto = prep.key.proto;
        if ts > self.now {
            self.now = ts;
            if ts >= self.next_sweep {
                let complete =
                    self.next_sweep == Timestamp(i64::MIN) || self.sweep_some(out, SWEEP_BUDGET);
                // An unfinished sweep goes on at the next packet.
                self.next_sweep = if complete {
                    ts.plus_secs(self.config.sweep_interval_secs)
                } else {
                    ts
                };
            }
        }
        let (sport, dport) = prep.ports();
        let vlan = prep.key.vlan;
        let is_icmp = proto == ip_proto::ICMP || proto == ip_proto::ICMPV6;
        let fragment = pkt.map_or(Fragment::None, |p| p.fragment);
        let icmp = pkt.and_then(|p| p.icmp);

        // Later fragments are counted into the flow of their first fragment.
        let mut key = &prep.key;
        let mut hash = prep.hash;
        let mut src_is_lo = prep.src_is_lo;
        let frag_key;
        match (fragment, pkt) {
            (Fragment::Later { ident }, Some(pkt)) => {
                let fk = FragKey::of(source, pkt, ident);
                if let Some(e) = self.fragments.get_mut(&fk) {
                    e.last = ts;
                    frag_key = e.key;
                    key = &frag_key;
                    hash = self.flows.hash(key);
                    src_is_lo = e.src_is_lo;
                } else {
                    self.stats.orphan_fragments += 1;
                }
            }
            (Fragment::First { ident }, Some(pkt)) => {
                if self.fragments.len() >= MAX_FRAGMENT_ENTRIES {
                    self.fragments.clear();
                }
                let fk = FragKey::of(source, pkt, ident);
                self.fragments.insert(
                    fk,
                    FragEntry {
                        key: *key,
                        src_is_lo,
                        last: ts,
                    },
                );
            }
            _ => {}
        }

        let syn = proto == ip_proto::TCP && prep.tcp_flags & tcp_flags::SYN != 0;
        let ack = prep.tcp_flags & tcp_flags::ACK != 0;

        // Room for a new flow: only checked when full, so the common path
        // does one lookup.
        if self.flows.len() >= self.config.max_flows && !self.flows.contains(hash, key) {
            self.evict(out);
        }
        if ID {
            self.last_key = Some(*key);
        }
        let FlowTable {
            config,
            flows,
            sources,
            vlans,
            stats,
            ..
        } = self;
        let mut new = false;
        let mut split = None;
        let entry = match flows.find(hash, key) {
            Some(i) => flows.entry_mut(i),
            None => {
                new = true;
                let i = flows.insert_new(
                    hash,
                    *key,
                    start_flow(key, src_is_lo, sport, dport, prep.tcp_flags, icmp, ts),
                );
                flows.entry_mut(i)
            }
        };
        let Some((_, flow)) = entry else {
            // Cannot happen: the entry was just found or added.
            return Ingested {
                flow_id: 0,
                new,
                forward: true,
            };
        };
        if !new {
            // A flow that timed out, or a closed TCP flow seeing a new SYN, ends first.
            let closed = flow.status & RST_ANY != 0
                || flow.status & (FIN_FWD | FIN_BACK) == FIN_FWD | FIN_BACK;
            if expired(config, key, flow, ts) || (syn && !ack && closed) {
                out.push(make_record(sources, vlans, key, flow));
                *flow = start_flow(key, src_is_lo, sport, dport, prep.tcp_flags, icmp, ts);
                new = true;
            } else if flow.first.plus_secs(config.active_secs) <= ts
                || flow.packets.contains(&u32::MAX)
            {
                // Active timeout: report what we have, continue with the same orientation.
                split = Some(make_record(sources, vlans, key, flow));
                flow.first = ts;
                flow.packets = [0, 0];
                flow.bytes = [0, 0];
                flow.flags = [0, 0];
                flow.status &= MID_STREAM | SYN_FWD | SYNACK_BACK;
            }
        }
        if new {
            stats.flows += 1;
        }
        let dir = usize::from(src_is_lo != flow.init_lo);
        flow.packets[dir] += 1;
        flow.bytes[dir] += u64::from(prep.ip_len);
        flow.flags[dir] |= prep.tcp_flags;
        if ts > flow.last {
            flow.last = ts;
        }
        if ts < flow.first {
            flow.first = ts;
        }
        if proto == ip_proto::TCP && !matches!(fragment, Fragment::Later { .. }) {
            let f = prep.tcp_flags;
            if dir == 0 {
                if f & tcp_flags::SYN != 0 && f & tcp_flags::ACK == 0 {
                    flow.status |= SYN_FWD;
                }
                if f & tcp_flags::FIN != 0 {
                    flow.status |= FIN_FWD;
                }
            } else {
                if f & tcp_flags::SYN != 0 && f & tcp_flags::ACK != 0 {
                    flow.status |= SYNACK_BACK;
                }
                if f & tcp_flags::RST != 0 {
                    flow.status |= RST_BACK;
                } else if f & tcp_flags::SYN == 0 && f != 0 {
                    flow.status |= ACK_BACK;
                }
                if prep.payload_len > 0 && f & tcp_flags::RST == 0 {
                    flow.status |= PAYLOAD_BACK;
                }
                if f & tcp_flags::FIN != 0 {
                    flow.status |= FIN_BACK;
                }
            }
            if f & tcp_flags::RST != 0 {
                flow.status |= RST_ANY;
            }
        }
        let flow_id = if ID { flow_id(key, flow.first) } else { 0 };
        if let Some(mut rec) = split {
            stats.active_splits += 1;
            rec.last = rec.last.min(ts);
            out.push(rec);
        }
        stats.peak_live = stats.peak_live.max(flows.len());

        // An ICMP error rejects the flow it quotes.
        if let Some(q) = icmp.and_then(|i| i.quoted)
            && is_icmp
        {
            self.mark_rejected(source, vlan, q.src, q.dst, q.proto, q.sport, q.dport);
        }
        Ingested {
            flow_id,
            new,
            forward: dir == 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn mark_rejected(
        &mut self,
        source: SourceId,
        vlan: u16,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        sport: u16,
        dport: u16,
    ) {
        let (s, v6) = addr_bytes(src);
        let (d, _) = addr_bytes(dst);
        let src_is_lo = (s, sport) <= (d, dport);
        let key = if src_is_lo {
            FlowKey {
                lo: s,
                hi: d,
                lo_port: sport,
                hi_port: dport,
                proto,
                v6,
                vlan,
                source: source.0,
            }
        } else {
            FlowKey {
                lo: d,
                hi: s,
                lo_port: dport,
                hi_port: sport,
                proto,
                v6,
                vlan,
                source: source.0,
            }
        };
        let hash = self.flows.hash(&key);
        if let Some(flow) = self.flows.get_mut(hash, &key)
            && flow.init_lo == src_is_lo
        {
            flow.status |= ICMP_REJECTED;
        }
    }

    fn record(&self, key: &FlowKey, flow: &Flow) -> FlowRecord {
        make_record(&self.sources, &self.vlans, key, flow)
    }

    /// The flow the last ingested packet was counted into, as it stands
    /// now (not ended): monitor mode raises findings from it at their first
    /// evidence, e.g. the SYN-ACK.
    pub fn current(&self) -> Option<FlowRecord> {
        let key = self.last_key?;
        self.flows
            .get(self.flows.hash(&key), &key)
            .map(|f| self.record(&key, f))
    }

    /// Every live flow as it stands now, without ending any (checkpoints
    /// of a long-running monitor), oldest first.
    pub fn snapshot(&self, out: &mut Vec<FlowRecord>) {
        let start = out.len();
        out.extend(self.flows.iter().map(|(k, f)| self.record(k, f)));
        out[start..].sort_unstable_by_key(|r| (r.first, r.id));
    }

    /// Moves the table's clock to `now` (wall-clock time of a live source
    /// that went quiet) and ends the flows idle past their timeout.
    pub fn advance(&mut self, now: Timestamp, out: &mut Vec<FlowRecord>) {
        if now > self.now {
            self.now = now;
        }
        self.sweep(out);
    }

    /// Ends every flow idle past its timeout at the table's current time.
    pub fn sweep(&mut self, out: &mut Vec<FlowRecord>) {
        self.sweep_at = 0;
        while !self.sweep_some(out, usize::MAX) {}
    }

    /// Ends at most `budget` idle flows (bounding the records produced at
    /// once), going on from where the previous call stopped; returns whether
    /// the pass over the table is complete.
    fn sweep_some(&mut self, out: &mut Vec<FlowRecord>, budget: usize) -> bool {
        let now = self.now;
        let FlowTable {
            config,
            flows,
            sources,
            vlans,
            fragments,
            sweep_at,
            ..
        } = self;
        let start = out.len();
        let stopped = flows.extract_from(
            *sweep_at,
            budget,
            |k, f| expired(config, k, f, now),
            |k, f| out.push(make_record(sources, vlans, &k, &f)),
        );
        // By key, then each record moved once into place: sorting the
        // 208-byte records themselves moved each a dozen times.
        out[start..].sort_by_cached_key(|r| (r.first, r.id));
        fragments.retain(|_, e| e.last.plus_secs(FRAGMENT_TIMEOUT_SECS) >= now);
        *sweep_at = stopped.unwrap_or(0);
        stopped.is_none()
    }

    /// Makes room when the table is full: expired flows first, then
    /// half-open ones, then the least recently seen tenth.
    fn evict(&mut self, out: &mut Vec<FlowRecord>) {
        self.sweep(out);
        let target = self.config.max_flows - self.config.max_flows / 10;
        if self.flows.len() > target {
            let half_open: Vec<FlowKey> = self
                .flows
                .iter()
                .filter(|(k, f)| k.proto == ip_proto::TCP && f.packets[1] == 0)
                .map(|(k, _)| *k)
                .collect();
            for k in half_open {
                if self.flows.len() <= target {
                    break;
                }
                if let Some((_, f)) = self.flows.remove(self.flows.hash(&k), &k) {
                    out.push(self.record(&k, &f));
                    self.stats.evicted += 1;
                }
            }
        }
        if self.flows.len() > target {
            let mut lasts: Vec<(Timestamp, FlowKey)> =
                self.flows.iter().map(|(k, f)| (f.last, *k)).collect();
            let n = self.flows.len() - target;
            lasts.select_nth_unstable_by_key(n.saturating_sub(1), |e| e.0);
            for (_, k) in lasts.into_iter().take(n) {
                if let Some((_, f)) = self.flows.remove(self.flows.hash(&k), &k) {
                    out.push(self.record(&k, &f));
                    self.stats.evicted += 1;
                }
            }
        }
    }

    /// Ends every live flow (end of input), oldest first.
    pub fn flush(&mut self, out: &mut Vec<FlowRecord>) {
        self.flush_each(&mut |chunk| out.append(chunk));
    }

    /// Ends every live flow, oldest first, handing them over in chunks so a
    /// large table is never held twice (once as flows, once as records).
    /// A large table's records are made on a second thread while
    /// `on_flows` takes the previous chunk (ending the flows still live is
    /// the serial end of reading a capture: the two halves overlap).
    pub fn flush_each(&mut self, on_flows: &mut dyn FnMut(&mut Vec<FlowRecord>)) {
        let all = self.flows.take_all();
        let (sources, vlans) = (&self.sources, &self.vlans);
        if all.len() <= FLUSH_CHUNK {
            flush_chunks(sources, vlans, all, &mut |mut chunk| {
                on_flows(&mut chunk);
                true
            });
        } else {
            // A rendezvous: the maker's next chunk waits for the previous
            // one to be taken, so at most two exist at once.
            let (tx, rx) = std::sync::mpsc::sync_channel(0);
            std::thread::scope(|scope| {
                scope.spawn(move || flush_chunks(sources, vlans, all, &mut |c| tx.send(c).is_ok()));
                // Ends when the maker is done (or stops because this
                // side unwinds and drops the receiver).
                for mut chunk in rx {
                    on_flows(&mut chunk);
                }
            });
        }
        self.fragments.clear();
    }
}

/// Flows per chunk of [`FlowTable::flush_each`].
const FLUSH_CHUNK: usize = 4096;

/// Makes the records of `all`, oldest first, and hands them to `give` in
/// chunks sorted by (start, id), the chunks in that order too; stops when
/// `give` returns false.
fn flush_chunks(
    sources: &[Arc<str>],
    vlans: &[Vlans],
    mut all: Vec<(FlowKey, Flow)>,
    give: &mut dyn FnMut(Vec<FlowRecord>) -> bool,
) {
    // Newest first, so that each chunk comes off the end of the vector.
    all.sort_unstable_by_key(|(_, f)| std::cmp::Reverse(f.first));
    while !all.is_empty() {
        // The FLUSH_CHUNK oldest flows, and every flow starting at the same
        // time as the newest of them: records are sorted by (start, id)
        // within a chunk, so the chunks follow each other in that order.
        let mut from = all.len().saturating_sub(FLUSH_CHUNK);
        let upto = all.get(from).map(|e| e.1.first);
        while from > 0 && all.get(from - 1).map(|e| e.1.first) == upto {
            from -= 1;
        }
        let mut chunk: Vec<FlowRecord> = all
            .drain(from..)
            .map(|(key, flow)| make_record(sources, vlans, &key, &flow))
            .collect();
        chunk.sort_by_cached_key(|r| (r.first, r.id));
        if !give(chunk) {
            return;
        }
    }
}

/// A flow's id: its key and start time, hashed with a fixed seed (stable for
/// the flow's life; a new record after a split or timeout gets a new id).
fn flow_id(key: &FlowKey, first: Timestamp) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x7a6f_6e65).hash_one((key, first))
}

fn idle_timeout(config: &TableConfig, key: &FlowKey, flow: &Flow) -> u64 {
    match key.proto {
        ip_proto::TCP => {
            if flow.status & (RST_ANY) != 0
                || flow.status & (FIN_FWD | FIN_BACK) == FIN_FWD | FIN_BACK
            {
                config.tcp_closed_grace_secs
            } else if flow.status & (SYNACK_BACK | PAYLOAD_BACK | ACK_BACK) == 0
                && flow.packets[1] == 0
            {
                config.tcp_half_open_secs
            } else {
                config.tcp_idle_secs
            }
        }
        _ => config.idle_secs(key.proto),
    }
}

fn expired(config: &TableConfig, key: &FlowKey, flow: &Flow, now: Timestamp) -> bool {
    flow.last.plus_secs(idle_timeout(config, key, flow)) < now
}

fn start_flow(
    key: &FlowKey,
    src_is_lo: bool,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    icmp: Option<IcmpInfo>,
    ts: Timestamp,
) -> Flow {
    let v6 = key.v6;
    // Returns (sender is initiator, how decided).
    let (sender_inits, by, icmp_dport) = match key.proto {
        ip_proto::TCP => {
            let f = tcp_flags;
            if f & tcp_flags::SYN != 0 && f & tcp_flags::ACK == 0 {
                (true, OrientedBy::Handshake, 0)
            } else if f & tcp_flags::SYN != 0 {
                (false, OrientedBy::Handshake, 0)
            } else {
                (port_rule(sport, dport), OrientedBy::ServicePort, 0)
            }
        }
        ip_proto::ICMP | ip_proto::ICMPV6 => match icmp {
            Some(i) if is_icmp_request(v6, i.icmp_type) => (
                true,
                if is_icmp_echo(v6, i.icmp_type) {
                    OrientedBy::Handshake
                } else {
                    OrientedBy::FirstPacket
                },
                u16::from(i.icmp_type) << 8 | u16::from(i.code),
            ),
            Some(i) => match icmp_request_of_reply(v6, i.icmp_type) {
                Some(req) => (
                    false,
                    if is_icmp_echo(v6, i.icmp_type) {
                        OrientedBy::Handshake
                    } else {
                        OrientedBy::FirstPacket
                    },
                    u16::from(req) << 8,
                ),
                None => (
                    true,
                    OrientedBy::FirstPacket,
                    u16::from(i.icmp_type) << 8 | u16::from(i.code),
                ),
            },
            None => (true, OrientedBy::FirstPacket, 0),
        },
        _ => {
            if sport != 0 && is_service_port(sport) && !is_service_port(dport) {
                (false, OrientedBy::ServicePort, 0)
            } else {
                (true, OrientedBy::FirstPacket, 0)
            }
        }
    };
    let mut status = 0;
    if key.proto == ip_proto::TCP && tcp_flags & tcp_flags::SYN == 0 {
        status |= MID_STREAM;
    }
    Flow {
        first: ts,
        last: ts,
        packets: [0, 0],
        bytes: [0, 0],
        flags: [0, 0],
        status,
        icmp_dport,
        init_lo: src_is_lo == sender_inits,
        oriented_by: by,
    }
}

fn make_record(sources: &[Arc<str>], vlans: &[Vlans], key: &FlowKey, flow: &Flow) -> FlowRecord {
    let lo = bytes_addr(&key.lo, key.v6);
    let hi = bytes_addr(&key.hi, key.v6);
    let (src, sport, dst, dport) = if flow.init_lo {
        (lo, key.lo_port, hi, key.hi_port)
    } else {
        (hi, key.hi_port, lo, key.lo_port)
    };
    let icmp = key.proto == ip_proto::ICMP || key.proto == ip_proto::ICMPV6;
    let (sport, dport) = if icmp {
        (0, flow.icmp_dport)
    } else {
        (sport, dport)
    };
    let s = flow.status;
    let state = if key.proto == ip_proto::TCP {
        if s & (SYNACK_BACK | PAYLOAD_BACK) != 0 || (s & MID_STREAM != 0 && s & ACK_BACK != 0) {
            FlowState::Established
        } else if s & (RST_BACK | ICMP_REJECTED) != 0 {
            FlowState::Rejected
        } else if flow.packets[1] > 0 {
            FlowState::Established
        } else if s & SYN_FWD == 0 {
            FlowState::OneWay
        } else {
            FlowState::Unanswered
        }
    } else if flow.packets[1] > 0 {
        FlowState::Established
    } else if s & ICMP_REJECTED != 0 {
        FlowState::Rejected
    } else {
        FlowState::Unanswered
    };
    FlowRecord {
        id: flow_id(key, flow.first),
        first: flow.first,
        last: flow.last,
        proto: Proto(key.proto),
        src,
        sport,
        dst,
        dport,
        packets: u64::from(flow.packets[0]),
        bytes: flow.bytes[0],
        rpackets: u64::from(flow.packets[1]),
        rbytes: flow.bytes[1],
        answered: state.answered(),
        state,
        tcp_flags: TcpFlags(flow.flags[0]),
        rtcp_flags: TcpFlags(flow.flags[1]),
        oriented_by: flow.oriented_by,
        vlan: vlans
            .get(usize::from(key.vlan))
            .map(|v| v.as_slice().to_vec())
            .unwrap_or_default(),
        source: sources
            .get(usize::from(key.source))
            .cloned()
            .unwrap_or_else(|| Arc::from("?")),
        sampling: 1,
        export: None,
    }
}

/// TCP without a handshake: is the packet's sender the initiator? The side on
/// a service port is the responder; else the lower port.
fn port_rule(sport: u16, dport: u16) -> bool {
    match (is_service_port(sport), is_service_port(dport)) {
        (false, true) => true,
        (true, false) => false,
        _ => dport <= sport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{IcmpInfo, Quoted};
    use tcp_flags::{ACK, FIN, PSH, RST, SYN};

    const C: &str = "198.51.100.7";
    const S: &str = "10.2.0.10";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8, payload: u32) -> PacketInfo {
        PacketInfo {
            src: ip(src),
            dst: ip(dst),
            proto: ip_proto::TCP,
            ip_len: 40 + payload,
            sport,
            dport,
            tcp_flags: flags,
            payload_len: payload,
            icmp: None,
            fragment: Fragment::None,
            vlan: Vlans::default(),
            truncated: None,
            malformed: None,
            payload_addr: 0,
        }
    }

    fn udp(src: &str, sport: u16, dst: &str, dport: u16, payload: u32) -> PacketInfo {
        PacketInfo {
            proto: ip_proto::UDP,
            tcp_flags: 0,
            ip_len: 28 + payload,
            ..tcp(src, sport, dst, dport, 0, payload)
        }
    }

    fn icmp(
        src: &str,
        dst: &str,
        t: u8,
        code: u8,
        id: Option<u16>,
        quoted: Option<Quoted>,
    ) -> PacketInfo {
        PacketInfo {
            proto: ip_proto::ICMP,
            icmp: Some(IcmpInfo {
                icmp_type: t,
                code,
                echo_id: id,
                quoted,
            }),
            ..udp(src, 0, dst, 0, 36)
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs_nanos(1_700_000_000 + secs, 0)
    }

    fn run(packets: &[(i64, PacketInfo)]) -> (Vec<FlowRecord>, TableStats) {
        run_with(TableConfig::default(), packets)
    }

    fn run_with(
        config: TableConfig,
        packets: &[(i64, PacketInfo)],
    ) -> (Vec<FlowRecord>, TableStats) {
        let mut t = FlowTable::new(config);
        let src = t.add_source("test.pcap");
        let mut out = Vec::new();
        for (secs, p) in packets {
            t.ingest(src, at(*secs), p, &mut out);
        }
        t.flush(&mut out);
        (out, t.stats().clone())
    }

    #[test]
    fn a_large_flush_hands_over_every_flow_once_in_start_order_in_bounded_chunks() {
        // More flows than three chunks (the records are made on a second
        // thread), starting in an order unlike the table's, many at the same
        // time (a chunk takes every flow starting with its newest).
        let n = 3 * FLUSH_CHUNK + 123;
        let mut t = FlowTable::new(TableConfig::default());
        let src = t.add_source("test.pcap");
        let mut out = Vec::new();
        for i in 0..n {
            let secs = i64::try_from((i * 7919) % 61).unwrap();
            let sport = u16::try_from(1024 + i).unwrap();
            t.ingest(src, at(secs), &udp(C, sport, S, 53, 40), &mut out);
        }
        assert!(out.is_empty(), "no flow ends before the flush");
        let mut chunks = Vec::new();
        t.flush_each(&mut |chunk| chunks.push(std::mem::take(chunk)));
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        let all: Vec<FlowRecord> = chunks.iter().flatten().cloned().collect();
        assert_eq!(all.len(), n);
        let ports: std::collections::BTreeSet<u16> = all.iter().map(|r| r.sport).collect();
        assert_eq!(ports.len(), n, "each flow once");
        assert!(
            all.windows(2)
                .all(|w| (w[0].first, w[0].id) <= (w[1].first, w[1].id)),
            "records in (start, id) order across chunks"
        );
        for c in &chunks {
            // A chunk holds FLUSH_CHUNK flows plus those starting with its newest.
            let newest = c.last().unwrap().first;
            let ties = c.iter().filter(|r| r.first == newest).count();
            assert!(c.len() <= FLUSH_CHUNK + ties, "chunk of {}", c.len());
        }
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn keyed_ingest_stops_to_hand_on_a_burst_of_ended_flows() {
        // 3 * OUT_BATCH + 10 UDP flows, idle for over a minute when the
        // next packets come: the sweep ends them all, OUT_BATCH per packet.
        let n = 3 * OUT_BATCH + 10;
        let mut packets: Vec<(i64, PacketInfo)> = (0..n)
            .map(|i| (0, udp(C, u16::try_from(1024 + i).unwrap(), S, 53, 40)))
            .collect();
        packets.extend((0..8).map(|i| (100 + i, udp(C, 7, S, 53, 40))));

        let mut t = FlowTable::new(TableConfig::default());
        let src = t.add_source("test.pcap");
        let keyer = t.keyer(src);
        let keyed: Vec<Keyed> = packets
            .iter()
            .map(|(secs, p)| keyer.key(at(*secs), p).unwrap())
            .collect();
        let mut rest = &keyed[..];
        let (mut handed, mut calls) = (Vec::new(), 0);
        while !rest.is_empty() {
            let mut out = Vec::new();
            let counted = t.ingest_keyed(src, rest, &mut out);
            calls += 1;
            assert!(counted >= 1 && counted <= rest.len());
            if counted < rest.len() {
                // Stopped for the records: at least a batch, at most one sweep step more.
                assert!(
                    (OUT_BATCH..OUT_BATCH + SWEEP_BUDGET).contains(&out.len()),
                    "{}",
                    out.len()
                );
            } else {
                assert!(out.len() < OUT_BATCH);
            }
            handed.append(&mut out);
            rest = &rest[counted..];
        }
        assert!(calls >= 4, "{calls} calls");
        t.flush(&mut handed);

        // The same records in the same order as packet by packet.
        let (want, _) = run(&packets);
        let ids = |v: &[FlowRecord]| v.iter().map(|r| (r.id, r.packets)).collect::<Vec<_>>();
        assert_eq!(handed.len(), n + 1);
        assert_eq!(ids(&handed), ids(&want));
    }

    #[test]
    fn current_snapshot_and_advance_leave_live_flows_as_they_are() {
        let mut t = FlowTable::new(TableConfig::default());
        let src = t.add_source("lo");
        let mut out = Vec::new();
        let syn = t.ingest(src, at(0), &tcp(C, 40000, S, 22, SYN, 0), &mut out);
        assert_eq!(t.current().map(|r| r.answered), Some(Some(false)));
        let back = t.ingest(src, at(1), &tcp(S, 22, C, 40000, SYN | ACK, 0), &mut out);
        assert!(!back.forward);
        let now = t.current().expect("live flow");
        assert_eq!(
            (now.id, now.answered, now.src),
            (syn.flow_id, Some(true), ip(C))
        );
        assert_eq!((now.packets, now.rpackets), (1, 1));
        let mut snap = Vec::new();
        t.snapshot(&mut snap);
        assert_eq!(snap.len(), 1);
        assert_eq!(t.len(), 1, "a snapshot ends nothing");
        // No packet for longer than the TCP idle timeout: the clock moves on and the flow ends.
        t.advance(at(10), &mut out);
        assert!(out.is_empty());
        t.advance(
            at(1 + TableConfig::default().tcp_idle_secs as i64 + 1),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, syn.flow_id);
        assert!(t.is_empty());
    }

    #[test]
    fn handshake_orients_and_establishes() {
        let (flows, _) = run(&[
            (0, tcp(C, 51514, S, 5432, SYN, 0)),
            (0, tcp(S, 5432, C, 51514, SYN | ACK, 0)),
            (0, tcp(C, 51514, S, 5432, ACK | PSH, 100)),
            (1, tcp(S, 5432, C, 51514, ACK | PSH | FIN, 300)),
            (1, tcp(C, 51514, S, 5432, ACK | FIN, 0)),
        ]);
        assert_eq!(flows.len(), 1);
        let f = &flows[0];
        assert_eq!(
            (f.src, f.sport, f.dst, f.dport),
            (ip(C), 51514, ip(S), 5432)
        );
        assert_eq!((f.packets, f.bytes, f.rpackets, f.rbytes), (3, 220, 2, 380));
        assert_eq!(f.state, FlowState::Established);
        assert_eq!(f.answered, Some(true));
        assert_eq!(f.oriented_by, OrientedBy::Handshake);
        assert_eq!(f.tcp_flags.to_string(), "SAFP");
        assert_eq!(f.rtcp_flags.to_string(), "SAFP");
        assert_eq!(f.source.as_ref(), "test.pcap");
    }

    #[test]
    fn syn_ack_alone_settles_direction() {
        let (flows, _) = run(&[(0, tcp(S, 5432, C, 40000, SYN | ACK, 0))]);
        assert_eq!((flows[0].src, flows[0].dport), (ip(C), 5432));
        assert_eq!(flows[0].oriented_by, OrientedBy::Handshake);
    }

    #[test]
    fn rst_rejects_and_silence_is_unanswered() {
        let (flows, _) = run(&[
            (0, tcp(C, 40000, S, 22, SYN, 0)),
            (0, tcp(S, 22, C, 40000, RST | ACK, 0)),
            (1, tcp(C, 40001, S, 23, SYN, 0)),
            (2, tcp(C, 40001, S, 23, SYN, 0)),
        ]);
        let by_port = |p: u16| flows.iter().find(|f| f.dport == p).expect("flow");
        assert_eq!(by_port(22).state, FlowState::Rejected);
        assert_eq!(by_port(22).answered, Some(false));
        assert_eq!(by_port(23).state, FlowState::Unanswered);
        assert_eq!(by_port(23).packets, 2);
    }

    #[test]
    fn mid_stream_tcp_uses_service_port_and_lower_port() {
        let (flows, _) = run(&[
            (0, tcp(S, 5432, C, 50000, ACK | PSH, 100)),
            (0, tcp(C, 50000, S, 5432, ACK, 0)),
            (1, tcp(C, 40000, S, 30000, ACK | PSH, 10)),
        ]);
        let pg = flows.iter().find(|f| f.dport == 5432).expect("pg flow");
        assert_eq!(
            (pg.src, pg.oriented_by, pg.state),
            (ip(C), OrientedBy::ServicePort, FlowState::Established)
        );
        let hi = flows
            .iter()
            .find(|f| f.dport == 30000)
            .expect("lower port is the responder");
        assert_eq!(hi.src, ip(C));
        // Data one way only, no SYN seen: the reverse direction was not visible.
        assert_eq!(hi.state, FlowState::OneWay);
        assert_eq!(hi.answered, None);
    }

    #[test]
    fn udp_first_packet_unless_only_source_is_a_service() {
        let (flows, _) = run(&[
            (0, udp(C, 53000, S, 53, 30)),
            (0, udp(S, 53, C, 53000, 90)),
            (1, udp(S, 123, C, 40000, 48)),
            (2, udp(C, 5353, S, 5353, 10)),
        ]);
        let dns = flows.iter().find(|f| f.dport == 53).expect("dns");
        assert_eq!(
            (dns.src, dns.oriented_by, dns.state),
            (ip(C), OrientedBy::FirstPacket, FlowState::Established)
        );
        let ntp = flows
            .iter()
            .find(|f| f.dport == 123)
            .expect("ntp reply seen first");
        // The service answered, even if its request was not captured.
        assert_eq!(
            (ntp.src, ntp.oriented_by, ntp.state),
            (ip(C), OrientedBy::ServicePort, FlowState::Established)
        );
        assert_eq!((ntp.packets, ntp.rpackets), (0, 1));
        let mdns = flows.iter().find(|f| f.dport == 5353).expect("mdns");
        assert_eq!(mdns.oriented_by, OrientedBy::FirstPacket);
    }

    #[test]
    fn icmp_echo_pairs_and_errors_reject() {
        let q = Quoted {
            src: ip(C),
            dst: ip(S),
            proto: ip_proto::UDP,
            sport: 40000,
            dport: 161,
        };
        let (flows, _) = run(&[
            (0, icmp(C, S, 8, 0, Some(7), None)),
            (0, icmp(S, C, 0, 0, Some(7), None)),
            (1, icmp(C, S, 8, 0, Some(8), None)),
            (2, udp(C, 40000, S, 161, 40)),
            (2, icmp(S, C, 3, 3, None, Some(q))),
        ]);
        let echo7 = flows
            .iter()
            .find(|f| f.proto.0 == 1 && f.packets == 1 && f.rpackets == 1)
            .expect("echo 7");
        assert_eq!((echo7.src, echo7.sport, echo7.dport), (ip(C), 0, 8 * 256));
        assert_eq!(echo7.state, FlowState::Established);
        let echo8 = flows
            .iter()
            .find(|f| f.proto.0 == 1 && f.rpackets == 0 && f.dport == 2048)
            .expect("echo 8");
        assert_eq!(echo8.state, FlowState::Unanswered);
        let snmp = flows.iter().find(|f| f.dport == 161).expect("snmp");
        assert_eq!(snmp.state, FlowState::Rejected);
        let unreach = flows
            .iter()
            .find(|f| f.dport == 3 * 256 + 3)
            .expect("the error is a flow of its own");
        assert_eq!((unreach.src, unreach.dst), (ip(S), ip(C)));
    }

    #[test]
    fn idle_timeout_splits_and_fin_closes() {
        let (flows, _) = run(&[
            (0, udp(C, 40000, S, 514, 10)),
            (61 + 1, udp(C, 40000, S, 514, 10)),
            (100, tcp(C, 41000, S, 80, SYN, 0)),
            (100, tcp(S, 80, C, 41000, SYN | ACK, 0)),
            (101, tcp(C, 41000, S, 80, FIN | ACK, 0)),
            (101, tcp(S, 80, C, 41000, FIN | ACK, 0)),
            (102, tcp(C, 41000, S, 80, SYN, 0)),
        ]);
        assert_eq!(flows.iter().filter(|f| f.dport == 514).count(), 2);
        let web: Vec<_> = flows.iter().filter(|f| f.dport == 80).collect();
        assert_eq!(web.len(), 2, "a SYN after both FINs starts a new flow");
        assert_eq!(web[0].packets + web[0].rpackets, 4);
    }

    #[test]
    fn active_timeout_keeps_orientation() {
        let config = TableConfig {
            active_secs: 100,
            tcp_idle_secs: 1000,
            ..TableConfig::default()
        };
        let mut packets = vec![
            (0, tcp(C, 41000, S, 80, SYN, 0)),
            (0, tcp(S, 80, C, 41000, SYN | ACK, 0)),
        ];
        for i in 1..=25 {
            packets.push((i * 10, tcp(S, 80, C, 41000, ACK | PSH, 100)));
        }
        let (flows, stats) = run_with(config, &packets);
        assert_eq!(flows.len(), 3);
        assert_eq!(stats.active_splits, 2);
        assert!(flows.iter().all(|f| f.src == ip(C)
            && f.oriented_by == OrientedBy::Handshake
            && f.state == FlowState::Established));
        assert_eq!(
            flows.iter().map(|f| f.packets + f.rpackets).sum::<u64>(),
            27
        );
    }

    #[test]
    fn later_fragments_count_into_the_first() {
        let mut first = udp(C, 123, S, 123, 1000);
        first.ip_len = 1500;
        first.fragment = Fragment::First { ident: 9 };
        let mut later = udp(C, 0, S, 0, 0);
        later.ip_len = 600;
        later.fragment = Fragment::Later { ident: 9 };
        let mut orphan = later.clone();
        orphan.fragment = Fragment::Later { ident: 10 };
        let (flows, stats) = run(&[(0, first), (0, later), (0, orphan)]);
        let ntp = flows.iter().find(|f| f.dport == 123).expect("ntp");
        assert_eq!((ntp.packets, ntp.bytes), (2, 2100));
        assert_eq!(stats.orphan_fragments, 1);
        assert_eq!(flows.iter().map(|f| f.packets).sum::<u64>(), 3);
    }

    #[test]
    fn full_table_evicts_half_open_first_and_counts() {
        let config = TableConfig {
            max_flows: 20,
            ..TableConfig::default()
        };
        let mut packets = Vec::new();
        for p in 0..10u16 {
            packets.push((0, tcp(C, 40000 + p, S, 443, SYN, 0)));
            packets.push((0, tcp(S, 443, C, 40000 + p, SYN | ACK, 0)));
        }
        for p in 0..30u16 {
            packets.push((1, tcp(C, 50000 + p, S, 22, SYN, 0)));
        }
        let (flows, stats) = run_with(config, &packets);
        assert_eq!(flows.len(), 40, "evicted flows are reported, not lost");
        assert!(stats.evicted > 0);
        assert!(stats.peak_live <= 20);
        // Evicted records come out first; none of them is an established flow.
        let evicted = usize::try_from(stats.evicted).unwrap();
        assert!(
            flows[..evicted]
                .iter()
                .all(|f| f.state == FlowState::Unanswered && f.dport == 22)
        );
        assert_eq!(
            flows
                .iter()
                .filter(|f| f.state == FlowState::Established)
                .count(),
            10
        );
    }

    #[test]
    fn vlans_and_sources_separate_flows() {
        let mut a = udp(C, 40000, S, 53, 10);
        a.vlan.push(10);
        let b = udp(C, 40000, S, 53, 10);
        let mut t = FlowTable::new(TableConfig::default());
        let s1 = t.add_source("one");
        let s2 = t.add_source("two");
        let mut out = Vec::new();
        t.ingest(s1, at(0), &a, &mut out);
        t.ingest(s1, at(0), &b, &mut out);
        t.ingest(s2, at(0), &b, &mut out);
        t.flush(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out.iter().filter(|f| f.vlan == vec![10]).count(), 1);
        assert_eq!(out.iter().filter(|f| f.source.as_ref() == "two").count(), 1);
    }
}
