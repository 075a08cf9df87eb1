//! The benchmark capture: a synthetic enterprise of 8 sites, each with five
//! zones (dmz, app, db, office, svc), talking among themselves and to the
//! internet, plus the zones file that declares it.
//!
//! Most flows follow a declared path; a few percent do not (an office PC on
//! the database, a database calling out, scanners knocking on the DMZ), so
//! findings are the exception, as on a real network.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flow::{self, Dir, Flow, Host, Payload, Seg, Timeline};
use crate::packet::flags;
use crate::payloads::{dns_answer, dns_query};
use crate::pcap::PcapWriter;
use crate::rng::Rng;

/// 2024-05-01T10:00:00Z in µs since the Unix epoch.
pub const START_US: u64 = 1_714_557_600_000_000;
const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
const SITES: u8 = 8;
/// /24 subnets per zone (plus 4 IPv6 /64s).
const SUBNETS: u8 = 20;
const MS: u64 = 1_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Params {
    /// Number of flows.
    pub flows: u64,
    /// Target number of packets (met within a fraction of a percent unless
    /// it is below what the flows need at minimum).
    pub packets: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Span of flow start times, seconds.
    pub duration_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Dmz,
    App,
    Db,
    Office,
    Svc,
}

const ROLES: [Role; 5] = [Role::Dmz, Role::App, Role::Db, Role::Office, Role::Svc];

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Dmz => "dmz",
            Role::App => "app",
            Role::Db => "db",
            Role::Office => "office",
            Role::Svc => "svc",
        }
    }
}

/// Zone number (1..=40): the second octet of its 10.z.0.0/16 space.
fn zone_id(site: u8, role: Role) -> u8 {
    site * 5 + ROLES.iter().position(|&r| r == role).unwrap_or(0) as u8 + 1
}

fn zone_name(site: u8, role: Role) -> String {
    format!("{}-{:02}", role.name(), site + 1)
}

fn group_name(site: u8, role: Role) -> String {
    format!("{}-servers", zone_name(site, role))
}

fn v6_prefix(role: Role, z: u8, k: u8) -> [u16; 4] {
    match role {
        // DMZ hosts have global addresses, the rest unique-local ones.
        Role::Dmz => [0x2001, 0x0db8, u16::from(z), u16::from(k)],
        _ => [0xfd00, 0, u16::from(z), u16::from(k)],
    }
}

#[derive(Debug, Clone, Copy)]
enum End {
    Internet,
    Zone(Role),
    Group(Role),
    NextZone(Role),
    NextGroup(Role),
    Undeclared,
    Scanner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A declared path: becomes an `[[allow]]` rule of every site.
    Allowed,
    /// Inside one zone: allowed without a rule.
    Intra,
    /// Not declared, and answered: a finding.
    Violation,
    /// Not declared and never answered: a blocked attempt.
    Probe,
}

struct PathSpec {
    from: End,
    to: End,
    services: &'static [(bool, u16)], // (udp, port)
    weight: u32,
    v6: bool,
    kind: Kind,
}

const fn p(
    from: End,
    to: End,
    services: &'static [(bool, u16)],
    weight: u32,
    v6: bool,
    kind: Kind,
) -> PathSpec {
    PathSpec {
        from,
        to,
        services,
        weight,
        v6,
        kind,
    }
}

const T: bool = false;
const U: bool = true;

use End::*;
use Kind::*;
use Role::*;

