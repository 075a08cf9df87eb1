//! Findings: what departs from the declared policy, aggregated.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use zonewatch_collector::FlowRecord;
use zonewatch_collector::time::Timestamp;
use zonewatch_zones::Severity;

/// The kinds of finding, in precedence order (a flow raises the first that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A flow matching a `deny` rule.
    ForbiddenPath,
    /// The internet reached a private / high-trust zone, and it answered.
    PublicExposure,
    /// A private / high-trust zone initiated to the internet, and it answered.
    Egress,
    /// Any other answered flow between zones that no `allow` covers.
    UnexpectedPath,
    /// A not-allowed flow that was unanswered or rejected.
    BlockedAttempt,
    /// A private address that no zone owns.
    UndeclaredAddress,
    /// A zone pair + service first seen after the baseline window (monitor mode).
    NewPath,
    /// A source went silent, templates or sampling are missing, or one direction only is seen (monitor mode).
    VisibilityGap,
}

impl FindingKind {
    /// Every kind, in precedence order.
    pub const ALL: [FindingKind; 8] = [
        FindingKind::ForbiddenPath,
        FindingKind::PublicExposure,
        FindingKind::Egress,
        FindingKind::UnexpectedPath,
        FindingKind::BlockedAttempt,
        FindingKind::UndeclaredAddress,
        FindingKind::NewPath,
        FindingKind::VisibilityGap,
    ];

    /// The contract name (`public-exposure`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ForbiddenPath => "forbidden-path",
            FindingKind::PublicExposure => "public-exposure",
            FindingKind::Egress => "egress",
            FindingKind::UnexpectedPath => "unexpected-path",
            FindingKind::BlockedAttempt => "blocked-attempt",
            FindingKind::UndeclaredAddress => "undeclared-address",
            FindingKind::NewPath => "new-path",
            FindingKind::VisibilityGap => "visibility-gap",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How strong the evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Only one direction could be seen (`answered: null`).
    Low,
    /// Both directions seen, direction decided by ports or first packet.
    Medium,
    /// A handshake was seen.
    High,
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        })
    }
}

/// The suppression that silenced a finding (or that matched but had expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressionNote {
    /// Why the finding is accepted.
    pub reason: String,
    /// Who accepted it.
    pub owner: String,
    /// Last day it applies (`YYYY-MM-DD`), if any.
    pub until: Option<String>,
    /// Ticket reference, if any.
    pub ticket: Option<String>,
    /// Where it is declared (`zones.toml:52`).
    pub rule: String,
}

/// One aggregated finding. Field names are DESIGN.md's contract.
///
/// `E` is how sample flows are held: [`FlowRecord`]s as analysed, or their
/// JSON as read back from the store ([`crate::store::StoredFinding`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding<E = FlowRecord> {
    /// Stable id derived from the aggregation key.
    pub id: String,
    /// What kind.
    pub kind: FindingKind,
    /// How bad.
    pub severity: Severity,
    /// Zone of the initiators.
    pub src_zone: String,
    /// Zone of the responder.
    pub dst_zone: String,
    /// The responder host (`null` when a scan touched several).
    pub dst: Option<IpAddr>,
    /// Protocol name (`null` when several).
    pub proto: Option<String>,
    /// Responder port (`null` when several).
    pub dport: Option<u16>,
    /// Service as rules name it (`tcp/5432`; `null` when several).
    pub service: Option<String>,
    /// Top initiators by bytes (bounded).
    pub initiators: Vec<IpAddr>,
    /// Exact number of distinct initiators.
    pub initiator_count: usize,
    /// Distinct responder hosts.
    pub hosts: usize,
    /// Distinct responder ports / services.
    pub ports: usize,
    /// Flows aggregated.
    pub flows: u64,
    /// Packets, both directions.
    pub packets: u64,
    /// IP bytes, both directions.
    pub bytes: u64,
    /// Established flows among them.
    pub answered: u64,
    /// Strength of the evidence.
    pub confidence: Confidence,
    /// First packet time.
    pub first: Timestamp,
    /// Last packet time.
    pub last: Timestamp,
    /// The rule (or default) that decided.
    pub rule: String,
    /// The suppression that matched, if any.
    pub suppressed: Option<SuppressionNote>,
    /// A suppression that would have matched but has expired.
    pub expired_suppression: Option<SuppressionNote>,
    /// Sample flows.
    pub evidence: Vec<E>,
}

/// Stable short id of an aggregation key (FNV-1a, 48 bits).
pub(crate) fn stable_id(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("f-{:012x}", h >> 16)
}
