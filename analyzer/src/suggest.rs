//! `zones suggest`: turns observed paths that the policy does not allow
//! into a reviewable patch of `[[allow]]` rules for the zones file.
//!
//! [`suggest`] reads the paths of a [`Reader`] and keeps those between two
//! different declared zones (or a declared zone and `internet`) whose
//! decision was `not-allowed` (denied paths stay denied). Each candidate is
//! checked again against the *current* [`Policy`] through its recorded
//! talkers: a path the policy allows now, denies now, or whose addresses
//! now belong to other zones is not suggested. Paths from the internet to a
//! zone with `exposure = "private"` or trust `high` are not suggested by
//! default ([`SuggestOptions::include_sensitive`]): they are findings to
//! fix, not rules to add. Every skipped path is listed in a comment with
//! the reason.
//!
//! The patch is TOML text: a header comment, then one `[[allow]]` block
//! per (from, to) zone pair, each service preceded by comments with what
//! the store observed (first and last seen, flows, packets, bytes, top
//! talkers). The output is deterministic: zone pairs by name, services by
//! protocol and port. A human must review it before it is appended to the
//! zones file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use zonewatch_collector::packet::ip_proto;
use zonewatch_collector::time::Timestamp;
use zonewatch_zones::{Decision, Exposure, PathQuery, Policy};

use crate::service_name;
use crate::store::{Reader, StoreError, StoredPath};

/// What [`suggest`] proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestOptions {
    /// Services observed with fewer flows are not suggested (default 1).
    pub min_flows: u64,
    /// Talkers listed per service (default 3).
    pub max_talkers: usize,
    /// Also suggest paths from the internet to a zone with
    /// `exposure = "private"` or trust `high` (default false).
    pub include_sensitive: bool,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        SuggestOptions {
            min_flows: 1,
            max_talkers: 3,
            include_sensitive: false,
        }
    }
}

/// One service of a suggested rule: observed paths merged (ICMP codes of
/// one type share a service).
#[derive(Default)]
struct Observed {
    text: String,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    flows: u64,
    packets: u64,
    bytes: u64,
    /// (src, dst) -> (flows, bytes)
    talkers: BTreeMap<(IpAddr, IpAddr), (u64, u64)>,
    /// Some observed path had no talkers, so it could not be re-checked.
    unchecked: bool,
}

/// Sort key of a service: protocol, then port (TCP/UDP) or ICMP type.
fn service_key(proto: u8, dport: u16) -> (u8, u16) {
    match proto {
        ip_proto::TCP | ip_proto::UDP => (proto, dport),
        ip_proto::ICMP | ip_proto::ICMPV6 => (proto, dport >> 8),
        _ => (proto, 0),
    }
}

/// Comment text: one line, no control characters.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path_text(p: &StoredPath) -> String {
    format!(
        "{} -> {} {}",
        p.src_zone,
        p.dst_zone,
        service_name(p.proto, p.dport)
    )
}

/// Why a candidate path is not suggested, or the talkers still not allowed.
enum Check {
    Suggest(Vec<(IpAddr, IpAddr, u64, u64)>),
    Skip(String),
}

fn check(policy: &Policy, p: &StoredPath, opts: &SuggestOptions) -> Check {
    for zone in [&p.src_zone, &p.dst_zone] {
        if zone == "local" || zone == "undeclared" {
            return Check::Skip(format!(
                "the implicit zone {zone} is not suggested: declare those addresses in a zone first"
            ));
        }
    }
    let (Some(src), Some(dst)) = (
        policy.zone_by_name(&p.src_zone),
        policy.zone_by_name(&p.dst_zone),
    ) else {
        return Check::Skip("a zone of this path is not in the current policy".to_string());
    };
    let mut still = Vec::new();
    let mut first_other: Option<String> = None;
    for t in &p.talkers {
        let v = policy.evaluate(&PathQuery {
            src: t.src,
            dst: t.dst,
            proto: p.proto,
            dport: p.dport,
        });
        let same_zones = v.src.zone == src && v.dst.zone == dst;
        if same_zones && v.decision == Decision::NotAllowed {
            still.push((t.src, t.dst, t.flows, t.bytes));
        } else if first_other.is_none() {
            first_other = Some(match v.decision {
                _ if !same_zones => format!(
                    "its talkers are now in other zones ({} -> {} is {} -> {})",
                    t.src,
                    t.dst,
                    policy.zone(v.src.zone).name,
                    policy.zone(v.dst.zone).name
                ),
                Decision::Allowed | Decision::Intra => {
                    format!("the current policy allows it ({})", v.rule)
                }
                Decision::Denied { .. } => format!("the current policy denies it ({})", v.rule),
                Decision::Local | Decision::NotAllowed => {
                    format!(
                        "the current policy decides {} ({})",
                        v.decision.as_str(),
                        v.rule
                    )
                }
            });
        }
    }
    if still.is_empty()
        && let Some(why) = first_other
    {
        return Check::Skip(why);
    }
    let zone = policy.zone(dst);
    if src == policy.internet()
        && crate::analyze::is_sensitive(policy, dst)
        && !opts.include_sensitive
    {
        let why = if zone.exposure == Exposure::Private {
            "exposure \"private\""
        } else {
            "trust \"high\""
        };
        return Check::Skip(format!(
            "{} has {why}: allowing the internet in would expose it; fix the exposure instead",
            zone.name
        ));
    }
    Check::Suggest(still)
}

