//! The zones file as written (`ZonesConfig`, serde) and [`build`], which
//! checks it and produces the running [`Policy`].
//!
//! Every value that can be wrong on its own is read as a string with its span
//! and checked here, so that all problems are reported together, each with
//! `file:line`. Only TOML syntax errors, unknown keys, missing keys and wrong
//! value types stop at the first problem (serde does).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Range;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::classify::{Classifier, LOCAL_V4, LOCAL_V6, Owner, PRIVATE_V4, PRIVATE_V6};
use crate::policy::{Endpoint, Policy, Rule};
use crate::{
    Diagnostic, Exposure, FINDING_KINDS, Group, GroupId, Service, Severity, Suppression, Trust,
    Zone, ZoneId,
};

/// Names a user zone or group may not take.
const RESERVED: [&str; 4] = ["internet", "undeclared", "local", "any"];

/// The whole zones file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZonesConfig {
    /// `[[zone]]` entries.
    #[serde(default)]
    zone: Vec<Spanned<ZoneConfig>>,
    /// `[[group]]` entries.
    #[serde(default)]
    group: Vec<Spanned<GroupConfig>>,
    /// `[[allow]]` entries.
    #[serde(default)]
    allow: Vec<Spanned<AllowConfig>>,
    /// `[[deny]]` entries.
    #[serde(default)]
    deny: Vec<Spanned<DenyConfig>>,
    /// `[[suppress]]` entries.
    #[serde(default)]
    suppress: Vec<Spanned<SuppressConfig>>,
}

/// `[[zone]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneConfig {
    /// Unique name; not `internet`, `undeclared`, `local` or `any`.
    name: Spanned<String>,
    /// CIDRs (`10.2.0.0/16`; a bare address means one host).
    cidrs: Vec<Spanned<String>>,
    /// `untrusted | low | medium | high`; default `medium`.
    trust: Option<Spanned<String>>,
    /// `public | private`; default `public`.
    exposure: Option<Spanned<String>>,
    /// `allow | deny`; default `allow`.
    intra: Option<Spanned<String>>,
}

/// `[[group]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupConfig {
    /// Unique name (shared namespace with zones).
    name: Spanned<String>,
    /// The declared zone the hosts lie in.
    zone: Spanned<String>,
    /// Host prefixes, each inside one of the zone's CIDRs.
    hosts: Vec<Spanned<String>>,
    /// Services the hosts offer; default none.
    #[serde(default)]
    services: Vec<Spanned<String>>,
}

/// `[[allow]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowConfig {
    /// Initiator side: zone, group, implicit zone or `any`.
    from: Spanned<String>,
    /// Responder side: zone, group, implicit zone or `any`.
    to: Spanned<String>,
    /// Services; default the `to` group's services, else `any`.
    services: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[[deny]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyConfig {
    /// Initiator side: zone, group, implicit zone or `any`.
    from: Spanned<String>,
    /// Responder side: zone, group, implicit zone or `any`.
    to: Spanned<String>,
    /// Services; default `any`.
    services: Option<Spanned<Vec<Spanned<String>>>>,
    /// Severity of the finding; default `high`.
    severity: Option<Spanned<String>>,
}

/// `[[suppress]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressConfig {
    /// Finding kind; default every kind.
    kind: Option<Spanned<String>>,
    /// Initiator side: zone, group, implicit zone or `any`.
    from: Spanned<String>,
    /// Responder side: zone, group, implicit zone or `any`.
    to: Spanned<String>,
    /// Services; default any.
    services: Option<Spanned<Vec<Spanned<String>>>>,
    /// Why the finding is accepted.
    reason: Spanned<String>,
    /// Who accepted it.
    owner: Spanned<String>,
    /// Tracking ticket.
    ticket: Option<String>,
    /// Last day it applies: `"YYYY-MM-DD"` or a TOML date.
    until: Option<Spanned<toml::Value>>,
}

/// Byte offset to 1-based line.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn line(&self, offset: usize) -> u32 {
        let n = self.starts.partition_point(|&s| s <= offset);
        u32::try_from(n.max(1)).unwrap_or(u32::MAX)
    }
}

/// Collects diagnostics for one file.
struct Diags<'a> {
    file: &'a str,
    lines: Lines,
    list: Vec<Diagnostic>,
}