/// The traffic matrix of one site. `Allowed` entries are exactly the
/// `[[allow]]` rules written to the zones file (24 per site).
const PATHS: &[PathSpec] = &[
    p(Internet, Zone(Dmz), &[(T, 443)], 220, true, Allowed),
    p(Internet, Zone(Dmz), &[(T, 80)], 40, true, Allowed),
    p(Internet, Zone(Dmz), &[(U, 443)], 60, true, Allowed),
    p(Zone(Dmz), Zone(App), &[(T, 8080)], 120, true, Allowed),
    p(Zone(Dmz), Zone(App), &[(T, 8443)], 30, true, Allowed),
    p(Zone(App), Group(Db), &[(T, 5432)], 90, false, Allowed),
    p(Zone(App), Group(Db), &[(T, 3306)], 30, false, Allowed),
    p(Zone(App), Group(Db), &[(T, 6379)], 60, false, Allowed),
    p(Zone(App), Internet, &[(T, 443)], 40, true, Allowed),
    p(
        Zone(Office),
        Internet,
        &[(T, 443), (T, 80), (U, 443)],
        160,
        true,
        Allowed,
    ),
    p(
        Zone(Office),
        Zone(Dmz),
        &[(T, 22), (T, 443)],
        15,
        true,
        Allowed,
    ),
    p(Zone(Office), Zone(App), &[(T, 8080)], 15, true, Allowed),
    p(Zone(Office), Zone(App), &[(T, 22)], 5, true, Allowed),
    p(
        Zone(Dmz),
        Zone(Svc),
        &[(U, 53), (U, 123)],
        25,
        true,
        Allowed,
    ),
    p(
        Zone(App),
        Zone(Svc),
        &[(U, 53), (U, 123)],
        40,
        true,
        Allowed,
    ),
    p(Zone(Db), Zone(Svc), &[(U, 53), (U, 123)], 10, true, Allowed),
    p(
        Zone(Office),
        Zone(Svc),
        &[(U, 53), (U, 123)],
        90,
        true,
        Allowed,
    ),
    p(Zone(Dmz), Zone(Svc), &[(T, 389)], 5, false, Allowed),
    p(Zone(App), Zone(Svc), &[(T, 389)], 10, false, Allowed),
    p(Zone(Db), Zone(Svc), &[(T, 389)], 3, false, Allowed),
    p(Zone(Office), Zone(Svc), &[(T, 389)], 20, false, Allowed),
    p(Zone(Svc), Internet, &[(U, 53), (U, 123)], 40, true, Allowed),
    p(Zone(App), NextZone(App), &[(T, 8080)], 20, true, Allowed),
    p(Zone(Db), NextGroup(Db), &[(T, 5432)], 5, false, Allowed),
    // Inside a zone: allowed without a rule.
    p(Zone(Office), Zone(Office), &[(T, 445)], 20, true, Intra),
    p(Zone(App), Zone(App), &[(T, 8080)], 20, true, Intra),
    p(Group(Db), Group(Db), &[(T, 5432)], 5, false, Intra),
    // The exceptions.
    p(Zone(Office), Group(Db), &[(T, 5432)], 6, false, Violation), // unexpected-path
    p(Zone(Db), Internet, &[(T, 443)], 3, false, Violation),       // egress
    p(Internet, Group(Db), &[(T, 5432)], 1, false, Violation),     // public-exposure
    p(Zone(App), Zone(Db), &[(T, 22)], 2, false, Violation),       // forbidden-path (deny)
    p(Zone(Office), Zone(Dmz), &[(T, 3389)], 4, true, Violation),  // unexpected-path
    p(Undeclared, Zone(App), &[(T, 8080)], 2, false, Violation),   // undeclared-address
    p(
        Zone(Dmz),
        Zone(Db),
        &[(T, 5432), (T, 6379)],
        3,
        false,
        Probe,
    ), // lateral, unanswered
    p(
        Scanner,
        Zone(Dmz),
        &[
            (T, 22),
            (T, 23),
            (T, 25),
            (T, 445),
            (T, 3389),
            (T, 5900),
            (T, 8081),
        ],
        20,
        false,
        Probe,
    ),
];

/// Chance that a path allowing IPv6 uses it (gives ~20% IPv6 flows overall).
const V6_SHARE: f64 = 0.27;

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Handshake, data, FIN close (3- or 4-way).
    Normal { four_way: bool },
    /// Handshake, data, then one side resets.
    ResetMid,
    /// SYN refused with RST|ACK.
    Rejected,
    /// SYN and its retransmissions, never answered.
    Unanswered { tries: u8 },
    /// DNS: queries (A, then maybe AAAA) and answers.
    Dns { queries: u8, answered: bool },
    /// NTP request and reply.
    Ntp,
    /// UDP request/response traffic (QUIC-like).
    UdpData,
}

