//! The running [`Policy`]: classification, rule evaluation, explanation and
//! suppression lookup. Built only by the loader in `config.rs`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::classify::Classifier;
use crate::{
    Classification, Decision, Error, Group, GroupId, PathQuery, Service, Severity, Suppression,
    SuppressionMatch, Verdict, Zone, ZoneId,
};

/// A resolved `from`/`to` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `any`: every address.
    Any,
    /// A zone (declared or implicit): all its addresses, its groups' included.
    Zone(ZoneId),
    /// A group: only addresses classified into it.
    Group(GroupId),
}

impl Endpoint {
    fn matches(self, c: &Classification) -> bool {
        match self {
            Endpoint::Any => true,
            Endpoint::Zone(z) => c.zone == z,
            Endpoint::Group(g) => c.group == Some(g),
        }
    }
}

/// An allow or deny rule, resolved at load.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) deny: bool,
    /// Only meaningful for deny rules.
    pub(crate) severity: Severity,
    pub(crate) from: Endpoint,
    pub(crate) to: Endpoint,
    pub(crate) from_name: String,
    pub(crate) to_name: String,
    pub(crate) services: Vec<Service>,
    pub(crate) line: u32,
    /// One description per service, built once: `allow app -> postgres tcp/5432 (zones.toml:31)`.
    pub(crate) texts: Vec<String>,
}

impl Rule {
    /// Builds the per-service descriptions.
    pub(crate) fn describe(mut self, file: &str) -> Rule {
        let verb = if self.deny { "deny" } else { "allow" };
        self.texts = self
            .services
            .iter()
            .map(|s| {
                format!(
                    "{verb} {} -> {} {s} ({file}:{})",
                    self.from_name, self.to_name, self.line
                )
            })
            .collect();
        self
    }

    /// Index of the first service that matches, if the ends match too.
    fn matches(&self, src: &Classification, dst: &Classification, q: &PathQuery) -> Option<usize> {
        if !self.from.matches(src) || !self.to.matches(dst) {
            return None;
        }
        self.services
            .iter()
            .position(|s| s.matches(q.proto, q.dport))
    }

    fn names_local(&self, local: ZoneId) -> (bool, bool) {
        (
            self.from == Endpoint::Zone(local),
            self.to == Endpoint::Zone(local),
        )
    }
}

/// A loaded, checked zones file. Immutable: a reload builds a new one.
///
/// Zone ids: declared zones in file order, then the implicit `internet`,
/// `undeclared` and `local`.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The file it was loaded from, as named.
    file: String,
    zones: Vec<Zone>,
    groups: Vec<Group>,
    classifier: Classifier,
    /// Allow and deny rules in file order.
    rules: Vec<Rule>,
    /// Per source zone: indexes into `rules` of deny rules whose `from` can match it.
    deny_by_src: Vec<Box<[u32]>>,
    /// Per source zone: indexes into `rules` of allow rules whose `from` can match it.
    allow_by_src: Vec<Box<[u32]>>,
    /// Some rule has `from = "local"`.
    local_from: bool,
    /// Some rule has `to = "local"`.
    local_to: bool,
    /// Per zone: `intra-zone: NAME`.
    intra_text: Vec<String>,
    suppressions: Vec<Suppression>,
    suppression_ends: Vec<(Endpoint, Endpoint)>,
    internet: ZoneId,
    undeclared: ZoneId,
    local: ZoneId,
    /// Tells policies apart for [`DecisionCache`] (a clone keeps it: its
    /// decisions are the same).
    id: u64,
}

const LOCAL_TEXT: &str = "local address: no rule names local";

/// Ids of [`Policy`]; 0 is none.
static POLICY_IDS: AtomicU64 = AtomicU64::new(1);

/// Decisions taken so far, for a caller judging many flows by one policy
/// ([`Policy::evaluate_cached`]). A decision depends only on both sides'
/// zones and groups and on the service, which few flows differ in, while
/// finding it walks the rules that can apply to the source zone. Used with
/// another policy, the cache starts over; it holds at most
/// [`DecisionCache::MAX`] decisions (then it starts over too).
#[derive(Debug, Default)]
pub struct DecisionCache {
    /// The [`Policy`] id the decisions are of.
    policy: u64,
    decided: HashMap<DecisionKey, Decided, foldhash::fast::RandomState>,
}

impl DecisionCache {
    /// Decisions kept at most (a few hundred KiB).
    pub const MAX: usize = 8192;
}

/// What a decision depends on, packed in one number (hashed in one step):
/// both sides' zone (16 bits) and group (17: none or id + 1), the protocol
/// and the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct DecisionKey(u128);

impl DecisionKey {
    fn new(src: &Classification, dst: &Classification, q: &PathQuery) -> DecisionKey {
        let side = |c: &Classification| {
            let group = c.group.map_or(0, |g| u64::from(g.0) + 1);
            u128::from(u64::from(c.zone.0) << 17 | group)
        };
        DecisionKey(
            side(src) << 57 | side(dst) << 24 | u128::from(q.proto) << 16 | u128::from(q.dport),
        )
    }
}