impl Diags<'_> {
    fn line(&self, span: &Range<usize>) -> u32 {
        self.lines.line(span.start)
    }

    fn push(&mut self, span: &Range<usize>, message: String) {
        let line = self.line(span);
        self.list.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            message,
        });
    }

    fn at(&self, line: u32) -> String {
        format!("{}:{}", self.file, line)
    }
}

/// Parses and checks a zones file.
pub(crate) fn parse(text: &str, file: &str) -> Result<Policy, Vec<Diagnostic>> {
    let mut diags = Diags {
        file,
        lines: Lines::new(text),
        list: Vec::new(),
    };
    let config: ZonesConfig = match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            diags.push(&span, e.message().trim_end_matches('\n').to_owned());
            return Err(diags.list);
        }
    };
    let policy = build(config, &mut diags);
    if diags.list.is_empty() {
        Ok(policy)
    } else {
        diags.list.sort_by_key(|d| d.line);
        Err(diags.list)
    }
}

/// Parses a CIDR or a bare address (one host); host bits must be zero.
fn parse_net(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    let net = match t.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match t.parse::<std::net::IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => return Err(format!("{s:?} is not a CIDR")),
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set (the network is {})",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Where a declared prefix came from, to name both places on a duplicate.
struct Declared {
    what: String,
    line: u32,
    zone: ZoneId,
    group: Option<GroupId>,
}

fn zone_id(i: usize) -> ZoneId {
    ZoneId(u16::try_from(i).unwrap_or(u16::MAX))
}

fn group_id(i: usize) -> GroupId {
    GroupId(u16::try_from(i).unwrap_or(u16::MAX))
}

fn build(config: ZonesConfig, d: &mut Diags<'_>) -> Policy {
    // Ids are u16 and three zones are implicit.
    if config.zone.len() > usize::from(u16::MAX) - 3 {
        d.push(&(0..0), format!("too many zones ({})", config.zone.len()));
    }
    if config.group.len() > usize::from(u16::MAX) {
        d.push(&(0..0), format!("too many groups ({})", config.group.len()));
    }

    let mut zones = Vec::with_capacity(config.zone.len() + 3);
    // Zones with a CIDR that did not parse (already reported).
    let mut unchecked_zones: Vec<usize> = Vec::new();
    let mut names: HashMap<String, (Endpoint, u32)> = HashMap::new();
    let mut declared: HashMap<IpNet, Declared> = HashMap::new();
    let mut classifier_entries: Vec<(IpNet, Owner)> = Vec::new();

    // Zones.
    for (i, zc) in config.zone.iter().enumerate() {
        let id = zone_id(i);
        let zc = zc.get_ref();
        let name = zc.name.get_ref().clone();
        let what = format!("zone {name:?}");
        check_name(d, &zc.name, &what, Endpoint::Zone(id), &mut names);

        let trust = match &zc.trust {
            None => Trust::Medium,
            Some(t) => t.get_ref().parse().unwrap_or_else(|e: String| {
                d.push(&t.span(), format!("{what}: trust: {e}"));
                Trust::Medium
            }),
        };
        let exposure = match zc
            .exposure
            .as_ref()
            .map(|e| (e.get_ref().as_str(), e.span()))
        {
            None | Some(("public", _)) => Exposure::Public,
            Some(("private", _)) => Exposure::Private,
            Some((other, span)) => {
                d.push(
                    &span,
                    format!(
                        "{what}: exposure: unknown exposure {other:?} (expected public or private)"
                    ),
                );
                Exposure::Public
            }
        };
        let intra_deny = match zc.intra.as_ref().map(|e| (e.get_ref().as_str(), e.span())) {
            None | Some(("allow", _)) => false,
            Some(("deny", _)) => true,
            Some((other, span)) => {
                d.push(
                    &span,
                    format!("{what}: intra: unknown value {other:?} (expected allow or deny)"),
                );
                false
            }
        };

        let mut cidrs = Vec::with_capacity(zc.cidrs.len());
        for c in &zc.cidrs {
            let net = match parse_net(c.get_ref()) {
                Ok(n) => n,
                Err(e) => {
                    d.push(&c.span(), format!("{what}: {e}"));
                    // Its groups' hosts cannot be checked against a CIDR that did not parse.
                    unchecked_zones.push(zones.len());
                    continue;
                }
            };
            let line = d.line(&c.span());
            match declared.entry(net) {
                Entry::Occupied(prev) => {
                    let prev = prev.get();
                    let msg = if prev.zone == id {
                        format!(
                            "{what}: {net} is listed twice (also at {})",
                            d.at(prev.line)
                        )
                    } else {
                        format!(
                            "{what}: {net} is also declared by {} at {}",
                            prev.what,
                            d.at(prev.line)
                        )
                    };
                    d.push(&c.span(), msg);
                }
                Entry::Vacant(v) => {
                    v.insert(Declared {
                        what: what.clone(),
                        line,
                        zone: id,
                        group: None,
                    });
                    classifier_entries.push((
                        net,
                        Owner {
                            zone: id,
                            group: None,
                        },
                    ));
                    cidrs.push(net);
                }
            }
        }
        zones.push(Zone {
            name,
            trust,
            exposure,
            intra_deny,
            implicit: false,
            cidrs,
        });
    }

    // Implicit zones.
    let internet = zone_id(zones.len());
    let undeclared = zone_id(zones.len() + 1);
    let local = zone_id(zones.len() + 2);
    zones.push(Zone {
        name: "internet".into(),
        trust: Trust::Untrusted,
        exposure: Exposure::Public,
        intra_deny: false,
        implicit: true,
        cidrs: Vec::new(),
    });
    zones.push(Zone {
        name: "undeclared".into(),
        trust: Trust::Untrusted,
        exposure: Exposure::Public,
        intra_deny: false,
        implicit: true,
        cidrs: PRIVATE_V4
            .iter()
            .map(|n| IpNet::V4(*n))
            .chain(PRIVATE_V6.iter().map(|n| IpNet::V6(*n)))
            .collect(),
    });
    zones.push(Zone {
        name: "local".into(),
        trust: Trust::Medium,
        exposure: Exposure::Public,
        intra_deny: false,
        implicit: true,
        cidrs: LOCAL_V4
            .iter()
            .map(|n| IpNet::V4(*n))
            .chain(LOCAL_V6.iter().map(|n| IpNet::V6(*n)))
            .collect(),
    });
    names.insert("internet".into(), (Endpoint::Zone(internet), 0));
    names.insert("undeclared".into(), (Endpoint::Zone(undeclared), 0));
    names.insert("local".into(), (Endpoint::Zone(local), 0));
    names.insert("any".into(), (Endpoint::Any, 0));

    // Groups.
    let mut groups = Vec::with_capacity(config.group.len());
    for (i, gc) in config.group.iter().enumerate() {
        let id = group_id(i);
        let gc = gc.get_ref();
        let name = gc.name.get_ref().clone();
        let what = format!("group {name:?}");
        check_name(d, &gc.name, &what, Endpoint::Group(id), &mut names);

        let zone = match names.get(gc.zone.get_ref()) {
            Some((Endpoint::Zone(z), _)) if !zones[z.index()].implicit => Some(*z),
            Some((Endpoint::Zone(_) | Endpoint::Any, _)) => {
                d.push(
                    &gc.zone.span(),
                    format!(
                        "{what}: zone: {:?} is not a declared zone (a group must lie in one)",
                        gc.zone.get_ref()
                    ),
                );
                None
            }
            Some((Endpoint::Group(_), _)) => {
                d.push(
                    &gc.zone.span(),
                    format!(
                        "{what}: zone: {:?} is a group, not a zone",
                        gc.zone.get_ref()
                    ),
                );
                None
            }
            None => {
                d.push(
                    &gc.zone.span(),
                    format!("{what}: zone: no zone named {:?}", gc.zone.get_ref()),
                );
                None
            }
        };

        let mut hosts = Vec::with_capacity(gc.hosts.len());
        for h in &gc.hosts {
            let net = match parse_net(h.get_ref()) {
                Ok(n) => n,
                Err(e) => {
                    d.push(&h.span(), format!("{what}: {e}"));
                    continue;
                }
            };
            let Some(zone) = zone else { continue };
            let z = &zones[zone.index()];
            if !z.cidrs.iter().any(|c| c.contains(&net)) {
                if unchecked_zones.contains(&zone.index()) {
                    continue;
                }
                d.push(
                    &h.span(),
                    format!("{what}: {net} is not inside zone {:?}'s cidrs", z.name),
                );
                continue;
            }
            let line = d.line(&h.span());
            let entry = Declared {
                what: what.clone(),
                line,
                zone,
                group: Some(id),
            };
            match declared.get(&net) {
                // A group host equal to its own zone's CIDR: the group wins.
                Some(prev) if prev.group.is_none() && prev.zone == zone => {}
                Some(prev) => {
                    let msg = if prev.group == Some(id) {
                        format!(
                            "{what}: {net} is listed twice (also at {})",
                            d.at(prev.line)
                        )
                    } else {
                        format!(
                            "{what}: {net} is also declared by {} at {}",
                            prev.what,
                            d.at(prev.line)
                        )
                    };
                    d.push(&h.span(), msg);
                    continue;
                }
                None => {}
            }
            declared.insert(net, entry);
            classifier_entries.push((
                net,
                Owner {
                    zone,
                    group: Some(id),
                },
            ));
            hosts.push(net);
        }
        let services = gc
            .services
            .iter()
            .filter_map(|s| {
                Service::parse(s.get_ref())
                    .map_err(|e| d.push(&s.span(), format!("{what}: services: {e}")))
                    .ok()
            })
            .collect();
        groups.push(Group {
            name,
            zone: zone.unwrap_or(internet),
            hosts,
            services,
        });
    }

    let mut classifier = Classifier::new(internet, undeclared, local);
    // Zone CIDRs were pushed before group hosts, so an equal group host wins.
    for (net, owner) in classifier_entries {
        classifier.insert(net, owner);
    }

    // Rules, in file order: allows then denies keep their own lines.
    let mut rules = Vec::with_capacity(config.allow.len() + config.deny.len());
    for ac in &config.allow {
        let line = d.line(&ac.span());
        let a = ac.get_ref();
        let from = resolve(d, &names, "allow", "from", &a.from);
        let to = resolve(d, &names, "allow", "to", &a.to);
        let services = match &a.services {
            Some(list) => parse_services(d, "allow", list),
            None => match to {
                Some(Endpoint::Group(g)) if !groups[g.index()].services.is_empty() => {
                    groups[g.index()].services.clone()
                }
                _ => vec![Service::ANY],
            },
        };
        if let (Some(from), Some(to)) = (from, to) {
            rules.push(
                Rule {
                    deny: false,
                    severity: Severity::High,
                    from,
                    to,
                    from_name: a.from.get_ref().clone(),
                    to_name: a.to.get_ref().clone(),
                    services,
                    line,
                    texts: Vec::new(),
                }
                .describe(d.file),
            );
        }
    }
    for dc in &config.deny {
        let line = d.line(&dc.span());
        let r = dc.get_ref();
        let from = resolve(d, &names, "deny", "from", &r.from);
        let to = resolve(d, &names, "deny", "to", &r.to);
        let services = match &r.services {
            Some(list) => parse_services(d, "deny", list),
            None => vec![Service::ANY],
        };
        let severity = match &r.severity {
            None => Severity::High,
            Some(s) => s.get_ref().parse().unwrap_or_else(|e: String| {
                d.push(&s.span(), format!("deny: severity: {e}"));
                Severity::High
            }),
        };
        if let (Some(from), Some(to)) = (from, to) {
            rules.push(
                Rule {
                    deny: true,
                    severity,
                    from,
                    to,
                    from_name: r.from.get_ref().clone(),
                    to_name: r.to.get_ref().clone(),
                    services,
                    line,
                    texts: Vec::new(),
                }
                .describe(d.file),
            );
        }
    }
    rules.sort_by_key(|r| r.line);

    // Suppressions.
    let mut suppressions = Vec::with_capacity(config.suppress.len());
    let mut suppression_ends = Vec::with_capacity(config.suppress.len());
    for sc in &config.suppress {
        let line = d.line(&sc.span());
        let s = sc.get_ref();
        let kind = s.kind.as_ref().map(|k| {
            if !FINDING_KINDS.contains(&k.get_ref().as_str()) {
                d.push(
                    &k.span(),
                    format!(
                        "suppress: kind: unknown finding kind {:?} (expected one of {})",
                        k.get_ref(),
                        FINDING_KINDS.join(", ")
                    ),
                );
            }
            k.get_ref().clone()
        });
        let from = resolve(d, &names, "suppress", "from", &s.from);
        let to = resolve(d, &names, "suppress", "to", &s.to);
        let services = match &s.services {
            Some(list) => parse_services(d, "suppress", list),
            None => Vec::new(),
        };
        for (field, value) in [("reason", &s.reason), ("owner", &s.owner)] {
            if value.get_ref().trim().is_empty() {
                d.push(&value.span(), format!("suppress: {field} is empty"));
            }
        }
        let until = s.until.as_ref().and_then(|u| {
            let parsed = match u.get_ref() {
                toml::Value::String(t) => parse_date(t),
                toml::Value::Datetime(dt) => match (dt.date, dt.time) {
                    (Some(date), None) => valid_date(
                        i32::from(date.year),
                        u32::from(date.month),
                        u32::from(date.day),
                    ),
                    _ => None,
                },
                _ => None,
            };
            if parsed.is_none() {
                d.push(
                    &u.span(),
                    format!(
                        "suppress: until: {} is not a date (YYYY-MM-DD)",
                        u.get_ref()
                    ),
                );
            }
            parsed
        });
        if let (Some(from), Some(to)) = (from, to) {
            suppression_ends.push((from, to));
            suppressions.push(Suppression {
                kind,
                from: s.from.get_ref().clone(),
                to: s.to.get_ref().clone(),
                services,
                reason: s.reason.get_ref().clone(),
                owner: s.owner.get_ref().clone(),
                ticket: s.ticket.clone(),
                until,
                line,
            });
        }
    }

    Policy::new(
        zones,
        groups,
        classifier,
        rules,
        suppressions,
        suppression_ends,
        [internet, undeclared, local],
    )
}

/// Checks a zone or group name and records it.
fn check_name(
    d: &mut Diags<'_>,
    name: &Spanned<String>,
    what: &str,
    endpoint: Endpoint,
    names: &mut HashMap<String, (Endpoint, u32)>,
) {
    let n = name.get_ref();
    let line = d.line(&name.span());
    if n.trim().is_empty() || n.chars().any(char::is_whitespace) {
        d.push(
            &name.span(),
            format!("{what}: name must be non-empty without spaces"),
        );
    } else if RESERVED.contains(&n.as_str()) {
        d.push(
            &name.span(),
            format!(
                "{what}: name {n:?} is reserved (internet, undeclared, local and any are implicit)"
            ),
        );
    } else {
        match names.entry(n.clone()) {
            Entry::Occupied(prev) => {
                let kind = match prev.get().0 {
                    Endpoint::Group(_) => "group",
                    _ => "zone",
                };
                let msg = format!(
                    "{what}: name is already used by the {kind} at {}",
                    d.at(prev.get().1)
                );
                d.push(&name.span(), msg);
            }
            Entry::Vacant(v) => {
                v.insert((endpoint, line));
            }
        }
    }
}

fn resolve(
    d: &mut Diags<'_>,
    names: &HashMap<String, (Endpoint, u32)>,
    section: &str,
    field: &str,
    name: &Spanned<String>,
) -> Option<Endpoint> {
    match names.get(name.get_ref()) {
        Some((e, _)) => Some(*e),
        None => {
            d.push(
                &name.span(),
                format!(
                    "{section}: {field}: no zone or group named {:?}",
                    name.get_ref()
                ),
            );
            None
        }
    }
}

fn parse_services(
    d: &mut Diags<'_>,
    section: &str,
    list: &Spanned<Vec<Spanned<String>>>,
) -> Vec<Service> {
    if list.get_ref().is_empty() {
        d.push(
            &list.span(),
            format!("{section}: services is empty (leave it out to mean any)"),
        );
    }
    list.get_ref()
        .iter()
        .filter_map(|s| {
            Service::parse(s.get_ref())
                .map_err(|e| d.push(&s.span(), format!("{section}: services: {e}")))
                .ok()
        })
        .collect()
}

fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let mut it = s.split('-');
    let (y, m, day) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || day.len() != 2 {
        return None;
    }
    valid_date(y.parse().ok()?, m.parse().ok()?, day.parse().ok()?)
}

