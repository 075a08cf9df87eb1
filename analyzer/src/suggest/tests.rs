//! `suggest` against a real store: the patch parses, allows what it
//! suggests and nothing it skipped, and its comments carry the store's counts.

use std::net::IpAddr;

use zonewatch_collector::time::Timestamp;
use zonewatch_zones::{Decision, PathQuery, Policy};

use super::{SuggestOptions, suggest};
use crate::store::{Batch, PathObservation, Reader, Store, Talker};

const ZONES: &str = r#"[[zone]]
name = "app"
cidrs = ["10.1.0.0/16"]

[[zone]]
name = "db"
cidrs = ["10.2.0.0/16"]
trust = "high"
exposure = "private"

[[zone]]
name = "dmz"
cidrs = ["203.0.113.0/24"]
trust = "low"

[[allow]]
from = "app"
to = "db"
services = ["tcp/5432", "tcp/3306"]

[[deny]]
from = "any"
to = "db"
services = ["tcp/23"]
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ts(secs: i64) -> Timestamp {
    Timestamp(secs * Timestamp::NANOS_PER_SEC)
}

#[allow(clippy::too_many_arguments)]
fn obs(
    from: &str,
    to: &str,
    proto: u8,
    dport: u16,
    decision: &str,
    secs: (i64, i64),
    flows: u64,
    talkers: &[(&str, &str, u64, u64)],
) -> PathObservation {
    PathObservation {
        src_zone: from.into(),
        dst_zone: to.into(),
        proto,
        dport,
        decision: decision.into(),
        rule: "default".into(),
        first: ts(secs.0),
        last: ts(secs.1),
        flows,
        packets: flows * 10,
        bytes: flows * 100,
        talkers: talkers
            .iter()
            .map(|&(s, d, flows, bytes)| Talker {
                src: ip(s),
                dst: ip(d),
                flows,
                bytes,
            })
            .collect(),
    }
}

/// The paths observed, over two batches.
fn store_with_paths(path: &std::path::Path) {
    let mut store = Store::open(path).expect("open");
    let na = "not-allowed";
    store
        .commit(&Batch {
            paths: vec![
                obs(
                    "app",
                    "db",
                    6,
                    22,
                    na,
                    (100, 200),
                    2,
                    &[("10.1.0.5", "10.2.0.10", 2, 200)],
                ),
                obs(
                    "app",
                    "db",
                    17,
                    53,
                    na,
                    (50, 60),
                    1,
                    &[("10.1.0.7", "10.2.0.53", 1, 100)],
                ),
                // Echo requests with two codes: one icmp/8 service.
                obs(
                    "app",
                    "db",
                    1,
                    0x0800,
                    na,
                    (10, 20),
                    1,
                    &[("10.1.0.5", "10.2.0.10", 1, 100)],
                ),
                obs(
                    "app",
                    "db",
                    1,
                    0x0801,
                    na,
                    (30, 40),
                    1,
                    &[("10.1.0.6", "10.2.0.10", 1, 100)],
                ),
                obs(
                    "app",
                    "internet",
                    6,
                    443,
                    na,
                    (5, 6),
                    3,
                    &[("10.1.0.5", "198.51.100.80", 3, 300)],
                ),
                obs(
                    "internet",
                    "dmz",
                    6,
                    80,
                    na,
                    (7, 8),
                    4,
                    &[("198.51.100.7", "203.0.113.10", 4, 400)],
                ),
                // Skipped: into a private zone from the internet.
                obs(
                    "internet",
                    "db",
                    6,
                    5432,
                    na,
                    (1, 2),
                    6,
                    &[("198.51.100.7", "10.2.0.10", 6, 600)],
                ),
                // Skipped: allowed by the policy now (it was not when observed).
                obs(
                    "app",
                    "db",
                    6,
                    3306,
                    na,
                    (1, 2),
                    1,
                    &[("10.1.0.5", "10.2.0.10", 1, 100)],
                ),
                // Not candidates: allowed, denied, undeclared, inside one zone.
                obs(
                    "app",
                    "db",
                    6,
                    5432,
                    "allowed",
                    (1, 2),
                    9,
                    &[("10.1.0.5", "10.2.0.10", 9, 900)],
                ),
                obs(
                    "app",
                    "db",
                    6,
                    23,
                    "denied",
                    (1, 2),
                    1,
                    &[("10.1.0.5", "10.2.0.10", 1, 100)],
                ),
                obs(
                    "undeclared",
                    "app",
                    6,
                    80,
                    na,
                    (1, 2),
                    1,
                    &[("172.16.0.1", "10.1.0.5", 1, 100)],
                ),
                obs(
                    "app",
                    "app",
                    6,
                    80,
                    "intra",
                    (1, 2),
                    1,
                    &[("10.1.0.5", "10.1.0.6", 1, 100)],
                ),
            ],
            ..Batch::default()
        })
        .expect("first batch");
    // More on app -> db tcp/22: counters add, more talkers than listed.
    store
        .commit(&Batch {
            paths: vec![obs(
                "app",
                "db",
                6,
                22,
                na,
                (300, 400),
                4,
                &[
                    ("10.1.0.5", "10.2.0.10", 1, 50),
                    ("10.1.0.6", "10.2.0.10", 1, 400),
                    ("10.1.0.7", "10.2.0.11", 1, 30),
                    ("10.1.0.8", "10.2.0.11", 1, 10),
                ],
            )],
            ..Batch::default()
        })
        .expect("second batch");
}

