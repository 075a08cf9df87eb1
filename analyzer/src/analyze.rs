//! [`Analyzer`]: flows in, aggregated [`Finding`]s out.

use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use zonewatch_collector::packet::{PacketInfo, ip_proto};
use zonewatch_collector::time::Timestamp;
use zonewatch_collector::{FlowRecord, FlowState, OrientedBy};
use zonewatch_zones::{
    AddressClass, Decision, Exposure, PathQuery, Policy, Severity, Trust, Verdict, ZoneId,
};

use crate::finding::{Confidence, Finding, FindingKind, SuppressionNote, stable_id};

/// Limits of what a finding keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzerConfig {
    /// Sample flows kept per finding.
    pub max_evidence: usize,
    /// Initiators listed per finding (the count stays exact).
    pub max_initiators: usize,
    /// The day suppressions are checked against (`until`), as (year, month, day).
    pub today: (i32, u32, u32),
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            max_evidence: 5,
            max_initiators: 10,
            today: (1970, 1, 1),
        }
    }
}

/// Counters of what was analysed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyzerStats {
    /// Flows seen.
    pub flows: u64,
    /// Flows a rule or the intra-zone default allowed.
    pub allowed: u64,
    /// Flows that raised a path finding.
    pub flagged: u64,
    /// Flows with a local address and no rule naming `local`.
    pub local: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum AggKey {
    Path {
        kind: FindingKind,
        src_zone: ZoneId,
        dst_zone: ZoneId,
        dst: IpAddr,
        proto: u8,
        dport: u16,
    },
    Blocked {
        initiator: IpAddr,
        src_zone: ZoneId,
        dst_zone: ZoneId,
    },
    Undeclared {
        addr: IpAddr,
    },
}

struct Agg {
    finding: Finding,
    initiator_bytes: HashMap<IpAddr, u64>,
    hosts: HashSet<IpAddr>,
    services: HashSet<(u8, u16)>,
}

/// Turns flows into findings against one policy.
pub struct Analyzer<'p> {
    policy: &'p Policy,
    config: AnalyzerConfig,
    aggs: HashMap<AggKey, Agg>,
    /// Aggregates created since the last `drain_new`.
    new_keys: Vec<AggKey>,
    stats: AnalyzerStats,
}

/// The result of an analysis.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Findings that apply, most severe first.
    pub findings: Vec<Finding>,
    /// Findings silenced by a suppression (counted, never dropped).
    pub suppressed: Vec<Finding>,
    /// Counters.
    pub stats: AnalyzerStats,
}