impl Shape {
    /// Packets besides the data phase, and whether it has a data phase.
    fn fixed(self) -> (u64, bool) {
        match self {
            Shape::Normal { four_way } => (3 + if four_way { 4 } else { 3 }, true),
            Shape::ResetMid => (4, true),
            Shape::Rejected => (2, false),
            Shape::Unanswered { tries } => (u64::from(tries), false),
            Shape::Dns { queries, answered } => {
                (u64::from(queries) * if answered { 2 } else { 1 }, false)
            }
            Shape::Ntp => (2, false),
            Shape::UdpData => (0, true),
        }
    }
}

struct Plan {
    start_us: u64,
    client: Host,
    server: Host,
    sport: u16,
    dport: u16,
    udp: bool,
    shape: Shape,
    /// Packets of the data phase (0 unless the shape has one; then ≥ 2).
    data: u32,
    rtt_us: u32,
    seed: u64,
    off_policy: bool,
}

fn internal_host(
    site: u8,
    role: Role,
    server: bool,
    in_group: bool,
    v6: bool,
    rng: &mut Rng,
) -> Host {
    let z = zone_id(site, role);
    let (k, h) = if in_group {
        (0, rng.range(1, 14) as u8)
    } else if server {
        (0, rng.range(16, 62) as u8)
    } else {
        (
            rng.range(1, u64::from(SUBNETS) - 1) as u8,
            rng.range(1, 254) as u8,
        )
    };
    let ip = if v6 {
        let pf = v6_prefix(role, z, k % 4);
        IpAddr::V6(Ipv6Addr::new(
            pf[0],
            pf[1],
            pf[2],
            pf[3],
            0,
            0,
            u16::from(k),
            u16::from(h),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, z, k, h))
    };
    let o = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let b = a.octets();
            [z, k, b[14], b[15]]
        }
    };
    let ttl = if role == Office && !server { 128 } else { 64 };
    Host {
        ip,
        mac: [0x02, 0x42, o[0], o[1], o[2], o[3]],
        ttl,
    }
}

fn internet_host(server: bool, v6: bool, rng: &mut Rng) -> Host {
    let ip = if v6 {
        let sub = if server {
            rng.below(16) as u16
        } else {
            rng.below(65536) as u16
        };
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0x0db8,
            0xffff,
            sub,
            0,
            0,
            rng.next_u32() as u16,
            rng.range(1, 0xfffe) as u16,
        ))
    } else {
        let nets = [[198, 51, 100], [203, 0, 113], [192, 0, 2]];
        // Servers sit in 192.0.2.0/24 and 203.0.113.0/24; clients anywhere.
        let n = if server {
            nets[1 + rng.below(2) as usize]
        } else {
            nets[rng.below(3) as usize]
        };
        IpAddr::V4(Ipv4Addr::new(n[0], n[1], n[2], rng.range(1, 240) as u8))
    };
    Host {
        ip,
        mac: ROUTER_MAC,
        ttl: rng.range(44, 58) as u8,
    }
}

fn resolve(end: End, site: u8, is_dst: bool, v6: bool, rng: &mut Rng) -> Host {
    let next = (site + 1) % SITES;
    match end {
        Internet => internet_host(is_dst, v6, rng),
        Zone(r) => internal_host(site, r, is_dst, false, v6, rng),
        Group(r) => internal_host(site, r, true, true, v6, rng),
        NextZone(r) => internal_host(next, r, is_dst, false, v6, rng),
        NextGroup(r) => internal_host(next, r, true, true, v6, rng),
        Undeclared => {
            let h = rng.range(1, 20) as u8;
            Host {
                ip: IpAddr::V4(Ipv4Addr::new(172, 16, 5, h)),
                mac: [0x02, 0x42, 172, 16, 5, h],
                ttl: 64,
            }
        }
        Scanner => Host {
            ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, rng.range(250, 254) as u8)),
            mac: ROUTER_MAC,
            ttl: 49,
        },
    }
}