fn decision(policy: &Policy, src: &str, dst: &str, proto: u8, dport: u16) -> Decision {
    policy
        .evaluate(&PathQuery {
            src: ip(src),
            dst: ip(dst),
            proto,
            dport,
        })
        .decision
}

#[test]
fn the_patch_parses_and_allows_what_it_suggests_only() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("zonewatch.db");
    store_with_paths(&db);
    let policy = Policy::parse(ZONES, "zones.toml").expect("policy");
    let reader = Reader::open(&db).expect("reader");
    let patch = suggest(&reader, &policy, &SuggestOptions::default()).expect("suggest");

    // The same store and policy give the same text.
    assert_eq!(
        patch,
        suggest(&reader, &policy, &SuggestOptions::default()).expect("again")
    );

    let patched = Policy::parse(&format!("{ZONES}\n{patch}"), "zones.toml")
        .unwrap_or_else(|e| panic!("patched zones file does not parse: {e}\n{patch}"));
    // Every suggested path is now allowed...
    for (src, dst, proto, dport) in [
        ("10.1.0.5", "10.2.0.10", 6, 22),
        ("10.1.0.8", "10.2.0.11", 6, 22),
        ("10.1.0.7", "10.2.0.53", 17, 53),
        ("10.1.0.5", "10.2.0.10", 1, 0x0800),
        ("10.1.0.6", "10.2.0.10", 1, 0x0801),
        ("10.1.0.5", "198.51.100.80", 6, 443),
        ("198.51.100.7", "203.0.113.10", 6, 80),
    ] {
        assert_eq!(
            decision(&policy, src, dst, proto, dport),
            Decision::NotAllowed,
            "{src} -> {dst} {proto}/{dport} before"
        );
        assert_eq!(
            decision(&patched, src, dst, proto, dport),
            Decision::Allowed,
            "{src} -> {dst} {proto}/{dport}\n{patch}"
        );
    }
    // ...and the skipped ones are not.
    assert_eq!(
        decision(&patched, "198.51.100.7", "10.2.0.10", 6, 5432),
        Decision::NotAllowed
    );
    assert_eq!(
        decision(&patched, "172.16.0.1", "10.1.0.5", 6, 80),
        Decision::NotAllowed
    );
    assert!(matches!(
        decision(&patched, "10.1.0.5", "10.2.0.10", 6, 23),
        Decision::Denied { .. }
    ));
    assert_eq!(
        decision(&patched, "10.1.0.5", "10.2.0.10", 6, 8080),
        Decision::NotAllowed,
        "nothing broader than what was seen"
    );
}

