//! The zonewatch policy model: zones, security groups, rules and the
//! longest-prefix classifier that maps an address to a zone.
//!
//! A zones file (TOML, see `DESIGN.md`) is loaded into a [`Policy`] with
//! [`Policy::load`] or [`Policy::parse`]. Loading checks everything once and
//! reports *every* problem as a [`Diagnostic`] with `file:line` inside
//! [`Error::Invalid`]; a policy that loaded is valid and immutable.
//!
//! - [`Zone`]s (addressed by [`ZoneId`]) own CIDRs and carry a [`Trust`] level
//!   and an [`Exposure`]. Three implicit zones always exist: `internet`,
//!   `undeclared` (private addresses no zone owns) and `local` (loopback,
//!   link-local, multicast, broadcast, unspecified).
//! - [`Group`]s (addressed by [`GroupId`]) are named hosts inside one zone
//!   with the [`Service`]s they offer.
//! - [`Policy::classify`] maps an address to a [`Classification`] by
//!   longest-prefix match over zone CIDRs and group hosts.
//! - [`Policy::evaluate`] turns a [`PathQuery`] (src, dst, protocol, port) into
//!   a [`Verdict`]: both classifications, the [`Decision`] and the rule that
//!   decided. [`Policy::explain`] says the same in prose.
//! - [`Suppression`]s are accepted false positives; [`Policy::suppression`]
//!   finds the one that covers a finding on a given day.
//!
//! Nothing here reads the clock: dates are arguments.
//!
//! ```
//! use zonewatch_zones::{Decision, PathQuery, Policy};
//!
//! let policy = Policy::parse(
//!     r#"
//! [[zone]]
//! name = "app"
//! cidrs = ["10.1.0.0/16"]
//!
//! [[zone]]
//! name = "db"
//! cidrs = ["10.2.0.0/16"]
//! trust = "high"
//!
//! [[group]]
//! name = "postgres"
//! zone = "db"
//! hosts = ["10.2.0.10/32"]
//! services = ["tcp/5432"]
//!
//! [[allow]]
//! from = "app"
//! to = "postgres"
//! "#,
//!     "zones.toml",
//! )?;
//!
//! let q = PathQuery::parse("10.1.0.5", "10.2.0.10", "tcp/5432").unwrap();
//! let verdict = policy.evaluate(&q);
//! assert_eq!(verdict.decision, Decision::Allowed);
//! assert_eq!(verdict.rule, "allow app -> postgres tcp/5432 (zones.toml:17)");
//!
//! let q = PathQuery::parse("198.51.100.7", "10.2.0.10", "tcp/5432").unwrap();
//! let verdict = policy.evaluate(&q);
//! assert_eq!(verdict.decision, Decision::NotAllowed);
//! assert_eq!(verdict.rule, "default: no allow from internet to db");
//! # Ok::<(), zonewatch_zones::Error>(())
//! ```
#![deny(missing_docs)]

mod classify;
mod config;
mod error;
mod policy;
mod service;

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use error::{Diagnostic, Error};
pub use policy::{DecisionCache, Policy};
pub use service::Service;

/// The finding kinds (DESIGN.md "Findings") a `[[suppress]]` `kind` may name.
pub const FINDING_KINDS: &[&str] = &[
    "forbidden-path",
    "public-exposure",
    "egress",
    "unexpected-path",
    "blocked-attempt",
    "undeclared-address",
    "new-path",
    "visibility-gap",
];

/// Index of a zone in [`Policy::zones`]. Only a [`Policy`] hands these out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId(u16);

impl ZoneId {
    /// The position of the zone in [`Policy::zones`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Index of a security group. Only a [`Policy`] hands these out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(u16);

impl GroupId {
    /// The position of the group in [`Policy::groups`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// How much a zone is trusted, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Nobody vouches for it (the implicit `internet` and `undeclared` zones).
    Untrusted,
    /// Low trust, e.g. a DMZ.
    Low,
    /// The default when a zone sets no `trust`.
    Medium,
    /// High trust, e.g. databases.
    High,
}

impl Trust {
    /// The lowercase name used in the zones file.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Untrusted => "untrusted",
            Trust::Low => "low",
            Trust::Medium => "medium",
            Trust::High => "high",
        }
    }
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Trust {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "untrusted" => Ok(Trust::Untrusted),
            "low" => Ok(Trust::Low),
            "medium" => Ok(Trust::Medium),
            "high" => Ok(Trust::High),
            _ => Err(format!(
                "unknown trust {s:?} (expected untrusted, low, medium or high)"
            )),
        }
    }
}

/// Whether a zone may answer the internet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    /// May be reachable from the internet where an allow rule says so.
    #[default]
    Public,
    /// Must never answer the internet.
    Private,
}