fn valid_date(y: i32, m: u32, d: u32) -> Option<(i32, u32, u32)> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&d).then_some((y, m, d))
}

#[cfg(test)]
mod tests {
    use crate::{Error, Exposure, Policy, Severity, Trust};

    /// The example in DESIGN.md "The zones file", verbatim.
    const DESIGN_EXAMPLE: &str = r#"# Unmatched public addresses fall into the implicit zone "internet".
[[zone]]
name = "dmz"
cidrs = ["203.0.113.0/24", "2001:db8:1::/48"]
trust = "low"            # untrusted | low | medium | high

[[zone]]
name = "db"
cidrs = ["10.2.0.0/16"]
trust = "high"
exposure = "private"     # must never answer the internet

[[group]]                 # a security group: named hosts + services inside a zone
name = "postgres"
zone = "db"
hosts = ["10.2.0.10/32", "10.2.0.11/32"]
services = ["tcp/5432"]

[[allow]]                 # a declared path; anything else between zones is a finding
from = "app"              # zone or group name
to = "postgres"
services = ["tcp/5432"]   # tcp/N, udp/N, tcp/N-M, icmp, any

[[deny]]                  # an explicitly forbidden path: a finding even inside one zone
from = "any"
to = "db"
services = ["tcp/22"]
severity = "critical"

[[suppress]]              # an accepted false positive: who, why, until when
kind = "unexpected-path"
from = "monitoring"
to = "any"
reason = "Prometheus scrapes every host"
owner = "netops"
ticket = "SEC-142"
until = "2027-01-01"      # expired suppressions stop applying and are reported
"#;