#[test]
fn the_patch_has_one_block_per_zone_pair_with_the_store_counts() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("zonewatch.db");
    store_with_paths(&db);
    let policy = Policy::parse(ZONES, "zones.toml").expect("policy");
    let reader = Reader::open(&db).expect("reader");
    let patch = suggest(&reader, &policy, &SuggestOptions::default()).expect("suggest");
    let lines: Vec<&str> = patch.lines().collect();

    // Header: what it is, the database, that a human must review.
    assert_eq!(lines[0], "# zonewatch zones suggest");
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("# Database: {}", db.display())),
        "{patch}"
    );
    assert!(patch.contains("A human must review every rule"), "{patch}");
    assert!(
        patch.contains("# 9 observed not-allowed path(s) between zones; 5 service(s) in 3 rule(s) suggested; 3 skipped (listed at the end)."),
        "{patch}"
    );

    // Blocks in zone-pair order, services in protocol/port order.
    let blocks: Vec<(&str, &str, &str)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == "[[allow]]")
        .map(|(i, _)| (lines[i + 1], lines[i + 2], lines[i + 3]))
        .collect();
    assert_eq!(
        blocks,
        vec![
            (
                "from = \"app\"",
                "to = \"db\"",
                "services = [\"icmp/8\", \"tcp/22\", \"udp/53\"]"
            ),
            (
                "from = \"app\"",
                "to = \"internet\"",
                "services = [\"tcp/443\"]"
            ),
            (
                "from = \"internet\"",
                "to = \"dmz\"",
                "services = [\"tcp/80\"]"
            ),
        ]
    );

    // Comments with the store's counts: both batches added, ICMP codes merged.
    let block = |from: &str| {
        let start = patch.find(&format!("# {from}\n")).expect("block comment");
        let end = patch[start..].find("[[allow]]").expect("block") + start;
        patch[start..end].to_string()
    };
    assert_eq!(
        block("app -> db"),
        format!(
            "# app -> db\n\
             # icmp/8: first seen {}, last seen {}, 2 flows, 20 packets, 200 bytes\n\
             #   10.1.0.5 -> 10.2.0.10: 1 flows, 100 bytes\n\
             #   10.1.0.6 -> 10.2.0.10: 1 flows, 100 bytes\n\
             # tcp/22: first seen {}, last seen {}, 6 flows, 60 packets, 600 bytes\n\
             #   10.1.0.6 -> 10.2.0.10: 1 flows, 400 bytes\n\
             #   10.1.0.5 -> 10.2.0.10: 3 flows, 250 bytes\n\
             #   10.1.0.7 -> 10.2.0.11: 1 flows, 30 bytes\n\
             #   ... 1 more talker(s)\n\
             # udp/53: first seen {}, last seen {}, 1 flows, 10 packets, 100 bytes\n\
             #   10.1.0.7 -> 10.2.0.53: 1 flows, 100 bytes\n",
            ts(10),
            ts(40),
            ts(100),
            ts(400),
            ts(50),
            ts(60)
        )
    );
    assert!(ts(10).to_string().ends_with('Z'), "RFC 3339");

    // Skipped paths, each with why.
    let skipped = &patch[patch.find("# Skipped (not suggested):").expect("skipped")..];
    assert!(
        skipped.contains("# - internet -> db tcp/5432 (6 flows): db has exposure \"private\": allowing the internet in would expose it"),
        "{skipped}"
    );
    assert!(
        skipped.contains("# - app -> db tcp/3306 (1 flows): the current policy allows it (allow app -> db tcp/3306 (zones.toml:"),
        "{skipped}"
    );
    assert!(
        skipped.contains(
            "# - undeclared -> app tcp/80 (1 flows): the implicit zone undeclared is not suggested"
        ),
        "{skipped}"
    );
    assert!(!patch.contains("tcp/23"), "denied paths are no candidates");
}