fn is_internet(end: End) -> bool {
    matches!(end, Internet | Scanner)
}

fn plan_flows(params: &Params, rng: &mut Rng) -> Vec<Plan> {
    let weights: Vec<u32> = PATHS.iter().map(|p| p.weight).collect();
    let span_us = params.duration_secs.max(1) * 1_000_000;
    let mut plans = Vec::with_capacity(params.flows as usize);
    for _ in 0..params.flows {
        let path = &PATHS[rng.weighted(&weights)];
        let site = rng.below(u64::from(SITES)) as u8;
        let v6 = path.v6 && rng.chance(V6_SHARE);
        let client = resolve(path.from, site, false, v6, rng);
        let server = resolve(path.to, site, true, v6, rng);
        let (udp, dport) = path.services[rng.below(path.services.len() as u64) as usize];
        let windows = matches!(path.from, Zone(Office));
        let sport = if matches!(path.from, Scanner) {
            match client.ip {
                IpAddr::V4(a) => 40_000 + u16::from(a.octets()[3]),
                IpAddr::V6(_) => 40_000,
            }
        } else if windows {
            rng.range(49152, 65535) as u16
        } else {
            rng.range(32768, 60999) as u16
        };
        let shape = if path.kind == Probe {
            if rng.chance(0.3) {
                Shape::Rejected
            } else {
                Shape::Unanswered {
                    tries: if matches!(path.from, Scanner) {
                        1
                    } else {
                        rng.range(1, 4) as u8
                    },
                }
            }
        } else if udp {
            match dport {
                53 => Shape::Dns {
                    queries: if rng.chance(0.15) { 2 } else { 1 },
                    answered: !rng.chance(0.01),
                },
                123 => Shape::Ntp,
                _ => Shape::UdpData,
            }
        } else {
            let x = rng.unit();
            if x < 0.03 {
                Shape::Rejected
            } else if x < 0.05 {
                Shape::Unanswered {
                    tries: rng.range(1, 4) as u8,
                }
            } else if x < 0.09 {
                Shape::ResetMid
            } else {
                Shape::Normal {
                    four_way: rng.chance(0.5),
                }
            }
        };
        let far = is_internet(path.from) || is_internet(path.to);
        let rtt_us = if far {
            rng.log_uniform(8_000, 180_000)
        } else {
            rng.log_uniform(150, 2_000)
        } as u32;
        plans.push(Plan {
            start_us: rng.below(span_us),
            client,
            server,
            sport,
            dport,
            udp,
            shape,
            data: 0,
            rtt_us,
            seed: rng.next_u64(),
            off_policy: matches!(path.kind, Violation | Probe),
        });
    }

    // Share the packet budget: every data phase gets 2 packets, the rest goes
    // by heavy-tailed weights (most flows are small, a few are bulk).
    let mut fixed = 0u64;
    let mut weights = Vec::with_capacity(plans.len());
    for pl in &plans {
        let (n, data) = pl.shape.fixed();
        fixed += n + if data { 2 } else { 0 };
        weights.push(if data {
            (1.0 - rng.unit()).powf(-1.0 / 1.2).min(3000.0)
        } else {
            0.0
        });
    }
    let extra = params.packets.saturating_sub(fixed) as f64;
    let total_w: f64 = weights.iter().sum();
    let (mut cum_w, mut given) = (0.0, 0u64);
    for (pl, w) in plans.iter_mut().zip(weights) {
        if pl.shape.fixed().1 {
            cum_w += w;
            let due = if total_w > 0.0 {
                (extra * cum_w / total_w).round() as u64
            } else {
                0
            };
            pl.data = 2 + (due - given).min(u64::from(u32::MAX - 2)) as u32;
            given = due;
        }
    }
    plans.sort_by_key(|p| p.start_us);
    plans
}