impl Policy {
    pub(crate) fn new(
        zones: Vec<Zone>,
        groups: Vec<Group>,
        mut classifier: Classifier,
        rules: Vec<Rule>,
        suppressions: Vec<Suppression>,
        suppression_ends: Vec<(Endpoint, Endpoint)>,
        [internet, undeclared, local]: [ZoneId; 3],
    ) -> Policy {
        classifier.seal();
        let mut deny_by_src = vec![Vec::new(); zones.len()];
        let mut allow_by_src = vec![Vec::new(); zones.len()];
        let (mut local_from, mut local_to) = (false, false);
        for (i, r) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let list = if r.deny {
                &mut deny_by_src
            } else {
                &mut allow_by_src
            };
            match r.from {
                Endpoint::Any => list.iter_mut().for_each(|l| l.push(i)),
                Endpoint::Zone(z) => list[z.index()].push(i),
                Endpoint::Group(g) => list[groups[g.index()].zone.index()].push(i),
            }
            let (f, t) = r.names_local(local);
            local_from |= f;
            local_to |= t;
        }
        let intra_text = zones
            .iter()
            .map(|z| format!("intra-zone: {}", z.name))
            .collect();
        Policy {
            file: String::new(),
            deny_by_src: deny_by_src.into_iter().map(Vec::into_boxed_slice).collect(),
            allow_by_src: allow_by_src
                .into_iter()
                .map(Vec::into_boxed_slice)
                .collect(),
            zones,
            groups,
            classifier,
            rules,
            local_from,
            local_to,
            intra_text,
            suppressions,
            suppression_ends,
            internet,
            undeclared,
            local,
            id: POLICY_IDS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Reads and checks a zones file. Diagnostics name the file as `path` is given.
    pub fn load(path: &Path) -> Result<Policy, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string())
    }

    /// Checks zones-file text; `file_name` is used in diagnostics and rule texts.
    /// Reports every problem found, not just the first.
    pub fn parse(text: &str, file_name: &str) -> Result<Policy, Error> {
        let mut policy = crate::config::parse(text, file_name)
            .map_err(|diagnostics| Error::Invalid { diagnostics })?;
        policy.file = file_name.to_string();
        Ok(policy)
    }

    /// The file name the policy was loaded from (for `file:line` references).
    pub fn file_name(&self) -> &str {
        &self.file
    }

    /// All zones: declared ones in file order, then `internet`, `undeclared`, `local`.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// One zone.
    pub fn zone(&self, id: ZoneId) -> &Zone {
        &self.zones[id.index()]
    }

    /// The zone with this name (implicit ones included).
    pub fn zone_by_name(&self, name: &str) -> Option<ZoneId> {
        self.zones
            .iter()
            .position(|z| z.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .map(ZoneId)
    }

    /// All groups in file order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// One group.
    pub fn group(&self, id: GroupId) -> &Group {
        &self.groups[id.index()]
    }

    /// The implicit zone of public addresses no zone declares.
    pub fn internet(&self) -> ZoneId {
        self.internet
    }

    /// The implicit zone of private addresses no zone declares.
    pub fn undeclared(&self) -> ZoneId {
        self.undeclared
    }

    /// The implicit zone of loopback, link-local, multicast, broadcast and unspecified addresses.
    pub fn local(&self) -> ZoneId {
        self.local
    }

    /// The accepted false positives, in file order.
    pub fn suppressions(&self) -> &[Suppression] {
        &self.suppressions
    }

    /// Where an address belongs: longest prefix over zone CIDRs and group
    /// hosts, then the built-in ranges. IPv4-mapped IPv6 addresses are
    /// classified as their IPv4 address.
    pub fn classify(&self, ip: IpAddr) -> Classification {
        self.classifier.classify(ip)
    }

    /// Judges one flow. Order: a matching deny wins; then a `local` side that
    /// no rule names gives [`Decision::Local`]; then same zone (without
    /// `intra = "deny"`) is [`Decision::Intra`]; then the first matching
    /// allow; else [`Decision::NotAllowed`]. Among several matching denies the
    /// most severe decides (the first in the file on a tie).
    ///
    /// `any` in a deny rule also matches `local` addresses. A `local` side is
    /// judged like any other zone only when some allow or deny rule names
    /// `local` on that side (`from = "local"` for sources, `to = "local"` for
    /// destinations).
    pub fn evaluate(&self, q: &PathQuery) -> Verdict<'_> {
        let src = self.classify(q.src);
        let dst = self.classify(q.dst);
        let decided = self.decide(&src, &dst, q);
        self.verdict(src, dst, decided)
    }

    /// [`Policy::evaluate`], taking decisions from `cache` when they were
    /// taken before (and keeping new ones there).
    pub fn evaluate_cached(&self, q: &PathQuery, cache: &mut DecisionCache) -> Verdict<'_> {
        let src = self.classify(q.src);
        let dst = self.classify(q.dst);
        if cache.policy != self.id {
            cache.decided.clear();
            cache.policy = self.id;
        }
        let key = DecisionKey::new(&src, &dst, q);
        let decided = match cache.decided.get(&key) {
            Some(&d) => d,
            None => {
                let d = self.decide(&src, &dst, q);
                if cache.decided.len() >= DecisionCache::MAX {
                    cache.decided.clear();
                }
                cache.decided.insert(key, d);
                d
            }
        };
        self.verdict(src, dst, decided)
    }

    fn verdict(&self, src: Classification, dst: Classification, decided: Decided) -> Verdict<'_> {
        let (decision, rule, rule_line) = match decided {
            Decided::Deny(i, k) => {
                let r = &self.rules[i];
                (
                    Decision::Denied {
                        severity: r.severity,
                    },
                    Cow::Borrowed(r.texts[k].as_str()),
                    Some(r.line),
                )
            }
            Decided::Local(_) => (Decision::Local, Cow::Borrowed(LOCAL_TEXT), None),
            Decided::Intra => (
                Decision::Intra,
                Cow::Borrowed(self.intra_text[src.zone.index()].as_str()),
                None,
            ),
            Decided::Allow(i, k) => {
                let r = &self.rules[i];
                (
                    Decision::Allowed,
                    Cow::Borrowed(r.texts[k].as_str()),
                    Some(r.line),
                )
            }
            Decided::Default => (
                Decision::NotAllowed,
                Cow::Owned(self.default_text(&src, &dst)),
                None,
            ),
        };
        Verdict {
            src,
            dst,
            decision,
            rule,
            rule_line,
        }
    }

    /// Reads only the zone and group of each side and the service: that is
    /// what [`DecisionKey`] keys cached decisions by, so a rule reading
    /// anything else must extend the key.
    fn decide(&self, src: &Classification, dst: &Classification, q: &PathQuery) -> Decided {
        let mut deny: Option<(usize, usize)> = None;
        for &i in self.deny_by_src[src.zone.index()].iter() {
            let i = i as usize; // u32 -> usize never truncates on supported targets
            let r = &self.rules[i];
            if let Some(k) = r.matches(src, dst, q)
                && deny.is_none_or(|(b, _)| r.severity > self.rules[b].severity)
            {
                deny = Some((i, k));
            }
        }
        if let Some((i, k)) = deny {
            return Decided::Deny(i, k);
        }
        if src.zone == self.local && !self.local_from {
            return Decided::Local(true);
        }
        if dst.zone == self.local && !self.local_to {
            return Decided::Local(false);
        }
        if src.zone == dst.zone && !self.zones[src.zone.index()].intra_deny {
            return Decided::Intra;
        }
        for &i in self.allow_by_src[src.zone.index()].iter() {
            let i = i as usize;
            if let Some(k) = self.rules[i].matches(src, dst, q) {
                return Decided::Allow(i, k);
            }
        }
        Decided::Default
    }

    fn default_text(&self, src: &Classification, dst: &Classification) -> String {
        let (s, d) = (&self.zone(src.zone).name, &self.zone(dst.zone).name);
        if src.zone == dst.zone {
            format!("default: no allow from {s} to {d} (intra = \"deny\")")
        } else {
            format!("default: no allow from {s} to {d}")
        }
    }

    fn describe_side(&self, out: &mut String, role: &str, ip: IpAddr, c: &Classification) {
        let z = self.zone(c.zone);
        let _ = write!(out, "{role} {ip}: zone {}", z.name);
        if z.implicit {
            let _ = write!(out, " (implicit, trust {})", z.trust);
        } else {
            let _ = write!(out, " (trust {}, exposure {}", z.trust, z.exposure);
            if z.intra_deny {
                out.push_str(", intra = \"deny\"");
            }
            out.push(')');
        }
        if let Some(g) = c.group {
            let _ = write!(out, ", group {}", self.group(g).name);
        }
        match c.prefix {
            Some(p) => {
                let _ = write!(out, ", prefix {p}");
            }
            None => out.push_str(", no prefix matched"),
        }
        let _ = writeln!(out, ", class {}", c.class.as_str());
    }

    /// Explains [`evaluate`](Policy::evaluate) for humans, over several lines:
    /// each side's zone, group, matched prefix and class; every rule whose
    /// ends and services match; the decision, the rule that decides and why.
    pub fn explain(&self, q: &PathQuery) -> String {
        let v = self.evaluate(q);
        let (src, dst) = (&v.src, &v.dst);
        let mut out = String::new();
        let _ = writeln!(out, "path {} -> {} {}", q.src, q.dst, q.service_text());
        self.describe_side(&mut out, "src", q.src, src);
        self.describe_side(&mut out, "dst", q.dst, dst);

        let decided = self.decide(src, dst, q);
        let deciding = match decided {
            Decided::Deny(i, _) | Decided::Allow(i, _) => Some(i),
            _ => None,
        };
        let mut matching = 0;
        let mut denies = 0;
        out.push_str("matching rules:\n");
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(k) = r.matches(src, dst, q) {
                matching += 1;
                denies += usize::from(r.deny);
                let mark = if deciding == Some(i) {
                    "  <- decides"
                } else {
                    ""
                };
                let _ = writeln!(out, "  {}{mark}", r.texts[k]);
            }
        }
        if matching == 0 {
            out.push_str("  (none)\n");
        }

        let (sname, dname) = (&self.zone(src.zone).name, &self.zone(dst.zone).name);
        let why = match decided {
            Decided::Deny(..) if denies > 1 => format!(
                "{denies} deny rules match; the most severe decides, and a deny wins over any allow"
            ),
            Decided::Deny(..) => "a deny rule matches, and a deny wins over any allow".to_owned(),
            Decided::Local(true) => {
                "the source is in the implicit zone local and no rule has from = \"local\": local addresses raise no path findings".to_owned()
            }
            Decided::Local(false) => {
                "the destination is in the implicit zone local and no rule has to = \"local\": local addresses raise no path findings".to_owned()
            }
            Decided::Intra => format!(
                "both ends are in zone {sname}, which allows traffic inside it, and no deny rule matches"
            ),
            Decided::Allow(..) => {
                "the first matching allow rule covers it and no deny rule matches".to_owned()
            }
            Decided::Default if src.zone == dst.zone => format!(
                "zone {sname} sets intra = \"deny\" and no allow rule covers this service"
            ),
            Decided::Default => format!(
                "no allow rule covers {} from {sname} to {dname}; between zones everything not allowed is a finding",
                q.service_text()
            ),
        };
        let _ = writeln!(out, "decision: {} by {}", v.decision.as_str(), v.rule);
        if let Decision::Denied { severity } = v.decision {
            let _ = writeln!(out, "severity: {severity}");
        }
        let _ = writeln!(out, "why: {why}");
        out
    }

    /// The suppression that covers a finding of `kind` on verdict `v` for
    /// service (`proto`, `dport`), on day `today` (year, month, day).
    ///
    /// Returns the first active match in file order; when only expired ones
    /// match (`until` before `today`), the first of those with `expired =
    /// true`, which the caller reports and does not apply.
    pub fn suppression(
        &self,
        kind: &str,
        v: &Verdict,
        proto: u8,
        dport: u16,
        today: (i32, u32, u32),
    ) -> Option<SuppressionMatch<'_>> {
        let mut expired_match = None;
        for (s, (from, to)) in self.suppressions.iter().zip(&self.suppression_ends) {
            if s.kind.as_deref().is_some_and(|k| k != kind)
                || !from.matches(&v.src)
                || !to.matches(&v.dst)
                || !(s.services.is_empty() || s.services.iter().any(|x| x.matches(proto, dport)))
            {
                continue;
            }
            let expired = s.until.is_some_and(|u| u < today);
            if !expired {
                return Some(SuppressionMatch {
                    suppression: s,
                    expired: false,
                });
            }
            if expired_match.is_none() {
                expired_match = Some(SuppressionMatch {
                    suppression: s,
                    expired: true,
                });
            }
        }
        expired_match
    }
}