impl Report {
    /// The highest severity among the unsuppressed findings.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// The query a flow poses to the policy (ICMP: type*256+code in `dport`).
pub fn path_query(flow: &FlowRecord) -> PathQuery {
    PathQuery {
        src: flow.src,
        dst: flow.dst,
        proto: flow.proto.0,
        dport: flow.dport,
    }
}

/// The service as policies name it: `tcp/5432`, `udp/53`, `icmp/8`, `proto/47`.
pub fn service_name(proto: u8, dport: u16) -> String {
    match proto {
        ip_proto::TCP => format!("tcp/{dport}"),
        ip_proto::UDP => format!("udp/{dport}"),
        ip_proto::ICMP => format!("icmp/{}", dport >> 8),
        ip_proto::ICMPV6 => format!("icmpv6/{}", dport >> 8),
        n => format!("proto/{n}"),
    }
}

/// Whether the flow a packet starts could raise a finding: it touches an
/// undeclared address, a `deny` rule matches it in either direction, or no
/// direction of it is allowed. Used to decide which flows' packets to keep
/// as evidence, so allowed traffic (most of it) is never buffered.
pub fn may_raise_finding(policy: &Policy, p: &PacketInfo) -> bool {
    let icmp_port = p
        .icmp
        .map(|i| u16::from(i.icmp_type) << 8 | u16::from(i.code));
    let verdict = |src, dst, dport| {
        policy.evaluate(&PathQuery {
            src,
            dst,
            proto: p.proto,
            dport,
        })
    };
    let forward = verdict(p.src, p.dst, icmp_port.unwrap_or(p.dport));
    let backward = verdict(p.dst, p.src, icmp_port.unwrap_or(p.sport));
    // Which side initiates is not known yet: a path allowed in one direction
    // is taken to be that direction (a reply is not a finding).
    let undeclared = forward.src.class == AddressClass::Undeclared
        || forward.dst.class == AddressClass::Undeclared;
    let denied = |v: &Verdict| matches!(v.decision, Decision::Denied { .. });
    let not_allowed =
        |v: &Verdict| matches!(v.decision, Decision::NotAllowed | Decision::Denied { .. });
    undeclared
        || denied(&forward)
        || denied(&backward)
        || (not_allowed(&forward) && not_allowed(&backward))
}

/// A finding as its aggregate stands: bounded initiators, exact counts.
fn snapshot(key: &AggKey, agg: &Agg, max_init: usize) -> Finding {
    let mut f = agg.finding.clone();
    let mut inits: Vec<(IpAddr, u64)> = agg.initiator_bytes.iter().map(|(a, b)| (*a, *b)).collect();
    inits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    f.initiator_count = inits.len();
    f.initiators = inits.into_iter().take(max_init).map(|(a, _)| a).collect();
    f.hosts = agg.hosts.len();
    f.ports = agg.services.len();
    match key {
        AggKey::Undeclared { addr } => f.dst = Some(*addr),
        _ => {
            if agg.hosts.len() == 1 {
                f.dst = agg.hosts.iter().next().copied();
            }
            if agg.services.len() == 1
                && let Some(&(proto, dport)) = agg.services.iter().next()
            {
                f.proto = Some(zonewatch_collector::Proto(proto).to_string());
                f.dport = Some(dport);
                f.service = Some(service_name(proto, dport));
            }
        }
    }
    f.evidence.sort_by_key(|a| a.first);
    f
}

fn is_sensitive(policy: &Policy, z: ZoneId) -> bool {
    let zone = policy.zone(z);
    zone.exposure == Exposure::Private || zone.trust == Trust::High
}

fn confidence_of(flow: &FlowRecord) -> Confidence {
    match (flow.state, flow.oriented_by) {
        (FlowState::OneWay, _) => Confidence::Low,
        (_, OrientedBy::Handshake | OrientedBy::Exporter) => Confidence::High,
        _ => Confidence::Medium,
    }
}

impl<'p> Analyzer<'p> {
    /// A fresh analyzer.
    pub fn new(policy: &'p Policy, config: AnalyzerConfig) -> Analyzer<'p> {
        Analyzer {
            policy,
            config,
            aggs: HashMap::new(),
            new_keys: Vec::new(),
            stats: AnalyzerStats::default(),
        }
    }

    /// The path finding kind and severity a flow raises under a verdict, if any.
    pub fn classify(&self, flow: &FlowRecord, v: &Verdict) -> Option<(FindingKind, Severity)> {
        let answered = flow.state.answered();
        match v.decision {
            Decision::Denied { severity } => Some((FindingKind::ForbiddenPath, severity)),
            Decision::NotAllowed => {
                let internet = self.policy.internet();
                if answered == Some(false) {
                    let sev = if v.src.zone != internet
                        && self.policy.zone(v.dst.zone).trust == Trust::High
                    {
                        Severity::Medium
                    } else {
                        Severity::Low
                    };
                    Some((FindingKind::BlockedAttempt, sev))
                } else if v.src.zone == internet && is_sensitive(self.policy, v.dst.zone) {
                    Some((FindingKind::PublicExposure, Severity::Critical))
                } else if v.dst.zone == internet && is_sensitive(self.policy, v.src.zone) {
                    Some((FindingKind::Egress, Severity::High))
                } else {
                    Some((FindingKind::UnexpectedPath, Severity::High))
                }
            }
            Decision::Intra | Decision::Allowed | Decision::Local => None,
        }
    }

    /// Takes one flow into account. Returns whether a finding kept it as a sample flow.
    pub fn observe(&mut self, flow: &FlowRecord) -> bool {
        let mut kept = false;
        self.stats.flows += 1;
        let verdict = self.policy.evaluate(&path_query(flow));
        for (addr, cls) in [(flow.src, verdict.src), (flow.dst, verdict.dst)] {
            if cls.class == AddressClass::Undeclared {
                let key = AggKey::Undeclared {
                    addr: addr.to_canonical(),
                };
                kept |= self.add(
                    key,
                    FindingKind::UndeclaredAddress,
                    Severity::Medium,
                    flow,
                    &verdict,
                );
            }
        }
        match self.classify(flow, &verdict) {
            Some((kind, severity)) => {
                self.stats.flagged += 1;
                let key = if kind == FindingKind::BlockedAttempt {
                    AggKey::Blocked {
                        initiator: flow.src,
                        src_zone: verdict.src.zone,
                        dst_zone: verdict.dst.zone,
                    }
                } else {
                    AggKey::Path {
                        kind,
                        src_zone: verdict.src.zone,
                        dst_zone: verdict.dst.zone,
                        dst: flow.dst,
                        proto: flow.proto.0,
                        dport: flow.dport,
                    }
                };
                kept |= self.add(key, kind, severity, flow, &verdict);
            }
            None if verdict.decision == Decision::Local => self.stats.local += 1,
            None => self.stats.allowed += 1,
        }
        kept
    }

    fn add(
        &mut self,
        key: AggKey,
        kind: FindingKind,
        severity: Severity,
        flow: &FlowRecord,
        v: &Verdict,
    ) -> bool {
        let policy = self.policy;
        let config = &self.config;
        if !self.aggs.contains_key(&key) {
            self.new_keys.push(key.clone());
        }
        let agg = self.aggs.entry(key).or_insert_with_key(|key| {
            let zname = |z: ZoneId| policy.zone(z).name.clone();
            let id_text = match key {
                AggKey::Path {
                    kind,
                    src_zone,
                    dst_zone,
                    dst,
                    proto,
                    dport,
                } => format!(
                    "{kind}|{}|{}|{dst}|{}",
                    zname(*src_zone),
                    zname(*dst_zone),
                    service_name(*proto, *dport)
                ),
                AggKey::Blocked {
                    initiator,
                    src_zone,
                    dst_zone,
                } => {
                    format!(
                        "blocked-attempt|{initiator}|{}|{}",
                        zname(*src_zone),
                        zname(*dst_zone)
                    )
                }
                AggKey::Undeclared { addr } => format!("undeclared-address|{addr}"),
            };
            let (src_zone, dst_zone, rule) = match key {
                AggKey::Undeclared { .. } => (
                    "undeclared".to_string(),
                    "undeclared".to_string(),
                    "no zone declares this private address".to_string(),
                ),
                _ => (zname(v.src.zone), zname(v.dst.zone), v.rule.to_string()),
            };
            let (suppressed, expired_suppression) = match policy.suppression(
                kind.as_str(),
                v,
                flow.proto.0,
                flow.dport,
                config.today,
            ) {
                Some(m) => {
                    let s = m.suppression;
                    let note = SuppressionNote {
                        reason: s.reason.clone(),
                        owner: s.owner.clone(),
                        until: s.until.map(|(y, mo, d)| format!("{y:04}-{mo:02}-{d:02}")),
                        ticket: s.ticket.clone(),
                        rule: format!(
                            "suppress {} {} -> {} ({}:{})",
                            s.kind.as_deref().unwrap_or("any"),
                            s.from,
                            s.to,
                            policy.file_name(),
                            s.line
                        ),
                    };
                    if m.expired {
                        (None, Some(note))
                    } else {
                        (Some(note), None)
                    }
                }
                None => (None, None),
            };
            Agg {
                finding: Finding {
                    id: stable_id(&id_text),
                    kind,
                    severity,
                    src_zone,
                    dst_zone,
                    dst: None,
                    proto: None,
                    dport: None,
                    service: None,
                    initiators: Vec::new(),
                    initiator_count: 0,
                    hosts: 0,
                    ports: 0,
                    flows: 0,
                    packets: 0,
                    bytes: 0,
                    answered: 0,
                    confidence: Confidence::Low,
                    first: Timestamp(i64::MAX),
                    last: Timestamp(i64::MIN),
                    rule,
                    suppressed,
                    expired_suppression,
                    evidence: Vec::new(),
                },
                initiator_bytes: HashMap::new(),
                hosts: HashSet::new(),
                services: HashSet::new(),
            }
        });
        let f = &mut agg.finding;
        f.severity = f.severity.max(severity);
        f.flows += 1;
        f.packets += flow.packets + flow.rpackets;
        f.bytes += flow.bytes + flow.rbytes;
        if flow.state == FlowState::Established {
            f.answered += 1;
        }
        f.confidence = f.confidence.max(confidence_of(flow));
        f.first = f.first.min(flow.first);
        f.last = f.last.max(flow.last);
        let kept = f.evidence.len() < config.max_evidence;
        if kept {
            f.evidence.push(flow.clone());
        }
        *agg.initiator_bytes.entry(flow.src).or_insert(0) += flow.bytes + flow.rbytes;
        agg.hosts.insert(flow.dst);
        agg.services.insert((flow.proto.0, flow.dport));
        kept
    }

    /// The findings raised since the last call (not suppressed), as they
    /// stand now: for printing findings at their first evidence.
    pub fn drain_new(&mut self) -> Vec<Finding> {
        let keys = std::mem::take(&mut self.new_keys);
        keys.iter()
            .filter_map(|k| {
                self.aggs
                    .get(k)
                    .map(|agg| snapshot(k, agg, self.config.max_initiators))
            })
            .filter(|f| f.suppressed.is_none())
            .collect()
    }

    /// Ends the analysis.
    pub fn finish(self) -> Report {
        let max_init = self.config.max_initiators;
        let mut findings = Vec::new();
        let mut suppressed = Vec::new();
        for (key, agg) in &self.aggs {
            let f = snapshot(key, agg, max_init);
            if f.suppressed.is_some() {
                suppressed.push(f);
            } else {
                findings.push(f);
            }
        }
        let order = |a: &Finding, b: &Finding| {
            b.severity
                .cmp(&a.severity)
                .then(a.kind.cmp(&b.kind))
                .then(a.first.cmp(&b.first))
                .then(a.id.cmp(&b.id))
        };
        findings.sort_by(order);
        suppressed.sort_by(order);
        Report {
            findings,
            suppressed,
            stats: self.stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zonewatch_collector::packet::{Decoded, decode};

    /// A raw IPv4 TCP SYN (link type 101).
    fn syn(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> PacketInfo {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        match decode(101, &p) {
            Decoded::Ip(info) => info,
            other => panic!("not decoded: {other:?}"),
        }
    }

    #[test]
    fn only_flows_that_could_raise_a_finding_are_kept_as_evidence() {
        let policy = Policy::parse(
            "[[zone]]\nname = \"app\"\ncidrs = [\"10.1.0.0/16\"]\n\n[[zone]]\nname = \"db\"\ncidrs = [\"10.2.0.0/16\"]\ntrust = \"high\"\n\n[[allow]]\nfrom = \"app\"\nto = \"db\"\nservices = [\"tcp/5432\"]\n",
            "zones.toml",
        )
        .expect("policy");
        // Allowed, in either packet direction: not buffered.
        assert!(!may_raise_finding(
            &policy,
            &syn([10, 1, 0, 5], [10, 2, 0, 10], 40000, 5432)
        ));
        assert!(!may_raise_finding(
            &policy,
            &syn([10, 2, 0, 10], [10, 1, 0, 5], 5432, 40000)
        ));
        // Intra-zone traffic is allowed too.
        assert!(!may_raise_finding(
            &policy,
            &syn([10, 1, 0, 5], [10, 1, 0, 6], 40000, 80)
        ));
        // Not allowed, from the internet, or touching an undeclared address: buffered.
        assert!(may_raise_finding(
            &policy,
            &syn([10, 1, 0, 5], [10, 2, 0, 10], 40000, 22)
        ));
        assert!(may_raise_finding(
            &policy,
            &syn([198, 51, 100, 7], [10, 2, 0, 10], 40000, 5432)
        ));
        assert!(may_raise_finding(
            &policy,
            &syn([172, 16, 0, 1], [10, 1, 0, 5], 40000, 80)
        ));
    }
}
