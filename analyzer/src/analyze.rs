//! [`Analyzer`]: flows in, aggregated [`Finding`]s out.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};
use zonewatch_collector::packet::{PacketInfo, ip_proto};
use zonewatch_collector::time::Timestamp;
use zonewatch_collector::{FlowRecord, FlowState, OrientedBy};
use zonewatch_zones::{
    AddressClass, Decision, DecisionCache, Exposure, PathQuery, Policy, Severity, Trust, Verdict,
    ZoneId,
};

use crate::finding::{Confidence, Finding, FindingKind, SuppressionNote, stable_id};
use crate::store::{PathObservation, Talker};

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
    NewPath {
        src_zone: ZoneId,
        dst_zone: ZoneId,
        proto: u8,
        dport: u16,
    },
    Gap {
        source: String,
        reason: &'static str,
    },
}

/// A path by zone names: (source zone, destination zone, protocol, port).
pub type PathName = (String, String, u8, u16);

/// Talkers kept per observed path between two store batches.
const MAX_TALKERS: usize = 20;
/// Distinct talker pairs tracked per path between two batches.
const MAX_TALKER_PAIRS: usize = 1024;

/// A finding's increment since the last hand-over (monitor mode).
#[derive(Debug, Clone)]
pub struct FindingDelta {
    /// The finding with the counters of the increment.
    pub finding: Finding,
    /// Initiators with their bytes.
    pub initiators: Vec<(IpAddr, u64)>,
    /// Responder hosts.
    pub hosts: Vec<IpAddr>,
    /// Services as (protocol, port).
    pub services: Vec<(u8, u16)>,
}

struct PathAgg {
    decision: &'static str,
    rule: String,
    first: Timestamp,
    last: Timestamp,
    flows: u64,
    packets: u64,
    bytes: u64,
    talkers: HashMap<(IpAddr, IpAddr), (u64, u64)>,
}

struct PathTracker {
    known: HashSet<PathName>,
    baseline_start: Option<Timestamp>,
    window_secs: u64,
    observed: HashMap<(ZoneId, ZoneId, u8, u16), PathAgg>,
}

impl PathTracker {
    /// Counts a flow part into its path. Returns the `new-path` key when
    /// the path was never seen (store included) and the flow came after the
    /// baseline; whether it was seen is looked up once per path and batch.
    fn observe(
        &mut self,
        policy: &Policy,
        flow: &FlowRecord,
        v: &Verdict,
        first_part: bool,
    ) -> Option<AggKey> {
        // A path is traffic that happened: probes nobody answered are not one.
        if flow.answered == Some(false)
            || v.decision == Decision::Local
            || v.src.class == AddressClass::Undeclared
            || v.dst.class == AddressClass::Undeclared
        {
            return None;
        }
        let key = (v.src.zone, v.dst.zone, flow.proto.0, flow.dport);
        let (p, first_in_batch) = match self.observed.entry(key) {
            hashbrown::hash_map::Entry::Occupied(e) => (e.into_mut(), false),
            hashbrown::hash_map::Entry::Vacant(e) => (
                e.insert(PathAgg {
                    decision: v.decision.as_str(),
                    rule: v.rule.to_string(),
                    first: flow.first,
                    last: flow.last,
                    flows: 0,
                    packets: 0,
                    bytes: 0,
                    talkers: HashMap::new(),
                }),
                true,
            ),
        };
        p.first = p.first.min(flow.first);
        p.last = p.last.max(flow.last);
        p.packets += flow.packets + flow.rpackets;
        p.bytes += flow.bytes + flow.rbytes;
        let flows = u64::from(first_part);
        p.flows += flows;
        let n = p.talkers.len();
        if let Some(t) = p.talkers.get_mut(&(flow.src, flow.dst)) {
            t.0 += flows;
            t.1 += flow.bytes + flow.rbytes;
        } else if n < MAX_TALKER_PAIRS {
            p.talkers
                .insert((flow.src, flow.dst), (flows, flow.bytes + flow.rbytes));
        }
        if first_in_batch {
            self.take_new(policy, flow, v)
        } else {
            None
        }
    }