    const EXAMPLE_MISSING_ZONES: &str = r#"
[[zone]]
name = "app"
cidrs = ["10.1.0.0/16"]

[[zone]]
name = "monitoring"
cidrs = ["10.9.0.0/24"]
"#;

    fn errors(text: &str) -> Vec<String> {
        match Policy::parse(text, "zones.toml") {
            Ok(_) => panic!("expected errors"),
            Err(Error::Invalid { diagnostics }) => {
                diagnostics.iter().map(ToString::to_string).collect()
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn design_example_parses_and_names_its_two_undeclared_zones() {
        // The example uses zones "app" and "monitoring" without declaring them:
        // exactly those two names are reported, with their lines.
        assert_eq!(
            errors(DESIGN_EXAMPLE),
            [
                "zones.toml:20: allow: from: no zone or group named \"app\"",
                "zones.toml:32: suppress: from: no zone or group named \"monitoring\"",
            ]
        );
        let text = format!("{DESIGN_EXAMPLE}{EXAMPLE_MISSING_ZONES}");
        let p = Policy::parse(&text, "zones.toml").unwrap();
        let dmz = p.zone(p.zone_by_name("dmz").unwrap());
        assert_eq!(dmz.trust, Trust::Low);
        assert_eq!(dmz.exposure, Exposure::Public);
        assert_eq!(dmz.cidrs.len(), 2);
        let db = p.zone(p.zone_by_name("db").unwrap());
        assert_eq!((db.trust, db.exposure), (Trust::High, Exposure::Private));
        let app = p.zone(p.zone_by_name("app").unwrap());
        assert_eq!(app.trust, Trust::Medium, "default trust is medium");
        assert_eq!(p.groups().len(), 1);
        assert_eq!(p.groups()[0].services[0].to_string(), "tcp/5432");
        let s = &p.suppressions()[0];
        assert_eq!(s.kind.as_deref(), Some("unexpected-path"));
        assert_eq!((s.from.as_str(), s.to.as_str()), ("monitoring", "any"));
        assert_eq!(s.ticket.as_deref(), Some("SEC-142"));
        assert_eq!(s.until, Some((2027, 1, 1)));
        assert_eq!(s.line, 30);
        let q = crate::PathQuery::parse("198.51.100.1", "10.2.0.10", "tcp/22").unwrap();
        assert_eq!(
            p.evaluate(&q).decision,
            crate::Decision::Denied {
                severity: Severity::Critical
            }
        );
    }

    #[test]
    fn every_bad_cidr_is_reported_with_its_line() {
        let text = r#"[[zone]]
name = "app"
cidrs = ["10.1.0.0/16", "10.1.0.0/99"]

[[zone]]
name = "db"
cidrs = [
  "10.2.0.0/33",
  "not-a-net",
]
"#;
        assert_eq!(
            errors(text),
            [
                "zones.toml:3: zone \"app\": \"10.1.0.0/99\" is not a CIDR",
                "zones.toml:8: zone \"db\": \"10.2.0.0/33\" is not a CIDR",
                "zones.toml:9: zone \"db\": \"not-a-net\" is not a CIDR",
            ]
        );
        let Err(e) = Policy::parse(text, "zones.toml") else {
            panic!()
        };
        assert_eq!(e.to_string().lines().count(), 3);
        assert!(e.to_string().starts_with("zones.toml:3: zone \"app\""));
    }

    #[test]
    fn errors_of_every_kind_are_collected() {
        let text = r#"[[zone]]
name = "a"
cidrs = ["10.0.0.1/8"]
trust = "total"
exposure = "secret"
intra = "maybe"

[[zone]]
name = "internet"
cidrs = []

[[group]]
name = "a"
zone = "nowhere"
hosts = ["10.0.0.1"]
services = ["tcp/70000"]

[[deny]]
from = "a"
to = "any"
severity = "urgent"
services = []

[[suppress]]
kind = "bogus"
from = "a"
to = "a"
reason = ""
owner = "me"
until = "2027-02-30"
"#;
        let e = errors(text);
        let expect = [
            "zones.toml:3: zone \"a\": \"10.0.0.1/8\" has host bits set (the network is 10.0.0.0/8)",
            "zones.toml:4: zone \"a\": trust: unknown trust \"total\"",
            "zones.toml:5: zone \"a\": exposure: unknown exposure \"secret\"",
            "zones.toml:6: zone \"a\": intra: unknown value \"maybe\"",
            "zones.toml:9: zone \"internet\": name \"internet\" is reserved",
            "zones.toml:13: group \"a\": name is already used by the zone at zones.toml:2",
            "zones.toml:14: group \"a\": zone: no zone named \"nowhere\"",
            "zones.toml:16: group \"a\": services: \"tcp/70000\" is not a service",
            "zones.toml:21: deny: severity: unknown severity \"urgent\"",
            "zones.toml:22: deny: services is empty",
            "zones.toml:25: suppress: kind: unknown finding kind \"bogus\"",
            "zones.toml:28: suppress: reason is empty",
            "zones.toml:30: suppress: until: \"2027-02-30\" is not a date",
        ];
        assert_eq!(e.len(), expect.len(), "{e:#?}");
        for (got, want) in e.iter().zip(expect) {
            assert!(
                got.starts_with(want),
                "{got:?} does not start with {want:?}"
            );
        }
    }

    #[test]
    fn duplicate_prefix_names_both_places() {
        let text = r#"[[zone]]
name = "a"
cidrs = ["10.0.0.0/8"]

[[zone]]
name = "b"
cidrs = ["10.0.0.0/8", "10.5.0.0/16", "10.5.0.0/16"]
"#;
        assert_eq!(
            errors(text),
            [
                "zones.toml:7: zone \"b\": 10.0.0.0/8 is also declared by zone \"a\" at zones.toml:3",
                "zones.toml:7: zone \"b\": 10.5.0.0/16 is listed twice (also at zones.toml:7)",
            ]
        );
    }

    #[test]
    fn a_bad_zone_cidr_does_not_also_blame_its_groups() {
        let text = r#"[[zone]]
name = "db"
cidrs = ["10.2.0.0/33"]

[[group]]
name = "pg"
zone = "db"
hosts = ["10.2.0.10/32"]
"#;
        assert_eq!(
            errors(text),
            ["zones.toml:3: zone \"db\": \"10.2.0.0/33\" is not a CIDR"]
        );
    }

    #[test]
    fn group_hosts_must_be_unique_and_inside_their_zone() {
        let text = r#"[[zone]]
name = "db"
cidrs = ["10.2.0.0/16"]

[[zone]]
name = "web"
cidrs = ["10.3.0.0/16"]

[[group]]
name = "pg"
zone = "db"
hosts = ["10.2.0.10/32", "10.3.0.1/32"]

[[group]]
name = "mysql"
zone = "db"
hosts = ["10.2.0.10", "10.2.0.0/16"]
"#;
        assert_eq!(
            errors(text),
            [
                "zones.toml:12: group \"pg\": 10.3.0.1/32 is not inside zone \"db\"'s cidrs",
                "zones.toml:17: group \"mysql\": 10.2.0.10/32 is also declared by group \"pg\" at zones.toml:12",
            ]
        );
    }

    #[test]
    fn group_host_equal_to_its_zone_cidr_is_fine_and_wins() {
        let text = r#"[[zone]]
name = "db"
cidrs = ["10.2.0.0/24"]

[[group]]
name = "all-db"
zone = "db"
hosts = ["10.2.0.0/24"]
"#;
        let p = Policy::parse(text, "zones.toml").unwrap();
        let c = p.classify("10.2.0.7".parse().unwrap());
        assert_eq!(c.group.map(|g| p.group(g).name.as_str()), Some("all-db"));
    }

    #[test]
    fn unknown_field_is_reported_at_its_line() {
        let text = "[[zone]]\nname = \"a\"\ncidrs = []\n\n[[zone]]\nname = \"b\"\ncidrs = []\ncolour = \"red\"\n";
        let e = errors(text);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("zones.toml:8: unknown field `colour`"),
            "{e:?}"
        );
        let e = errors("[[zones]]\nname = \"a\"\n");
        assert!(
            e[0].starts_with("zones.toml:1: unknown field `zones`"),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_error_is_one_diagnostic_with_a_line() {
        let e = errors("[[zone]]\nname = \"a\ncidrs = []\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("zones.toml:2: "), "{e:?}");
        let e = errors("[[zone]]\nname = \"a\"\n");
        assert!(
            e[0].starts_with("zones.toml:1: missing field `cidrs`"),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_names_in_rules_are_load_errors() {
        let text = r#"[[zone]]
name = "app"
cidrs = ["10.1.0.0/16"]

[[allow]]
from = "app"
to = "postgres"

[[deny]]
from = "ap"
to = "internet"
"#;
        assert_eq!(
            errors(text),
            [
                "zones.toml:7: allow: to: no zone or group named \"postgres\"",
                "zones.toml:10: deny: from: no zone or group named \"ap\"",
            ]
        );
    }

    #[test]
    fn groups_cannot_live_in_implicit_zones() {
        let text = "[[group]]\nname = \"g\"\nzone = \"internet\"\nhosts = [\"8.8.8.8\"]\n";
        assert_eq!(
            errors(text),
            [
                "zones.toml:3: group \"g\": zone: \"internet\" is not a declared zone (a group must lie in one)"
            ]
        );
    }

    #[test]
    fn until_accepts_a_toml_date() {
        let text = r#"[[suppress]]
from = "any"
to = "any"
reason = "r"
owner = "o"
until = 2028-02-29
"#;
        let p = Policy::parse(text, "z.toml").unwrap();
        assert_eq!(p.suppressions()[0].until, Some((2028, 2, 29)));
        assert_eq!(p.suppressions()[0].kind, None);
    }

    #[test]
    fn load_reads_a_file_and_reports_io_errors() {
        let dir = std::env::temp_dir().join(format!("zonewatch-zones-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("zones.toml");
        std::fs::write(&path, "[[zone]]\nname = \"a\"\ncidrs = [\"10.0.0.0/33\"]\n").unwrap();
        let Err(Error::Invalid { diagnostics }) = Policy::load(&path) else {
            panic!("expected invalid")
        };
        assert_eq!(diagnostics[0].file, path.display().to_string());
        assert_eq!(diagnostics[0].line, 3);
        std::fs::write(&path, "[[zone]]\nname = \"a\"\ncidrs = [\"10.0.0.0/8\"]\n").unwrap();
        assert!(Policy::load(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
        let Err(e @ Error::Io { .. }) = Policy::load(&dir.join("missing.toml")) else {
            panic!("expected io error")
        };
        assert!(e.to_string().starts_with("cannot read zones file "));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn lines_from_offsets() {
        let l = super::Lines::new("a\nbc\n\nd");
        assert_eq!([0, 1, 2, 4, 5, 6].map(|o| l.line(o)), [1, 1, 2, 2, 3, 4]);
    }
}