/// A payload for `len` bytes of application data on `port`.
fn opaque(port: u16, len: u64) -> Payload {
    let len = len as u16;
    if port == 443 {
        Payload::Tls(len.max(5))
    } else {
        Payload::Filler(len)
    }
}

fn expand(pl: &Plan) -> Flow {
    let mut rng = Rng::new(pl.seed);
    let rtt = u64::from(pl.rtt_us);
    let mss: u64 = if pl.client.ip.is_ipv6() { 1440 } else { 1460 };
    let mut tl = Timeline::new(pl.start_us);
    let tcp = !pl.udp;
    match pl.shape {
        Shape::Rejected => {
            tl.tcp(0, Dir::Fwd, flags::SYN, Payload::Empty).tcp(
                rtt,
                Dir::Rev,
                flags::RST | flags::ACK,
                Payload::Empty,
            );
        }
        Shape::Unanswered { tries } => {
            let mut backoff = 1_000 * MS;
            for i in 0..tries {
                tl.tcp(
                    if i == 0 { 0 } else { backoff },
                    Dir::Fwd,
                    flags::SYN,
                    Payload::Empty,
                );
                if i > 0 {
                    backoff *= 2;
                }
            }
        }
        Shape::Dns { queries, answered } => {
            let id = rng.next_u32() as u16;
            let name = format!("h{}.svc{}.example.com", rng.below(500), rng.below(40));
            for q in 0..queries {
                let v6 = q == 1;
                let qid = id.wrapping_add(u16::from(q));
                tl.send(
                    if q == 0 { 0 } else { 150 },
                    Dir::Fwd,
                    Seg::Udp(Payload::Bytes(dns_query(qid, &name, v6))),
                );
                if answered {
                    let addr = if v6 {
                        IpAddr::V6(Ipv6Addr::new(
                            0x2001,
                            0xdb8,
                            0xffff,
                            0,
                            0,
                            0,
                            0,
                            rng.range(1, 999) as u16,
                        ))
                    } else {
                        IpAddr::V4(Ipv4Addr::new(192, 0, 2, rng.range(1, 254) as u8))
                    };
                    tl.send(
                        rtt + rng.below(3 * MS),
                        Dir::Rev,
                        Seg::Udp(Payload::Bytes(dns_answer(qid, &name, addr))),
                    );
                }
            }
        }
        Shape::Ntp => {
            let mut req = vec![0u8; 48];
            req[0] = 0x23; // NTPv4, client
            req[40..48].copy_from_slice(&rng.next_u64().to_be_bytes());
            let mut resp = vec![0u8; 48];
            resp[0] = 0x24; // NTPv4, server
            resp[1] = 2; // stratum
            resp[24..32].copy_from_slice(&req[40..48]); // origin = client's transmit
            resp[32..48].copy_from_slice(
                &[rng.next_u64().to_be_bytes(), rng.next_u64().to_be_bytes()].concat(),
            );
            tl.send(0, Dir::Fwd, Seg::Udp(Payload::Bytes(req)));
            tl.send(rtt + 40, Dir::Rev, Seg::Udp(Payload::Bytes(resp)));
        }
        Shape::Normal { .. } | Shape::ResetMid | Shape::UdpData => {
            if tcp {
                tl.open(rtt);
            }
            let n = u64::from(pl.data);
            let bmax = (n / 6).max(3);
            // Pauses between requests: people and applications think, bulk
            // transfers barely pause.
            let think_mean = if n < 40 { 700_000.0 } else { 40_000.0 };
            let mut left = n;
            let mut first = true;
            while left > 0 {
                let think = if first {
                    rtt / 20 + 120
                } else {
                    (rng.exp(think_mean) as u64).clamp(MS, 5_000 * MS)
                };
                let req = if pl.udp && first {
                    1200 + rng.below(53)
                } else {
                    rng.log_uniform(40, 700)
                };
                data(&mut tl, tcp, think, Dir::Fwd, opaque(pl.dport, req));
                left -= 1;
                first = false;
                let burst = rng.range(1, bmax).min(left);
                for j in 0..burst {
                    if left == 0 {
                        break;
                    }
                    let size = if j + 1 < burst {
                        mss
                    } else {
                        rng.log_uniform(60, mss)
                    };
                    // The first segment comes a round trip (plus server time)
                    // after the request; the rest are paced by the link, one
                    // round trip per window of 64 segments.
                    let dt = if j == 0 {
                        rtt + rng.log_uniform(50, 20_000)
                    } else if j % 64 == 0 {
                        rtt
                    } else {
                        12 + rng.below(60)
                    };
                    if tcp && j + 1 < burst {
                        tl.tcp(dt, Dir::Rev, flags::ACK, opaque(pl.dport, size));
                    } else {
                        data(&mut tl, tcp, dt, Dir::Rev, opaque(pl.dport, size));
                    }
                    left -= 1;
                    if j % 2 == 1 && left > 0 {
                        if tcp {
                            tl.ack(20 + rng.below(80), Dir::Fwd);
                        } else {
                            tl.send(
                                20 + rng.below(80),
                                Dir::Fwd,
                                Seg::Udp(Payload::Filler(rng.range(30, 60) as u16)),
                            );
                        }
                        left -= 1;
                    }
                }
            }
            // Connections idle a while (keep-alive) before closing.
            let idle = (rng.exp(1_500_000.0) as u64).clamp(MS, 15_000 * MS);
            match pl.shape {
                Shape::Normal { four_way } => {
                    let closer = if rng.chance(0.7) { Dir::Fwd } else { Dir::Rev };
                    tl.close(idle, closer, rtt, four_way);
                }
                Shape::ResetMid => {
                    let who = if rng.chance(0.5) { Dir::Fwd } else { Dir::Rev };
                    tl.tcp(idle, who, flags::RST | flags::ACK, Payload::Empty);
                }
                _ => {}
            }
        }
    }
    Flow::new(
        pl.client,
        pl.server,
        pl.sport,
        pl.dport,
        tl.into_pkts(),
        &mut rng,
    )
}