impl Exposure {
    /// The lowercase name used in the zones file.
    pub fn as_str(self) -> &'static str {
        match self {
            Exposure::Public => "public",
            Exposure::Private => "private",
        }
    }
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity of a finding or deny rule, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High (the default for deny rules).
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The lowercase name (`"critical"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!(
                "unknown severity {s:?} (expected info, low, medium, high or critical)"
            )),
        }
    }
}

/// A trust zone: a set of CIDRs with a trust level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Unique name (`internet`, `undeclared`, `local` for the implicit zones).
    pub name: String,
    /// Trust level; `medium` when the file sets none. Implicit zones:
    /// `internet` and `undeclared` are `untrusted`, `local` is `medium`.
    pub trust: Trust,
    /// Whether the zone may answer the internet (default public).
    pub exposure: Exposure,
    /// `intra = "deny"`: traffic inside the zone needs an allow rule too.
    pub intra_deny: bool,
    /// One of the three implicit zones.
    pub implicit: bool,
    /// Declared CIDRs, canonical. For `undeclared` and `local` the built-in
    /// ranges they stand for; empty for `internet` (everything else).
    pub cidrs: Vec<ipnet::IpNet>,
}

/// A security group: named hosts inside one zone and the services they offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Unique name (shared namespace with zones).
    pub name: String,
    /// The zone every host lies in.
    pub zone: ZoneId,
    /// Host prefixes, canonical.
    pub hosts: Vec<ipnet::IpNet>,
    /// Services the hosts offer; the default services of an allow rule whose
    /// `to` is this group and that lists none.
    pub services: Vec<Service>,
}

/// How an address came to its zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// In a declared zone's CIDR or a group's hosts.
    Declared,
    /// A private address (RFC 1918, ULA, CGNAT) that no zone owns.
    Undeclared,
    /// Loopback, link-local, multicast, broadcast or unspecified.
    Local,
    /// Any other address (documentation ranges included).
    Internet,
}

impl AddressClass {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Declared => "declared",
            AddressClass::Undeclared => "undeclared",
            AddressClass::Local => "local",
            AddressClass::Internet => "internet",
        }
    }
}

/// Where an address belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The zone (implicit or declared).
    pub zone: ZoneId,
    /// The group, when a group host prefix matched.
    pub group: Option<GroupId>,
    /// How the address was classified.
    pub class: AddressClass,
    /// The matched prefix: a zone CIDR, a group host, or the built-in range
    /// for `undeclared`/`local`; `None` for `internet`.
    pub prefix: Option<ipnet::IpNet>,
}

/// One flow to judge: the responder is `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathQuery {
    /// Initiator address.
    pub src: IpAddr,
    /// Responder address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Responder port; for ICMP/ICMPv6 `type * 256 + code` (NetFlow convention).
    pub dport: u16,
}

impl PathQuery {
    /// Builds a query from text: two addresses and one concrete service
    /// (`tcp/5432`, `udp/53`, `icmp/8` = type 8 code 0, `icmpv6/128`, `proto/47`).
    pub fn parse(src: &str, dst: &str, service: &str) -> Result<PathQuery, String> {
        let src_ip: IpAddr = src
            .trim()
            .parse()
            .map_err(|_| format!("{src:?} is not an IP address"))?;
        let dst_ip: IpAddr = dst
            .trim()
            .parse()
            .map_err(|_| format!("{dst:?} is not an IP address"))?;
        let (proto, dport) = Service::parse(service)?.concrete().ok_or_else(|| {
            format!("{service:?} is not one concrete service (use e.g. tcp/5432, icmp/8, proto/47)")
        })?;
        Ok(PathQuery {
            src: src_ip,
            dst: dst_ip,
            proto,
            dport,
        })
    }

    /// The query's service as text: `tcp/5432`, `udp/53`, `icmp/8`
    /// (`icmp/3/1` when the code is not 0), `icmpv6/128`, `proto/47`.
    pub fn service_text(&self) -> String {
        service::describe(self.proto, self.dport)
    }
}

/// What the policy says about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Same zone, no `intra = "deny"`, no deny rule: allowed.
    Intra,
    /// An allow rule covers it.
    Allowed,
    /// A deny rule matches (wins over any allow, also inside one zone).
    Denied {
        /// The deny rule's severity (the most severe matching rule).
        severity: Severity,
    },
    /// Between zones (or inside an `intra = "deny"` zone) and no allow covers it.
    NotAllowed,
    /// One side is in the implicit zone `local` and no rule names `local` for
    /// that side: no path finding.
    Local,
}

impl Decision {
    /// Short lowercase name: `intra`, `allowed`, `denied`, `not-allowed`, `local`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Intra => "intra",
            Decision::Allowed => "allowed",
            Decision::Denied { .. } => "denied",
            Decision::NotAllowed => "not-allowed",
            Decision::Local => "local",
        }
    }
}

/// The result of [`Policy::evaluate`]; the rule text is borrowed from the
/// policy when it is one of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict<'p> {
    /// The initiator's classification.
    pub src: Classification,
    /// The responder's classification.
    pub dst: Classification,
    /// The decision.
    pub decision: Decision,
    /// What decided, for humans: `allow app -> postgres tcp/5432 (zones.toml:31)`,
    /// `deny any -> db tcp/22 (zones.toml:40)`, `default: no allow from internet to db`,
    /// `intra-zone: app`, `local address: no rule names local`.
    pub rule: Cow<'p, str>,
    /// Line of the deciding allow/deny rule in the zones file.
    pub rule_line: Option<u32>,
}

/// An accepted false positive (`[[suppress]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    /// Finding kind it applies to (one of [`FINDING_KINDS`]); `None` = every kind.
    pub kind: Option<String>,
    /// Source zone, group, implicit zone or `any`.
    pub from: String,
    /// Destination zone, group, implicit zone or `any`.
    pub to: String,
    /// Services it covers; empty = any.
    pub services: Vec<Service>,
    /// Why it is accepted.
    pub reason: String,
    /// Who accepted it.
    pub owner: String,
    /// Tracking ticket.
    pub ticket: Option<String>,
    /// Last day it applies (year, month, day); `None` = no expiry.
    pub until: Option<(i32, u32, u32)>,
    /// Line of the `[[suppress]]` entry in the zones file.
    pub line: u32,
}

/// A suppression that matched a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuppressionMatch<'a> {
    /// The suppression.
    pub suppression: &'a Suppression,
    /// Its `until` is before today: report it, do not apply it.
    pub expired: bool,
}
