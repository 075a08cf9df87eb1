//! Flows as scripts of packets, rendered with real TCP sequence numbers, and
//! the scheduler that interleaves many live flows in time order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::IpAddr;

use crate::packet::{self, IpHeader, Transport, flags};
use crate::pcap::PcapWriter;
use crate::rng::Rng;

/// One end of a flow.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// Its address.
    pub ip: IpAddr,
    /// The MAC address its frames carry on the capture link.
    pub mac: [u8; 6],
    /// TTL / hop limit of its packets as seen at the capture point.
    pub ttl: u8,
}

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Initiator (client) to responder (server).
    Fwd,
    /// Responder to initiator.
    Rev,
}

impl Dir {
    fn idx(self) -> usize {
        match self {
            Dir::Fwd => 0,
            Dir::Rev => 1,
        }
    }
}

/// What a packet carries above its transport header.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Nothing.
    Empty,
    /// These exact bytes.
    Bytes(Vec<u8>),
    /// This many opaque bytes (taken from a shared pseudo-random table).
    Filler(u16),
    /// One TLS application-data record of this total size (header included).
    Tls(u16),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.len(),
            Payload::Filler(n) | Payload::Tls(n) => usize::from(*n),
        }
    }
}

/// The transport part of one scripted packet.
#[derive(Debug, Clone)]
pub enum Seg {
    /// A TCP segment; sequence and acknowledgment numbers are filled in when
    /// rendered.
    Tcp {
        /// Flag bits.
        flags: u8,
        /// Payload.
        payload: Payload,
    },
    /// A UDP datagram.
    Udp(Payload),
    /// An ICMP/ICMPv6 message.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// The 4 bytes after the checksum.
        rest: [u8; 4],
        /// Payload.
        payload: Payload,
    },
    /// A complete frame written as is (ARP and other non-IP traffic).
    Raw(Vec<u8>),
}

/// One scripted packet.
#[derive(Debug, Clone)]
pub struct Pkt {
    /// Capture time, µs since the start of the capture.
    pub at: u64,
    /// Direction.
    pub dir: Dir,
    /// Content.
    pub seg: Seg,
}

/// Builds a flow's packet script with strictly increasing timestamps.
#[derive(Debug)]
pub struct Timeline {
    t: u64,
    pkts: Vec<Pkt>,
}

impl Timeline {
    /// A script whose first packet is sent at `start_us`.
    pub fn new(start_us: u64) -> Self {
        Self {
            t: start_us,
            pkts: Vec::new(),
        }
    }

    /// Adds a packet `dt_us` after the previous one (at least 1 µs after it).
    pub fn send(&mut self, dt_us: u64, dir: Dir, seg: Seg) -> &mut Self {
        if !self.pkts.is_empty() {
            self.t += dt_us.max(1);
        }
        self.pkts.push(Pkt {
            at: self.t,
            dir,
            seg,
        });
        self
    }

    /// Adds a TCP segment.
    pub fn tcp(&mut self, dt_us: u64, dir: Dir, flags: u8, payload: Payload) -> &mut Self {
        self.send(dt_us, dir, Seg::Tcp { flags, payload })
    }

    /// SYN, SYN-ACK one round trip later, then the client's ACK.
    pub fn open(&mut self, rtt_us: u64) -> &mut Self {
        self.tcp(0, Dir::Fwd, flags::SYN, Payload::Empty)
            .tcp(rtt_us, Dir::Rev, flags::SYN | flags::ACK, Payload::Empty)
            .tcp(rtt_us / 20 + 30, Dir::Fwd, flags::ACK, Payload::Empty)
    }

    /// A data segment (PSH|ACK).
    pub fn data(&mut self, dt_us: u64, dir: Dir, payload: Payload) -> &mut Self {
        self.tcp(dt_us, dir, flags::PSH | flags::ACK, payload)
    }

    /// A pure ACK.
    pub fn ack(&mut self, dt_us: u64, dir: Dir) -> &mut Self {
        self.tcp(dt_us, dir, flags::ACK, Payload::Empty)
    }