fn data(tl: &mut Timeline, tcp: bool, dt: u64, dir: Dir, payload: Payload) {
    if tcp {
        tl.data(dt, dir, payload);
    } else {
        tl.send(dt, dir, Seg::Udp(payload));
    }
}

/// What [`write`] produced.
#[derive(Debug)]
pub struct Summary {
    /// Scheduler counts.
    pub stats: flow::Stats,
    /// IPv6 flows.
    pub v6_flows: u64,
    /// UDP flows.
    pub udp_flows: u64,
    /// Flows off the declared paths (findings expected).
    pub off_policy_flows: u64,
}

/// Writes the benchmark capture.
pub fn write<W: Write>(out: W, params: &Params) -> io::Result<Summary> {
    let mut rng = Rng::new(params.seed);
    let plans = plan_flows(params, &mut rng);
    let v6_flows = plans.iter().filter(|p| p.client.ip.is_ipv6()).count() as u64;
    let udp_flows = plans.iter().filter(|p| p.udp).count() as u64;
    let off_policy_flows = plans.iter().filter(|p| p.off_policy).count() as u64;
    let mut w = PcapWriter::new(out)?;
    let filler = flow::filler_table(params.seed ^ 0xf111);
    let stats = flow::play(&mut w, START_US, plans.iter().map(expand), &filler)?;
    w.finish()?;
    Ok(Summary {
        stats,
        v6_flows,
        udp_flows,
        off_policy_flows,
    })
}