#[test]
fn options_change_what_is_suggested() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("zonewatch.db");
    store_with_paths(&db);
    let policy = Policy::parse(ZONES, "zones.toml").expect("policy");
    let reader = Reader::open(&db).expect("reader");

    let opts = SuggestOptions {
        min_flows: 3,
        max_talkers: 1,
        include_sensitive: true,
    };
    let patch = suggest(&reader, &policy, &opts).expect("suggest");
    let patched = Policy::parse(&format!("{ZONES}\n{patch}"), "zones.toml").expect("parses");
    // Sensitive path included on request.
    assert_eq!(
        decision(&patched, "198.51.100.7", "10.2.0.10", 6, 5432),
        Decision::Allowed
    );
    // Below min_flows: listed as skipped, not allowed.
    assert!(
        patch.contains("# - app -> db udp/53 (1 flows): fewer flows than min_flows (3)"),
        "{patch}"
    );
    assert_eq!(
        decision(&patched, "10.1.0.7", "10.2.0.53", 17, 53),
        Decision::NotAllowed
    );
    assert!(patch.contains("#   ... 3 more talker(s)"), "{patch}");

    // An empty store suggests nothing, and says so.
    let empty_db = dir.path().join("empty.db");
    drop(Store::open(&empty_db).expect("empty"));
    let empty = suggest(
        &Reader::open(&empty_db).expect("reader"),
        &policy,
        &SuggestOptions::default(),
    )
    .expect("suggest");
    assert!(empty.contains("# Nothing to suggest."), "{empty}");
    assert!(!empty.contains("[[allow]]"));
    Policy::parse(&format!("{ZONES}\n{empty}"), "zones.toml").expect("still parses");
}

#[test]
fn paths_that_cannot_be_checked_or_moved_zones_are_handled() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("zonewatch.db");
    let na = "not-allowed";
    Store::open(&db)
        .expect("open")
        .commit(&Batch {
            paths: vec![
                // No talkers recorded: suggested, with a note.
                obs("app", "db", 6, 8080, na, (1, 2), 2, &[]),
                // Its responder is no longer in dmz.
                obs(
                    "app",
                    "dmz",
                    6,
                    25,
                    na,
                    (1, 2),
                    1,
                    &[("10.1.0.5", "198.51.100.1", 1, 100)],
                ),
                // A zone that the policy no longer declares.
                obs(
                    "legacy",
                    "db",
                    6,
                    22,
                    na,
                    (1, 2),
                    1,
                    &[("192.0.2.1", "10.2.0.10", 1, 100)],
                ),
            ],
            ..Batch::default()
        })
        .expect("commit");
    let policy = Policy::parse(ZONES, "zones.toml").expect("policy");
    let patch = suggest(
        &Reader::open(&db).expect("reader"),
        &policy,
        &SuggestOptions::default(),
    )
    .expect("suggest");
    assert!(patch.contains("services = [\"tcp/8080\"]"), "{patch}");
    assert!(
        patch.contains(
            "#   (no talkers recorded for part of it: not re-checked against the current policy)"
        ),
        "{patch}"
    );
    assert!(
        patch.contains("# - app -> dmz tcp/25 (1 flows): its talkers are now in other zones (10.1.0.5 -> 198.51.100.1 is app -> internet)"),
        "{patch}"
    );
    assert!(
        patch.contains(
            "# - legacy -> db tcp/22 (1 flows): a zone of this path is not in the current policy"
        ),
        "{patch}"
    );
    let patched = Policy::parse(&format!("{ZONES}\n{patch}"), "zones.toml").expect("parses");
    assert_eq!(
        decision(&patched, "10.1.0.5", "198.51.100.1", 6, 25),
        Decision::NotAllowed
    );
}