    /// An orderly close started by `closer`: FIN|ACK, then either the peer's
    /// FIN|ACK and a last ACK (3 packets) or an ACK, FIN|ACK, ACK (4 packets).
    pub fn close(&mut self, dt_us: u64, closer: Dir, rtt_us: u64, four_way: bool) -> &mut Self {
        let peer = if closer == Dir::Fwd {
            Dir::Rev
        } else {
            Dir::Fwd
        };
        let fin = flags::FIN | flags::ACK;
        self.tcp(dt_us, closer, fin, Payload::Empty);
        if four_way {
            self.ack(rtt_us, peer).tcp(40, peer, fin, Payload::Empty);
        } else {
            self.tcp(rtt_us, peer, fin, Payload::Empty);
        }
        self.ack(rtt_us / 20 + 20, closer)
    }

    /// The finished script.
    pub fn into_pkts(self) -> Vec<Pkt> {
        self.pkts
    }
}

/// A flow between two hosts plus what is needed to render its packets.
#[derive(Debug)]
pub struct Flow {
    client: Host,
    server: Host,
    sport: u16,
    dport: u16,
    pkts: Vec<Pkt>,
    next: usize,
    salt: usize,
    isn: [u32; 2],
    nxt: [u32; 2],
    ip_id: [u16; 2],
    label: [u32; 2],
    window: [u16; 2],
}

impl Flow {
    /// A flow from `client:sport` to `server:dport` playing `pkts` (in time
    /// order). Initial sequence numbers, IP ids and flow labels come from `rng`.
    pub fn new(
        client: Host,
        server: Host,
        sport: u16,
        dport: u16,
        pkts: Vec<Pkt>,
        rng: &mut Rng,
    ) -> Self {
        let isn = [rng.next_u32(), rng.next_u32()];
        Self {
            client,
            server,
            sport,
            dport,
            pkts,
            next: 0,
            salt: rng.below(4096) as usize,
            isn,
            nxt: isn,
            ip_id: [rng.next_u32() as u16, rng.next_u32() as u16],
            label: [rng.next_u32() & 0xf_ffff, rng.next_u32() & 0xf_ffff],
            window: [rng.range(200, 4000) as u16, rng.range(200, 4000) as u16],
        }
    }

    /// Time of the first packet (0 for an empty script).
    pub fn first_at(&self) -> u64 {
        self.pkts.first().map_or(0, |p| p.at)
    }

    fn next_at(&self) -> Option<u64> {
        self.pkts.get(self.next).map(|p| p.at)
    }

    /// Renders the next packet into `frame`; returns its capture time, or
    /// `None` when the script is done.
    fn render_next(
        &mut self,
        frame: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        filler: &[u8],
    ) -> Option<u64> {
        let i = self.next;
        let pkt = self.pkts.get(i)?;
        self.next += 1;
        let d = pkt.dir.idx();
        let (me, peer, sport, dport) = match pkt.dir {
            Dir::Fwd => (self.client, self.server, self.sport, self.dport),
            Dir::Rev => (self.server, self.client, self.dport, self.sport),
        };
        let ip = IpHeader {
            src_mac: me.mac,
            dst_mac: peer.mac,
            src: me.ip,
            dst: peer.ip,
            ttl: me.ttl,
            ip_id: self.ip_id[d],
            flow_label: self.label[d],
            dont_fragment: matches!(pkt.seg, Seg::Tcp { .. }),
        };
        self.ip_id[d] = self.ip_id[d].wrapping_add(1);

        let fill = |scratch: &mut Vec<u8>, p: &Payload| {
            scratch.clear();
            match p {
                Payload::Empty => {}
                Payload::Bytes(b) => scratch.extend_from_slice(b),
                Payload::Filler(n) | Payload::Tls(n) => {
                    let n = usize::from(*n);
                    let off = (self.salt + i * 131) % (filler.len() - 2048);
                    scratch.extend_from_slice(&filler[off..off + n]);
                    if let (Payload::Tls(_), true) = (p, n >= 5) {
                        let body = (n - 5) as u16;
                        scratch[..5].copy_from_slice(&[
                            0x17,
                            0x03,
                            0x03,
                            (body >> 8) as u8,
                            body as u8,
                        ]);
                    }
                }
            }
        };

        match &pkt.seg {
            Seg::Raw(bytes) => {
                frame.clear();
                frame.extend_from_slice(bytes);
            }
            Seg::Udp(p) => {
                fill(scratch, p);
                packet::build(
                    frame,
                    &ip,
                    &Transport::Udp {
                        sport,
                        dport,
                        payload: scratch,
                    },
                );
            }
            Seg::Icmp {
                ty,
                code,
                rest,
                payload,
            } => {
                fill(scratch, payload);
                packet::build(
                    frame,
                    &ip,
                    &Transport::Icmp {
                        ty: *ty,
                        code: *code,
                        rest: *rest,
                        payload: scratch,
                    },
                );
            }
            Seg::Tcp { flags: f, payload } => {
                let f = *f;
                let o = 1 - d;
                let (seq, ack);
                if f & flags::SYN != 0 {
                    // A SYN (or its retransmission) always carries the ISN.
                    seq = self.isn[d];
                    self.nxt[d] = self.isn[d].wrapping_add(1);
                    ack = if f & flags::ACK != 0 { self.nxt[o] } else { 0 };
                } else if f & flags::RST != 0 && self.nxt[d] == self.isn[d] {
                    // A reset refusing a SYN: seq 0, acknowledging the SYN.
                    seq = 0;
                    ack = self.nxt[o];
                } else {
                    seq = self.nxt[d];
                    ack = if f & flags::ACK != 0 { self.nxt[o] } else { 0 };
                    let len = payload.len() as u32 + u32::from(f & flags::FIN != 0);
                    self.nxt[d] = self.nxt[d].wrapping_add(len);
                }
                let mss: u16 = if me.ip.is_ipv6() { 1440 } else { 1460 };
                let syn_opts = [2, 4, (mss >> 8) as u8, mss as u8, 1, 3, 3, 7, 1, 1, 4, 2];
                let options: &[u8] = if f & flags::SYN != 0 { &syn_opts } else { &[] };
                let window = if f & flags::SYN != 0 {
                    64240
                } else if f & flags::RST != 0 {
                    0
                } else {
                    self.window[d]
                };
                fill(scratch, payload);
                packet::build(
                    frame,
                    &ip,
                    &Transport::Tcp {
                        sport,
                        dport,
                        seq,
                        ack,
                        flags: f,
                        window,
                        options,
                        payload: scratch,
                    },
                );
            }
        }
        Some(pkt.at)
    }
}