/// The zones file declaring the benchmark network: 40 zones (20 IPv4 /24s and
/// 4 IPv6 /64s each), 40 groups (one /28 each) = 1,000 CIDRs; 192 allow rules
/// and 8 deny rules = 200 rules.
pub fn zones_toml() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Zones of the synthetic benchmark network written by `zonewatch-gencap bench`.\n\
         # 8 sites x 5 zones (dmz, app, db, office, svc); each zone owns twenty /24s\n\
         # and four IPv6 /64s, and one /28 group of servers: 1,000 CIDRs in all.\n\
         # 24 allow rules and 1 deny rule per site: 200 rules. Nearly all generated\n\
         # traffic follows them; a few percent is deliberately off-policy.\n"
    );
    for site in 0..SITES {
        for role in ROLES {
            let z = zone_id(site, role);
            let mut cidrs: Vec<String> = (0..SUBNETS)
                .map(|k| format!("\"10.{z}.{k}.0/24\""))
                .collect();
            for k in 0..4u8 {
                let pf = v6_prefix(role, z, k);
                cidrs.push(format!(
                    "\"{:x}:{:x}:{:x}:{:x}::/64\"",
                    pf[0], pf[1], pf[2], pf[3]
                ));
            }
            let (trust, exposure) = match role {
                Dmz => ("low", ""),
                Db => ("high", "exposure = \"private\"\n"),
                _ => ("medium", ""),
            };
            let _ = writeln!(
                s,
                "[[zone]]\nname = \"{}\"\ncidrs = [{}]\ntrust = \"{trust}\"\n{exposure}",
                zone_name(site, role),
                cidrs.join(", ")
            );
            let services = match role {
                Dmz => "\"tcp/80\", \"tcp/443\"",
                App => "\"tcp/8080\"",
                Db => "\"tcp/5432\", \"tcp/3306\", \"tcp/6379\"",
                Office => "\"tcp/445\"",
                Svc => "\"udp/53\", \"udp/123\", \"tcp/389\"",
            };
            let _ = writeln!(
                s,
                "[[group]]\nname = \"{}\"\nzone = \"{}\"\nhosts = [\"10.{z}.0.0/28\"]\nservices = [{services}]\n",
                group_name(site, role),
                zone_name(site, role)
            );
        }
    }
    let end_name = |e: End, site: u8| -> String {
        let next = (site + 1) % SITES;
        match e {
            Internet | Scanner => "internet".to_string(),
            Zone(r) => zone_name(site, r),
            Group(r) => group_name(site, r),
            NextZone(r) => zone_name(next, r),
            NextGroup(r) => group_name(next, r),
            Undeclared => "undeclared".to_string(),
        }
    };
    for site in 0..SITES {
        for path in PATHS.iter().filter(|p| p.kind == Allowed) {
            let services: Vec<String> = path
                .services
                .iter()
                .map(|&(udp, port)| format!("\"{}/{port}\"", if udp { "udp" } else { "tcp" }))
                .collect();
            let _ = writeln!(
                s,
                "[[allow]]\nfrom = \"{}\"\nto = \"{}\"\nservices = [{}]\n",
                end_name(path.from, site),
                end_name(path.to, site),
                services.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "[[deny]]\nfrom = \"any\"\nto = \"{}\"\nservices = [\"tcp/22\"]\nseverity = \"critical\"\n",
            zone_name(site, Db)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_file_has_1000_cidrs_and_200_rules() {
        let z = zones_toml();
        let cidrs =
            z.matches("/24\"").count() + z.matches("/64\"").count() + z.matches("/28\"").count();
        assert_eq!(cidrs, 1000);
        assert_eq!(
            z.matches("[[allow]]").count() + z.matches("[[deny]]").count(),
            200
        );
    }

    #[test]
    fn packet_budget_is_met_and_output_is_deterministic() {
        let params = Params {
            flows: 2_000,
            packets: 40_000,
            seed: 3,
            duration_secs: 20,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let s = write(&mut a, &params).unwrap();
        write(&mut b, &params).unwrap();
        assert!(a == b);
        assert_eq!(s.stats.flows, 2_000);
        let p = s.stats.packets as f64;
        assert!((p - 40_000.0).abs() / 40_000.0 < 0.01, "packets {p}");
    }
}