/// Builds the TOML patch of `[[allow]]` rules for the observed not-allowed
/// paths of the store that `policy` still does not allow (see the module docs).
pub fn suggest(
    reader: &Reader,
    policy: &Policy,
    opts: &SuggestOptions,
) -> Result<String, StoreError> {
    let paths = reader.paths()?;
    let mut rules: BTreeMap<(String, String), BTreeMap<(u8, u16), Observed>> = BTreeMap::new();
    let mut skipped: Vec<(String, u64, String)> = Vec::new();
    let mut candidates = 0usize;
    for p in &paths {
        if p.decision != Decision::NotAllowed.as_str() || p.src_zone == p.dst_zone {
            continue;
        }
        candidates += 1;
        let talkers = match check(policy, p, opts) {
            Check::Skip(why) => {
                skipped.push((path_text(p), p.flows, why));
                continue;
            }
            Check::Suggest(talkers) => talkers,
        };
        let o = rules
            .entry((p.src_zone.clone(), p.dst_zone.clone()))
            .or_default()
            .entry(service_key(p.proto, p.dport))
            .or_default();
        o.text = service_name(p.proto, p.dport);
        o.first = Some(o.first.map_or(p.first, |f| f.min(p.first)));
        o.last = Some(o.last.map_or(p.last, |l| l.max(p.last)));
        o.flows += p.flows;
        o.packets += p.packets;
        o.bytes += p.bytes;
        o.unchecked |= p.talkers.is_empty();
        for (src, dst, flows, bytes) in talkers {
            let t = o.talkers.entry((src, dst)).or_default();
            t.0 += flows;
            t.1 += bytes;
        }
    }
    // Services seen too little.
    for ((from, to), services) in rules.iter_mut() {
        services.retain(|_, o| {
            let keep = o.flows >= opts.min_flows;
            if !keep {
                skipped.push((
                    format!("{from} -> {to} {}", o.text),
                    o.flows,
                    format!("fewer flows than min_flows ({})", opts.min_flows),
                ));
            }
            keep
        });
    }
    rules.retain(|_, services| !services.is_empty());
    skipped.sort();
    let suggested: usize = rules.values().map(BTreeMap::len).sum();

    let mut out = String::new();
    let _ = writeln!(out, "# zonewatch zones suggest");
    let _ = writeln!(
        out,
        "# Allow rules for paths that were observed but that the zones file does not allow."
    );
    let _ = writeln!(
        out,
        "# Database: {}",
        comment(&reader.path().display().to_string())
    );
    let _ = writeln!(out, "# Zones file: {}", comment(policy.file_name()));
    let _ = writeln!(
        out,
        "# Made from observed traffic only: seen is not wanted. A human must review every rule"
    );
    let _ = writeln!(
        out,
        "# (and drop what must stay forbidden) before appending this to the zones file."
    );
    let _ = writeln!(
        out,
        "# {candidates} observed not-allowed path(s) between zones; {suggested} service(s) in {} rule(s) suggested; {} skipped{}.",
        rules.len(),
        skipped.len(),
        if skipped.is_empty() {
            ""
        } else {
            " (listed at the end)"
        }
    );
    if rules.is_empty() {
        let _ = writeln!(out, "#\n# Nothing to suggest.");
    }
    for ((from, to), services) in &rules {
        let _ = writeln!(out);
        let _ = writeln!(out, "# {} -> {}", comment(from), comment(to));
        for o in services.values() {
            let (first, last) = (o.first.unwrap_or_default(), o.last.unwrap_or_default());
            let _ = writeln!(
                out,
                "# {}: first seen {first}, last seen {last}, {} flows, {} packets, {} bytes",
                o.text, o.flows, o.packets, o.bytes
            );
            let mut top: Vec<_> = o
                .talkers
                .iter()
                .map(|(&(src, dst), &(flows, bytes))| (src, dst, flows, bytes))
                .collect();
            // Most bytes first, then most flows, then by address.
            top.sort_by(|a, b| {
                b.3.cmp(&a.3)
                    .then(b.2.cmp(&a.2))
                    .then((a.0, a.1).cmp(&(b.0, b.1)))
            });
            for (src, dst, flows, bytes) in top.into_iter().take(opts.max_talkers) {
                let _ = writeln!(out, "#   {src} -> {dst}: {flows} flows, {bytes} bytes");
            }
            if o.talkers.len() > opts.max_talkers {
                let _ = writeln!(
                    out,
                    "#   ... {} more talker(s)",
                    o.talkers.len() - opts.max_talkers
                );
            }
            if o.unchecked {
                let _ = writeln!(
                    out,
                    "#   (no talkers recorded for part of it: not re-checked against the current policy)"
                );
            }
        }
        let list: Vec<String> = services.values().map(|o| toml_string(&o.text)).collect();
        let _ = writeln!(out, "[[allow]]");
        let _ = writeln!(out, "from = {}", toml_string(from));
        let _ = writeln!(out, "to = {}", toml_string(to));
        let _ = writeln!(out, "services = [{}]", list.join(", "));
    }
    if !skipped.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "# Skipped (not suggested):");
        for (what, flows, why) in &skipped {
            let _ = writeln!(
                out,
                "# - {} ({flows} flows): {}",
                comment(what),
                comment(why)
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