/// What decided, with rule and service indexes.
#[derive(Clone, Copy, Debug)]
enum Decided {
    Deny(usize, usize),
    /// `true` when the source side is local.
    Local(bool),
    Intra,
    Allow(usize, usize),
    Default,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AddressClass;

    const POLICY: &str = r#"
[[zone]]
name = "app"
cidrs = ["10.1.0.0/16", "2001:db8:a::/48"]

[[zone]]
name = "db"
cidrs = ["10.2.0.0/16", "fd00:2::/32"]
trust = "high"
exposure = "private"

[[zone]]
name = "vault"
cidrs = ["10.3.0.0/16"]
intra = "deny"

[[zone]]
name = "monitoring"
cidrs = ["10.9.0.0/24"]

[[group]]
name = "postgres"
zone = "db"
hosts = ["10.2.0.10/32", "10.2.0.11"]
services = ["tcp/5432"]

[[allow]] # app-pg
from = "app"
to = "postgres"

[[allow]] # app-db-ssh
from = "app"
to = "db"
services = ["tcp/22", "tcp/8000-8100"]

[[deny]] # no-ssh-db
from = "any"
to = "db"
services = ["tcp/22"]
severity = "critical"

[[deny]] # app-db-8080
from = "app"
to = "db"
services = ["tcp/8080"]
severity = "low"

[[deny]] # app-db-8080-medium
from = "app"
to = "db"
services = ["tcp/8080"]
severity = "medium"

[[allow]] # vault-intra
from = "vault"
to = "vault"
services = ["tcp/8200"]

[[allow]] # web
from = "internet"
to = "app"
services = ["tcp/443", "icmp/8"]

[[suppress]] # expired
kind = "unexpected-path"
from = "monitoring"
to = "any"
reason = "old exception"
owner = "netops"
until = "2024-01-01"

[[suppress]] # active
kind = "unexpected-path"
from = "monitoring"
to = "app"
services = ["tcp/9100"]
reason = "Prometheus scrapes every host"
owner = "netops"
ticket = "SEC-142"
until = "2027-01-01"

[[suppress]] # forever
from = "internet"
to = "app"
reason = "scanners"
owner = "secops"
"#;