/// What the scheduler wrote.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Flows played.
    pub flows: u64,
    /// Packets written.
    pub packets: u64,
    /// IPv6 packets among them.
    pub v6_packets: u64,
    /// Most flows that had sent their first packet and not yet their last.
    pub peak_live: usize,
    /// Capture time of the last packet, µs from the start.
    pub last_us: u64,
}

/// A table of opaque bytes that stands in for encrypted payloads.
pub fn filler_table(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut t = Vec::with_capacity(8192);
    while t.len() < 8192 {
        t.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    t
}

/// Plays `flows` (sorted by their first packet's time) into `out`, all
/// interleaved in time order, stamping packets `base_us` + their offset.
/// Ties are broken by flow order, so output is fully deterministic.
pub fn play<W: Write>(
    out: &mut PcapWriter<W>,
    base_us: u64,
    flows: impl Iterator<Item = Flow>,
    filler: &[u8],
) -> io::Result<Stats> {
    let mut flows = flows.peekable();
    let mut slots: Vec<Option<Flow>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
    let (mut frame, mut scratch) = (Vec::with_capacity(2048), Vec::with_capacity(2048));
    let mut stats = Stats::default();
    loop {
        let top = heap.peek().map(|Reverse((at, _, _))| *at);
        let start = flows.peek().map(|f| f.next_at().unwrap_or(0));
        let activate = match (start, top) {
            (Some(s), Some(t)) => s <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if activate {
            let Some(flow) = flows.next() else { break };
            let Some(at) = flow.next_at() else { continue };
            let order = stats.flows;
            stats.flows += 1;
            let slot = match free.pop() {
                Some(s) => {
                    slots[s] = Some(flow);
                    s
                }
                None => {
                    slots.push(Some(flow));
                    slots.len() - 1
                }
            };
            heap.push(Reverse((at, order, slot)));
            stats.peak_live = stats.peak_live.max(heap.len());
            continue;
        }
        let Some(Reverse((_, order, slot))) = heap.pop() else {
            break;
        };
        let Some(flow) = slots[slot].as_mut() else {
            continue;
        };
        if let Some(at) = flow.render_next(&mut frame, &mut scratch, filler) {
            out.write(base_us + at, &frame)?;
            stats.packets += 1;
            stats.v6_packets += u64::from(frame.get(12..14) == Some(&[0x86, 0xdd]));
            stats.last_us = stats.last_us.max(at);
        }
        match flow.next_at() {
            Some(at) => heap.push(Reverse((at, order, slot))),
            None => {
                slots[slot] = None;
                free.push(slot);
            }
        }
    }
    Ok(stats)
}