    /// The `new-path` key of a path flow whose path was never seen, after
    /// the baseline.
    fn take_new(&mut self, policy: &Policy, flow: &FlowRecord, v: &Verdict) -> Option<AggKey> {
        let start = *self.baseline_start.get_or_insert(flow.first);
        let name = (
            policy.zone(v.src.zone).name.clone(),
            policy.zone(v.dst.zone).name.clone(),
            flow.proto.0,
            flow.dport,
        );
        if !self.known.insert(name) {
            return None;
        }
        let window = i64::try_from(self.window_secs)
            .unwrap_or(i64::MAX / 1_000_000_000)
            .saturating_mul(1_000_000_000);
        (flow.first.0 >= start.0.saturating_add(window)).then_some(AggKey::NewPath {
            src_zone: v.src.zone,
            dst_zone: v.dst.zone,
            proto: flow.proto.0,
            dport: flow.dport,
        })
    }
}

struct Agg {
    finding: Finding,
    counts: Counts,
}

/// What an aggregate counts beside its finding: the sets behind the
/// finding's initiator, host and port figures.
#[derive(Default)]
struct Counts {
    initiator_bytes: HashMap<IpAddr, u64>,
    hosts: HashSet<IpAddr>,
    services: HashSet<(u8, u16)>,
}