    fn policy() -> Policy {
        Policy::parse(POLICY, "zones.toml").unwrap()
    }

    fn line_of(needle: &str) -> u32 {
        let i = POLICY.lines().position(|l| l.contains(needle)).unwrap();
        u32::try_from(i + 1).unwrap()
    }

    fn eval<'p>(p: &'p Policy, src: &str, dst: &str, svc: &str) -> Verdict<'p> {
        p.evaluate(&PathQuery::parse(src, dst, svc).unwrap())
    }

    /// Queries over every zone, group, implicit zone and service of
    /// [`POLICY`], and `extra` other ports.
    fn queries(extra: u16) -> Vec<PathQuery> {
        let addrs = [
            "10.1.0.5",
            "2001:db8:a::9",
            "10.2.0.7",
            "10.2.0.10",
            "10.2.0.11",
            "fd00:2::1",
            "10.3.0.1",
            "10.3.0.2",
            "10.9.0.4",
            "198.51.100.7",
            "192.168.1.1",
            "127.0.0.1",
            "::1",
            "fe80::1",
        ];
        let services = [
            "tcp/5432", "tcp/22", "tcp/8050", "tcp/8080", "tcp/8200", "tcp/443", "icmp/8",
            "udp/53", "proto/47", "tcp/9100",
        ];
        let mut out = Vec::new();
        for src in addrs {
            for dst in addrs {
                for svc in services {
                    out.push(PathQuery::parse(src, dst, svc).unwrap());
                }
                for port in 0..extra {
                    out.push(PathQuery::parse(src, dst, &format!("udp/{port}")).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn cached_decisions_are_the_policys_own() {
        let p = policy();
        let mut cache = DecisionCache::default();
        let qs = queries(0);
        // Twice: taken, then from the cache.
        for _ in 0..2 {
            for q in &qs {
                assert_eq!(p.evaluate_cached(q, &mut cache), p.evaluate(q), "{q:?}");
            }
        }
        // Another policy, where tcp/22 into db is allowed and nothing is
        // denied: the same cache gives its decisions, not the first one's.
        let allow_all = POLICY
            .lines()
            .filter(|l| !l.starts_with("severity"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("[[deny]]", "[[allow]]");
        let other = Policy::parse(&allow_all, "other.toml").unwrap();
        let q = PathQuery::parse("10.1.0.5", "10.2.0.7", "tcp/22").unwrap();
        assert!(matches!(
            p.evaluate_cached(&q, &mut cache).decision,
            Decision::Denied { .. }
        ));
        assert_eq!(
            other.evaluate_cached(&q, &mut cache).decision,
            Decision::Allowed
        );
        for q in &qs {
            assert_eq!(
                other.evaluate_cached(q, &mut cache),
                other.evaluate(q),
                "{q:?}"
            );
        }
        // More decisions than the cache keeps: it starts over, still right.
        let many = queries(50);
        assert!(many.len() > DecisionCache::MAX);
        for q in &many {
            assert_eq!(p.evaluate_cached(q, &mut cache), p.evaluate(q), "{q:?}");
        }
        assert!(cache.decided.len() <= DecisionCache::MAX);
    }

    fn zone_name(p: &Policy, c: &Classification) -> String {
        p.zone(c.zone).name.clone()
    }

    #[test]
    fn zones_and_implicit_zones() {
        let p = policy();
        let names: Vec<_> = p.zones().iter().map(|z| z.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "app",
                "db",
                "vault",
                "monitoring",
                "internet",
                "undeclared",
                "local"
            ]
        );
        assert_eq!(p.zone_by_name("internet"), Some(p.internet()));
        assert_eq!(p.zone_by_name("undeclared"), Some(p.undeclared()));
        assert_eq!(p.zone_by_name("local"), Some(p.local()));
        assert_eq!(p.zone_by_name("nope"), None);
        assert!(p.zone(p.internet()).implicit);
        assert_eq!(p.zone(p.internet()).trust, crate::Trust::Untrusted);
        assert_eq!(p.zone(p.undeclared()).trust, crate::Trust::Untrusted);
        assert_eq!(p.zone(p.local()).trust, crate::Trust::Medium);
        assert!(p.zone(p.zone_by_name("vault").unwrap()).intra_deny);
    }

    #[test]
    fn group_host_beats_zone_cidr() {
        let p = policy();
        let c = p.classify("10.2.0.10".parse().unwrap());
        assert_eq!(zone_name(&p, &c), "db");
        assert_eq!(p.group(c.group.unwrap()).name, "postgres");
        assert_eq!(c.prefix, Some("10.2.0.10/32".parse().unwrap()));
        assert_eq!(c.class, AddressClass::Declared);
        let c = p.classify("10.2.0.99".parse().unwrap());
        assert_eq!((zone_name(&p, &c).as_str(), c.group), ("db", None));
        assert_eq!(c.prefix, Some("10.2.0.0/16".parse().unwrap()));
    }

    #[test]
    fn unmatched_addresses_fall_into_implicit_zones() {
        let p = policy();
        let cases = [
            (
                "10.77.1.2",
                "undeclared",
                AddressClass::Undeclared,
                Some("10.0.0.0/8"),
            ),
            (
                "172.16.5.5",
                "undeclared",
                AddressClass::Undeclared,
                Some("172.16.0.0/12"),
            ),
            (
                "192.168.1.1",
                "undeclared",
                AddressClass::Undeclared,
                Some("192.168.0.0/16"),
            ),
            (
                "100.64.0.1",
                "undeclared",
                AddressClass::Undeclared,
                Some("100.64.0.0/10"),
            ),
            (
                "fd12::1",
                "undeclared",
                AddressClass::Undeclared,
                Some("fc00::/7"),
            ),
            ("8.8.8.8", "internet", AddressClass::Internet, None),
            ("192.0.2.1", "internet", AddressClass::Internet, None),
            ("2001:db8::1", "internet", AddressClass::Internet, None),
            ("fe80::1", "local", AddressClass::Local, Some("fe80::/10")),
            (
                "127.0.0.1",
                "local",
                AddressClass::Local,
                Some("127.0.0.0/8"),
            ),
            ("::1", "local", AddressClass::Local, Some("::1/128")),
            (
                "169.254.169.254",
                "local",
                AddressClass::Local,
                Some("169.254.0.0/16"),
            ),
            (
                "224.0.0.251",
                "local",
                AddressClass::Local,
                Some("224.0.0.0/4"),
            ),
            ("ff02::1", "local", AddressClass::Local, Some("ff00::/8")),
            (
                "255.255.255.255",
                "local",
                AddressClass::Local,
                Some("255.255.255.255/32"),
            ),
            ("0.0.0.0", "local", AddressClass::Local, Some("0.0.0.0/32")),
            ("::", "local", AddressClass::Local, Some("::/128")),
            (
                "::ffff:10.1.2.3",
                "app",
                AddressClass::Declared,
                Some("10.1.0.0/16"),
            ),
            (
                "::ffff:10.66.0.1",
                "undeclared",
                AddressClass::Undeclared,
                Some("10.0.0.0/8"),
            ),
            ("::ffff:8.8.8.8", "internet", AddressClass::Internet, None),
            (
                "fd00:2::5",
                "db",
                AddressClass::Declared,
                Some("fd00:2::/32"),
            ),
        ];
        for (ip, zone, class, prefix) in cases {
            let c = p.classify(ip.parse().unwrap());
            assert_eq!(zone_name(&p, &c), zone, "{ip}");
            assert_eq!(c.class, class, "{ip}");
            assert_eq!(c.prefix, prefix.map(|s| s.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allow_with_group_default_services() {
        let p = policy();
        let v = eval(&p, "10.1.0.5", "10.2.0.10", "tcp/5432");
        assert_eq!(v.decision, Decision::Allowed);
        let line = line_of("# app-pg");
        assert_eq!(
            v.rule,
            format!("allow app -> postgres tcp/5432 (zones.toml:{line})")
        );
        assert_eq!(v.rule_line, Some(line));
        // The group's services are the default: other ports are not allowed.
        let v = eval(&p, "10.1.0.5", "10.2.0.10", "tcp/5433");
        assert_eq!(v.decision, Decision::NotAllowed);
        assert_eq!(v.rule, "default: no allow from app to db");
        assert_eq!(v.rule_line, None);
        // The group rule does not cover other db hosts.
        let v = eval(&p, "10.1.0.5", "10.2.0.99", "tcp/5432");
        assert_eq!(v.decision, Decision::NotAllowed);
        // A zone rule covers its groups' hosts; port ranges.
        let v = eval(&p, "10.1.0.5", "10.2.0.10", "tcp/8100");
        assert_eq!(v.decision, Decision::Allowed);
        assert_eq!(
            v.rule,
            format!(
                "allow app -> db tcp/8000-8100 (zones.toml:{})",
                line_of("# app-db-ssh")
            )
        );
    }

    #[test]
    fn deny_beats_allow_and_most_severe_deny_decides() {
        let p = policy();
        let v = eval(&p, "10.1.0.5", "10.2.0.10", "tcp/22");
        assert_eq!(
            v.decision,
            Decision::Denied {
                severity: Severity::Critical
            }
        );
        let line = line_of("# no-ssh-db");
        assert_eq!(v.rule, format!("deny any -> db tcp/22 (zones.toml:{line})"));
        assert_eq!(v.rule_line, Some(line));
        let v = eval(&p, "10.1.0.5", "10.2.0.1", "tcp/8080");
        assert_eq!(
            v.decision,
            Decision::Denied {
                severity: Severity::Medium
            }
        );
        assert_eq!(v.rule_line, Some(line_of("# app-db-8080-medium")));
    }

    #[test]
    fn deny_applies_inside_one_zone() {
        let p = policy();
        let v = eval(&p, "10.2.0.1", "10.2.0.2", "tcp/22");
        assert!(matches!(v.decision, Decision::Denied { .. }));
        let v = eval(&p, "10.2.0.1", "10.2.0.2", "tcp/5432");
        assert_eq!(v.decision, Decision::Intra);
        assert_eq!(v.rule, "intra-zone: db");
        assert_eq!(v.rule_line, None);
    }

    #[test]
    fn intra_deny_zone_needs_an_allow() {
        let p = policy();
        let v = eval(&p, "10.3.0.1", "10.3.0.2", "tcp/80");
        assert_eq!(v.decision, Decision::NotAllowed);
        assert_eq!(
            v.rule,
            "default: no allow from vault to vault (intra = \"deny\")"
        );
        let v = eval(&p, "10.3.0.1", "10.3.0.2", "tcp/8200");
        assert_eq!(v.decision, Decision::Allowed);
    }

    #[test]
    fn between_zones_everything_not_allowed_is_not_allowed() {
        let p = policy();
        let v = eval(&p, "198.51.100.7", "10.2.0.10", "tcp/5432");
        assert_eq!(v.decision, Decision::NotAllowed);
        assert_eq!(v.rule, "default: no allow from internet to db");
        assert_eq!(v.src.zone, p.internet());
        let v = eval(&p, "198.51.100.7", "10.1.0.1", "icmp/8");
        assert_eq!(v.decision, Decision::Allowed);
        let v = eval(&p, "198.51.100.7", "10.1.0.1", "icmp/0");
        assert_eq!(v.decision, Decision::NotAllowed);
        let v = eval(&p, "10.1.0.1", "10.50.0.1", "udp/53");
        assert_eq!(v.rule, "default: no allow from app to undeclared");
        let v = eval(&p, "2001:db8:a::1", "2001:db8:a::2", "tcp/1");
        assert_eq!(v.decision, Decision::Intra);
    }

    #[test]
    fn local_addresses_raise_no_path_decision_unless_named() {
        let p = policy();
        let v = eval(&p, "127.0.0.1", "10.1.0.1", "tcp/80");
        assert_eq!(v.decision, Decision::Local);
        assert_eq!(v.rule, "local address: no rule names local");
        let v = eval(&p, "10.1.0.1", "224.0.0.251", "udp/5353");
        assert_eq!(v.decision, Decision::Local);
        let v = eval(&p, "fe80::1", "fe80::2", "icmpv6/135");
        assert_eq!(v.decision, Decision::Local);
        // A deny with `any` still matches a local side.
        let v = eval(&p, "169.254.0.1", "10.2.0.1", "tcp/22");
        assert!(matches!(v.decision, Decision::Denied { .. }));

        let named = Policy::parse(
            r#"
[[zone]]
name = "app"
cidrs = ["10.1.0.0/16"]

[[allow]]
from = "local"
to = "app"
services = ["udp/5353"]
"#,
            "zones.toml",
        )
        .unwrap();
        let v = eval(&named, "169.254.1.1", "10.1.0.1", "udp/5353");
        assert_eq!(v.decision, Decision::Allowed);
        let v = eval(&named, "169.254.1.1", "10.1.0.1", "tcp/80");
        assert_eq!(v.decision, Decision::NotAllowed);
        assert_eq!(v.rule, "default: no allow from local to app");
        // `local` is named only as `from`: a local destination is still Local.
        let v = eval(&named, "10.1.0.1", "224.0.0.251", "udp/5353");
        assert_eq!(v.decision, Decision::Local);
    }

    #[test]
    fn suppression_matches_and_reports_expiry() {
        let p = policy();
        let today = (2025, 6, 1);
        let v = eval(&p, "10.9.0.5", "10.1.0.1", "tcp/9100");
        // Both match; the active one is preferred over the earlier expired one.
        let m = p
            .suppression("unexpected-path", &v, 6, 9100, today)
            .unwrap();
        assert!(!m.expired);
        assert_eq!(m.suppression.ticket.as_deref(), Some("SEC-142"));
        assert_eq!(m.suppression.line, line_of("# active"));
        // Another port: only the expired one matches.
        let m = p.suppression("unexpected-path", &v, 6, 22, today).unwrap();
        assert!(m.expired);
        assert_eq!(m.suppression.reason, "old exception");
        // The until day itself still applies; the day after it is expired.
        let m = p
            .suppression("unexpected-path", &v, 6, 9100, (2027, 1, 1))
            .unwrap();
        assert!(!m.expired);
        let m = p
            .suppression("unexpected-path", &v, 6, 9100, (2027, 1, 2))
            .unwrap();
        assert!(m.expired);
        // Kind must match when set.
        assert!(p.suppression("egress", &v, 6, 9100, today).is_none());
        // No kind: every kind; no until: never expires.
        let v = eval(&p, "203.0.113.9", "10.1.0.1", "tcp/80");
        let m = p
            .suppression("blocked-attempt", &v, 6, 80, (9999, 12, 31))
            .unwrap();
        assert!(!m.expired);
        assert_eq!(m.suppression.owner, "secops");
        let v = eval(&p, "203.0.113.9", "10.2.0.1", "tcp/80");
        assert!(p.suppression("public-exposure", &v, 6, 80, today).is_none());
    }

    #[test]
    fn explain_names_zones_rules_and_the_decision() {
        let p = policy();
        let text = p.explain(&PathQuery::parse("10.1.0.5", "10.2.0.10", "tcp/22").unwrap());
        let deny = format!(
            "deny any -> db tcp/22 (zones.toml:{})",
            line_of("# no-ssh-db")
        );
        let allow = format!(
            "allow app -> db tcp/22 (zones.toml:{})",
            line_of("# app-db-ssh")
        );
        assert!(text.contains("path 10.1.0.5 -> 10.2.0.10 tcp/22"), "{text}");
        assert!(text.contains("src 10.1.0.5: zone app (trust medium, exposure public), prefix 10.1.0.0/16, class declared"), "{text}");
        assert!(text.contains("dst 10.2.0.10: zone db (trust high, exposure private), group postgres, prefix 10.2.0.10/32"), "{text}");
        assert!(text.contains(&format!("  {deny}  <- decides")), "{text}");
        assert!(text.contains(&format!("  {allow}\n")), "{text}");
        assert!(
            text.contains(&format!("decision: denied by {deny}")),
            "{text}"
        );
        assert!(text.contains("severity: critical"), "{text}");
        assert!(text.contains("a deny wins over any allow"), "{text}");

        let text = p.explain(&PathQuery::parse("198.51.100.7", "10.2.0.10", "tcp/5432").unwrap());
        assert!(text.contains("src 198.51.100.7: zone internet (implicit, trust untrusted), no prefix matched, class internet"), "{text}");
        assert!(text.contains("matching rules:\n  (none)\n"), "{text}");
        assert!(
            text.contains("decision: not-allowed by default: no allow from internet to db"),
            "{text}"
        );
        assert!(
            text.contains("no allow rule covers tcp/5432 from internet to db"),
            "{text}"
        );

        let text = p.explain(&PathQuery::parse("127.0.0.1", "10.1.0.1", "tcp/80").unwrap());
        assert!(
            text.contains("zone local (implicit, trust medium), prefix 127.0.0.0/8, class local"),
            "{text}"
        );
        assert!(text.contains("no rule has from = \"local\""), "{text}");
    }

    #[test]
    fn path_query_parse() {
        let q = PathQuery::parse("10.0.0.1", "::1", "icmp/8").unwrap();
        assert_eq!((q.proto, q.dport), (1, 8 << 8));
        let q = PathQuery::parse("10.0.0.1", "10.0.0.2", "proto/47").unwrap();
        assert_eq!((q.proto, q.dport), (47, 0));
        let q = PathQuery::parse("10.0.0.1", "10.0.0.2", "udp/53").unwrap();
        assert_eq!(
            (q.proto, q.dport, q.service_text().as_str()),
            (17, 53, "udp/53")
        );
        assert!(PathQuery::parse("10.0.0.1", "10.0.0.2", "tcp/1-2").is_err());
        assert!(PathQuery::parse("10.0.0.1", "10.0.0.2", "any").is_err());
        assert!(PathQuery::parse("10.0.0.300", "10.0.0.2", "tcp/1").is_err());
    }

    /// Rough timing of `evaluate` and `evaluate_cached` with 1,000 CIDRs and 200 rules:
    /// `cargo test --release -p zonewatch-zones -- --ignored --nocapture evaluate_speed`.
    #[test]
    #[ignore = "timing, run by hand in release mode"]
    #[allow(clippy::disallowed_methods)]
    fn evaluate_speed() {
        let mut text = String::new();
        for z in 0..100 {
            let _ = writeln!(text, "[[zone]]\nname = \"z{z}\"\ncidrs = [");
            for c in 0..10 {
                let _ = writeln!(text, "\"10.{z}.{c}.0/24\",");
            }
            text.push_str("]\n");
        }
        for r in 0..200 {
            let (a, b) = (r % 100, (r * 7 + 3) % 100);
            let verb = if r % 10 == 0 { "deny" } else { "allow" };
            let _ = writeln!(
                text,
                "[[{verb}]]\nfrom = \"z{a}\"\nto = \"z{b}\"\nservices = [\"tcp/{}\", \"udp/53\"]",
                1000 + r
            );
        }
        let p = Policy::parse(&text, "bench.toml").unwrap();
        let queries: Vec<PathQuery> = (0..1000u32)
            .map(|i| PathQuery {
                src: IpAddr::from([10, (i % 100) as u8, (i % 10) as u8, 5]),
                dst: IpAddr::from([10, ((i * 7 + 3) % 100) as u8, 1, 9]),
                proto: 6,
                dport: 1000 + (i % 200) as u16,
            })
            .collect();
        let start = std::time::Instant::now();
        let mut n = 0usize;
        for _ in 0..200 {
            for q in &queries {
                n += p.evaluate(q).rule.len();
            }
        }
        let per = start.elapsed() / 200_000;
        println!("evaluate: {per:?} per call ({n})");
        let mut cache = DecisionCache::default();
        let start = std::time::Instant::now();
        let mut m = 0usize;
        for _ in 0..200 {
            for q in &queries {
                m += p.evaluate_cached(q, &mut cache).rule.len();
            }
        }
        let per = start.elapsed() / 200_000;
        assert_eq!(m, n);
        println!("evaluate_cached: {per:?} per call ({m})");
    }
}