impl Agg {
    /// A finding with nothing counted yet.
    fn new(
        id: String,
        kind: FindingKind,
        severity: Severity,
        (src_zone, dst_zone): (String, String),
        rule: String,
        (suppressed, expired_suppression): (Option<SuppressionNote>, Option<SuppressionNote>),
    ) -> Agg {
        Agg {
            finding: Finding {
                id,
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
            counts: Counts::default(),
        }
    }
}

/// Turns flows into findings against one policy.
pub struct Analyzer {
    policy: Arc<Policy>,
    config: AnalyzerConfig,
    aggs: HashMap<AggKey, Agg>,
    /// Aggregates created since the last `drain_new`.
    new_keys: Vec<AggKey>,
    stats: AnalyzerStats,
    /// Monitor mode: paths seen, for `new-path` and the store.
    paths: Option<PathTracker>,
    /// The policy's decisions so far, for [`Analyzer::observe`].
    decisions: DecisionCache,
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

/// The text a finding's stable id is derived from: its aggregation key,
/// zones by name.
fn id_text(policy: &Policy, key: &AggKey) -> String {
    let zname = |z: ZoneId| policy.zone(z).name.clone();
    match key {
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
        AggKey::NewPath {
            src_zone,
            dst_zone,
            proto,
            dport,
        } => format!(
            "new-path|{}|{}|{}",
            zname(*src_zone),
            zname(*dst_zone),
            service_name(*proto, *dport)
        ),
        AggKey::Gap { source, reason } => format!("visibility-gap|{source}|{reason}"),
    }
}

/// A finding as its aggregate stands: bounded initiators, exact counts.
fn snapshot(key: &AggKey, agg: &Agg, max_init: usize) -> Finding {
    agg.counts.completed(key, agg.finding.clone(), max_init)
}

impl Counts {
    /// `f`, the finding these counts go with (or a copy of it), with their
    /// figures filled in.
    fn completed(&self, key: &AggKey, mut f: Finding, max_init: usize) -> Finding {
        let mut inits: Vec<(IpAddr, u64)> =
            self.initiator_bytes.iter().map(|(a, b)| (*a, *b)).collect();
        inits.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        f.initiator_count = inits.len();
        f.initiators = inits.into_iter().take(max_init).map(|(a, _)| a).collect();
        f.hosts = self.hosts.len();
        f.ports = self.services.len();
        match key {
            AggKey::Undeclared { addr } => f.dst = Some(*addr),
            _ => {
                if self.hosts.len() == 1 {
                    f.dst = self.hosts.iter().next().copied();
                }
                if self.services.len() == 1
                    && let Some(&(proto, dport)) = self.services.iter().next()
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
}

pub(crate) fn is_sensitive(policy: &Policy, z: ZoneId) -> bool {
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

impl Analyzer {
    /// A fresh analyzer.
    pub fn new(policy: Arc<Policy>, config: AnalyzerConfig) -> Analyzer {
        Analyzer {
            policy,
            config,
            aggs: HashMap::new(),
            new_keys: Vec::new(),
            stats: AnalyzerStats::default(),
            paths: None,
            decisions: DecisionCache::default(),
        }
    }

    /// The policy flows are held against.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
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
                } else if v.src.zone == internet && is_sensitive(&self.policy, v.dst.zone) {
                    Some((FindingKind::PublicExposure, Severity::Critical))
                } else if v.dst.zone == internet && is_sensitive(&self.policy, v.src.zone) {
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
        let policy = Arc::clone(&self.policy);
        let verdict = policy.evaluate_cached(&path_query(flow), &mut self.decisions);
        self.observe_part(flow, &verdict, true)
    }

    /// Takes one part of a flow into account (monitor mode: a flow is
    /// reported when it first raises a finding, at checkpoints and when it
    /// ends, each part carrying the counters since the previous one).
    /// `first_part` counts the flow itself and keeps it as evidence.
    /// `verdict` is this analyzer's policy's verdict on the flow
    /// (`policy().evaluate(&path_query(flow))`), which the caller needs too.
    pub fn observe_part(&mut self, flow: &FlowRecord, verdict: &Verdict, first_part: bool) -> bool {
        let mut kept = false;
        if first_part {
            self.stats.flows += 1;
        }
        let new_path = match &mut self.paths {
            Some(paths) => paths.observe(&self.policy, flow, verdict, first_part),
            None => None,
        };
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
                    verdict,
                    first_part,
                );
            }
        }
        if let Some(key) = new_path {
            kept |= self.add(
                key,
                FindingKind::NewPath,
                Severity::Info,
                flow,
                verdict,
                true,
            );
        }
        match self.classify(flow, verdict) {
            Some((kind, severity)) => {
                if first_part {
                    self.stats.flagged += 1;
                }
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
                kept |= self.add(key, kind, severity, flow, verdict, first_part);
            }
            None if !first_part => {}
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
        first_part: bool,
    ) -> bool {
        let policy = &*self.policy;
        let config = &self.config;
        if !self.aggs.contains_key(&key) {
            self.new_keys.push(key.clone());
        }
        let agg = self.aggs.entry(key).or_insert_with_key(|key| {
            let zname = |z: ZoneId| policy.zone(z).name.clone();
            let id_text = id_text(policy, key);
            let (src_zone, dst_zone, rule) = match key {
                AggKey::Undeclared { .. } => (
                    "undeclared".to_string(),
                    "undeclared".to_string(),
                    "no zone declares this private address".to_string(),
                ),
                AggKey::NewPath { .. } => (
                    zname(v.src.zone),
                    zname(v.dst.zone),
                    "first seen after the baseline window".to_string(),
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
            Agg::new(
                stable_id(&id_text),
                kind,
                severity,
                (src_zone, dst_zone),
                rule,
                (suppressed, expired_suppression),
            )
        });
        let f = &mut agg.finding;
        f.severity = f.severity.max(severity);
        f.packets += flow.packets + flow.rpackets;
        f.bytes += flow.bytes + flow.rbytes;
        f.confidence = f.confidence.max(confidence_of(flow));
        f.first = f.first.min(flow.first);
        f.last = f.last.max(flow.last);
        let counts = &mut agg.counts;
        *counts.initiator_bytes.entry(flow.src).or_insert(0) += flow.bytes + flow.rbytes;
        counts.hosts.insert(flow.dst);
        counts.services.insert((flow.proto.0, flow.dport));
        if !first_part {
            return false;
        }
        f.flows += 1;
        if flow.state == FlowState::Established {
            f.answered += 1;
        }
        let kept = f.evidence.len() < config.max_evidence;
        if kept {
            f.evidence.push(flow.clone());
        }
        kept
    }

    /// Raises (or renews) a `visibility-gap` finding for a source: `reason`
    /// is a short tag (`silent`, `missing-template`, `unknown-sampling`,
    /// `one-way`), `detail` says what was seen and what to do.
    pub fn raise_gap(&mut self, source: &str, reason: &'static str, detail: String, at: Timestamp) {
        let key = AggKey::Gap {
            source: source.to_string(),
            reason,
        };
        if !self.aggs.contains_key(&key) {
            self.new_keys.push(key.clone());
        }
        let id = stable_id(&id_text(&self.policy, &key));
        let agg = self.aggs.entry(key).or_insert_with(|| {
            let mut agg = Agg::new(
                id,
                FindingKind::VisibilityGap,
                Severity::Medium,
                (source.to_string(), reason.to_string()),
                String::new(),
                (None, None),
            );
            agg.finding.confidence = Confidence::High;
            agg
        });
        let f = &mut agg.finding;
        f.rule = detail;
        f.first = f.first.min(at);
        f.last = f.last.max(at);
    }

    /// Monitor mode: track paths (zone pair + service). `known` are the
    /// paths already seen (from the store); a path first seen in a flow that
    /// starts at or after `baseline_start + window` raises `new-path`.
    /// Without `baseline_start`, the first flow's start opens the baseline.
    pub fn track_paths(
        &mut self,
        known: impl IntoIterator<Item = PathName>,
        baseline_start: Option<Timestamp>,
        window_secs: u64,
    ) {
        self.paths = Some(PathTracker {
            known: known.into_iter().collect(),
            baseline_start,
            window_secs,
            observed: HashMap::new(),
        });
    }

    /// When the baseline window opened (monitor mode), once known.
    pub fn baseline_start(&self) -> Option<Timestamp> {
        self.paths.as_ref().and_then(|p| p.baseline_start)
    }

    /// The paths observed since the last call, with their counters (monitor mode).
    pub fn take_paths(&mut self) -> Vec<PathObservation> {
        let Some(paths) = &mut self.paths else {
            return Vec::new();
        };
        let policy = &self.policy;
        let mut out: Vec<PathObservation> = paths
            .observed
            .drain()
            .map(|((src, dst, proto, dport), p)| {
                let mut talkers: Vec<Talker> = p
                    .talkers
                    .into_iter()
                    .map(|((s, d), (flows, bytes))| Talker {
                        src: s,
                        dst: d,
                        flows,
                        bytes,
                    })
                    .collect();
                talkers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.src.cmp(&b.src)));
                talkers.truncate(MAX_TALKERS);
                PathObservation {
                    src_zone: policy.zone(src).name.clone(),
                    dst_zone: policy.zone(dst).name.clone(),
                    proto,
                    dport,
                    decision: p.decision.to_string(),
                    rule: p.rule,
                    first: p.first,
                    last: p.last,
                    flows: p.flows,
                    packets: p.packets,
                    bytes: p.bytes,
                    talkers,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.src_zone, &a.dst_zone, a.proto, a.dport).cmp(&(
                &b.src_zone,
                &b.dst_zone,
                b.proto,
                b.dport,
            ))
        });
        out
    }

    /// Hands over every finding aggregated since the last call as an
    /// increment (counters since then, members as sets) and forgets them:
    /// monitor mode, where the store adds increments up.
    pub fn take_deltas(&mut self) -> Vec<FindingDelta> {
        self.new_keys.clear();
        let max_init = self.config.max_initiators;
        let mut out: Vec<FindingDelta> = self
            .aggs
            .drain()
            .map(|(key, Agg { finding, counts })| FindingDelta {
                finding: counts.completed(&key, finding, max_init),
                initiators: counts.initiator_bytes.into_iter().collect(),
                hosts: counts.hosts.into_iter().collect(),
                services: counts.services.into_iter().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.finding.id.cmp(&b.finding.id));
        out
    }

    /// Replaces the policy (hot reload). Aggregates refer to the old
    /// policy's zones, so they are handed over first, as by [`Analyzer::take_deltas`],
    /// and so are the paths observed.
    pub fn set_policy(&mut self, policy: Arc<Policy>) -> (Vec<FindingDelta>, Vec<PathObservation>) {
        let deltas = self.take_deltas();
        let paths = self.take_paths();
        self.policy = policy;
        (deltas, paths)
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
        for (key, Agg { finding, counts }) in self.aggs {
            let f = counts.completed(&key, finding, max_init);
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
        let policy = two_zones();
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

    fn flow(src: &str, dst: &str, dport: u16, at: i64, packets: u64) -> FlowRecord {
        use zonewatch_collector::record::TcpFlags;
        FlowRecord {
            id: 1,
            first: Timestamp::from_secs_nanos(at, 0),
            last: Timestamp::from_secs_nanos(at + 1, 0),
            proto: zonewatch_collector::Proto(6),
            src: src.parse().unwrap(),
            sport: 40000,
            dst: dst.parse().unwrap(),
            dport,
            packets,
            bytes: packets * 100,
            rpackets: packets,
            rbytes: packets * 100,
            answered: Some(true),
            state: FlowState::Established,
            tcp_flags: TcpFlags(0x12),
            rtcp_flags: TcpFlags(0x12),
            oriented_by: OrientedBy::Handshake,
            vlan: Vec::new(),
            source: Arc::from("test"),
            sampling: 1,
            export: None,
        }
    }

    fn two_zones() -> Arc<Policy> {
        Arc::new(
            Policy::parse(
                "[[zone]]\nname = \"app\"\ncidrs = [\"10.1.0.0/16\"]\n\n[[zone]]\nname = \"db\"\ncidrs = [\"10.2.0.0/16\"]\ntrust = \"high\"\n\n[[allow]]\nfrom = \"app\"\nto = \"db\"\nservices = [\"tcp/5432\"]\n",
                "zones.toml",
            )
            .expect("policy"),
        )
    }

    #[test]
    fn parts_of_one_flow_count_it_once_and_add_their_counters() {
        let mut a = Analyzer::new(two_zones(), AnalyzerConfig::default());
        let f = flow("10.1.0.5", "10.2.0.10", 22, 1_000, 3);
        let policy = Arc::clone(a.policy());
        let v = policy.evaluate(&path_query(&f));
        a.observe_part(&f, &v, true);
        a.observe_part(&flow("10.1.0.5", "10.2.0.10", 22, 1_000, 4), &v, false);
        let deltas = a.take_deltas();
        assert_eq!(deltas.len(), 1);
        let d = &deltas[0];
        assert_eq!(d.finding.kind, FindingKind::UnexpectedPath);
        assert_eq!(d.finding.flows, 1);
        assert_eq!(d.finding.packets, 14);
        assert_eq!(d.finding.evidence.len(), 1);
        assert_eq!(d.initiators, vec![(f.src, 1400)]);
        // Handed over: the next increment starts from zero, with the same id.
        assert!(a.take_deltas().is_empty());
        a.observe_part(&flow("10.1.0.5", "10.2.0.10", 22, 1_005, 1), &v, false);
        let next = a.take_deltas();
        assert_eq!(next[0].finding.id, d.finding.id);
        assert_eq!((next[0].finding.flows, next[0].finding.packets), (0, 2));
    }

    #[test]
    fn a_path_first_seen_after_the_baseline_raises_new_path_once() {
        let mut a = Analyzer::new(two_zones(), AnalyzerConfig::default());
        let known = vec![("app".to_string(), "db".to_string(), 6u8, 5433u16)];
        a.track_paths(known, None, 60);
        // During the baseline (it opens with the first flow): learned silently.
        a.observe(&flow("10.1.0.5", "10.2.0.10", 5432, 1_000, 1));
        a.observe(&flow("10.1.0.5", "10.2.0.10", 5432, 1_100, 1));
        // After it: a path already known (from the store) stays quiet, a new one is reported once.
        a.observe(&flow("10.1.0.6", "10.2.0.11", 5433, 1_100, 1));
        a.observe(&flow("10.1.0.5", "10.2.0.10", 6432, 1_100, 1));
        a.observe(&flow("10.1.0.7", "10.2.0.10", 6432, 1_200, 1));
        // A probe nobody answered is no path: no new-path, nothing to suggest.
        let mut probe = flow("10.1.0.7", "10.2.0.10", 23, 1_200, 1);
        probe.answered = Some(false);
        probe.state = FlowState::Unanswered;
        a.observe(&probe);
        assert_eq!(
            a.baseline_start(),
            Some(Timestamp::from_secs_nanos(1_000, 0))
        );
        let new: Vec<_> = a
            .take_deltas()
            .into_iter()
            .filter(|d| d.finding.kind == FindingKind::NewPath)
            .collect();
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0].finding.service.as_deref(), Some("tcp/6432"));
        assert_eq!(new[0].finding.severity, Severity::Info);
        assert_eq!(new[0].finding.flows, 1);
        let paths = a.take_paths();
        let p6432 = paths.iter().find(|p| p.dport == 6432).expect("path");
        assert_eq!((p6432.flows, p6432.decision.as_str()), (2, "not-allowed"));
        assert_eq!(p6432.talkers.len(), 2);
        assert!(paths.iter().all(|p| p.dport != 23), "{paths:?}");
        let p5432 = paths.iter().find(|p| p.dport == 5432).expect("path");
        assert_eq!((p5432.flows, p5432.decision.as_str()), (2, "allowed"));
    }

    #[test]
    fn a_policy_reload_hands_over_what_the_old_policy_aggregated() {
        let mut a = Analyzer::new(two_zones(), AnalyzerConfig::default());
        a.observe(&flow("10.1.0.5", "10.2.0.10", 22, 1_000, 1));
        let allow_ssh = Arc::new(
            Policy::parse(
                "[[zone]]\nname = \"app\"\ncidrs = [\"10.1.0.0/16\"]\n\n[[zone]]\nname = \"db\"\ncidrs = [\"10.2.0.0/16\"]\n\n[[allow]]\nfrom = \"app\"\nto = \"db\"\nservices = [\"tcp/22\"]\n",
                "zones.toml",
            )
            .expect("policy"),
        );
        let (deltas, _) = a.set_policy(allow_ssh);
        assert_eq!(deltas.len(), 1);
        a.observe(&flow("10.1.0.5", "10.2.0.10", 22, 1_010, 1));
        assert!(a.take_deltas().is_empty(), "tcp/22 is allowed now");
    }

    #[test]
    fn a_visibility_gap_is_one_finding_per_source_and_reason() {
        let mut a = Analyzer::new(two_zones(), AnalyzerConfig::default());
        let t = |s| Timestamp::from_secs_nanos(s, 0);
        a.raise_gap(
            "netflow@127.0.0.1:2055",
            "silent",
            "no datagram for 60 s".into(),
            t(10),
        );
        a.raise_gap(
            "netflow@127.0.0.1:2055",
            "silent",
            "no datagram for 120 s".into(),
            t(70),
        );
        a.raise_gap("netflow@127.0.0.1:2055", "one-way", "x".into(), t(70));
        let d = a.take_deltas();
        assert_eq!(d.len(), 2);
        let silent = d.iter().find(|d| d.finding.dst_zone == "silent").unwrap();
        assert_eq!((silent.finding.first, silent.finding.last), (t(10), t(70)));
        assert_eq!(silent.finding.rule, "no datagram for 120 s");
        assert_eq!(silent.finding.kind, FindingKind::VisibilityGap);
    }
}
