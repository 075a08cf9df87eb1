//! Store tests on real SQLite files in temporary folders.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use zonewatch_collector::record::TcpFlags;
use zonewatch_collector::time::Timestamp;
use zonewatch_collector::{FlowRecord, FlowState, OrientedBy, Proto};
use zonewatch_zones::{Policy, Severity};

use super::*;
use crate::{Analyzer, AnalyzerConfig, Confidence, Finding, FindingKind};

const SEC: i64 = Timestamp::NANOS_PER_SEC;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ts(secs: i64) -> Timestamp {
    Timestamp(secs * SEC)
}

fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("zonewatch.db");
    (dir, path)
}

/// A TCP flow; `state` decides the reverse counters.
fn flow(src: &str, dst: &str, dport: u16, secs: i64, bytes: u64, state: FlowState) -> FlowRecord {
    let back = state == FlowState::Established;
    FlowRecord {
        id: 1,
        first: ts(secs),
        last: Timestamp(ts(secs).0 + 1_500_000),
        proto: Proto(6),
        src: ip(src),
        sport: 40000 + u16::try_from(secs % 20000).unwrap_or(0),
        dst: ip(dst),
        dport,
        packets: 3,
        bytes,
        rpackets: if back { 2 } else { 0 },
        rbytes: if back { 100 } else { 0 },
        answered: state.answered(),
        state,
        tcp_flags: TcpFlags(0x02),
        rtcp_flags: TcpFlags(if back { 0x12 } else { 0 }),
        oriented_by: OrientedBy::Handshake,
        vlan: vec![],
        source: Arc::from("capture.pcap"),
        sampling: 1,
        export: None,
    }
}

fn finding(id: &str, kind: FindingKind, severity: Severity) -> Finding {
    Finding {
        id: id.to_string(),
        kind,
        severity,
        src_zone: "internet".into(),
        dst_zone: "db".into(),
        dst: None,
        proto: None,
        dport: None,
        service: None,
        initiators: vec![],
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
        rule: "default: no allow from internet to db".into(),
        suppressed: None,
        expired_suppression: None,
        evidence: vec![],
    }
}

/// A delta made of flows, as an analyzer would send it.
fn delta(mut f: Finding, flows: &[FlowRecord]) -> FindingDelta {
    let mut d = FindingDelta {
        finding: f.clone(),
        initiators: vec![],
        hosts: vec![],
        services: vec![],
    };
    for fl in flows {
        f.flows += 1;
        f.packets += fl.packets + fl.rpackets;
        f.bytes += fl.bytes + fl.rbytes;
        f.answered += u64::from(fl.state == FlowState::Established);
        f.first = f.first.min(fl.first);
        f.last = f.last.max(fl.last);
        f.evidence.push(fl.clone());
        d.initiators.push((fl.src, fl.bytes + fl.rbytes));
        d.hosts.push(fl.dst);
        d.services.push((fl.proto.0, fl.dport));
    }
    d.finding = f;
    d
}

fn agg(bucket: i64, src_zone: &str, decision: &str, flows: u64) -> Aggregate {
    Aggregate {
        bucket: ts(bucket),
        bucket_secs: 60,
        source: "eth1".into(),
        src_zone: src_zone.into(),
        dst_zone: "db".into(),
        proto: 6,
        dport: 5432,
        decision: decision.into(),
        flows,
        packets: flows * 10,
        bytes: flows * 1000,
        answered: flows / 2,
    }
}

fn file_row(sha: &str, name: &str) -> FileRow {
    FileRow {
        sha256: sha.into(),
        path: name.into(),
        size: 1024,
        ingested_at: ts(1000),
        packets: 10,
        flows: 2,
        errors: 0,
    }
}

fn count(path: &Path, table: &str) -> i64 {
    let conn = Connection::open(path).expect("open");
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[test]
fn fresh_store_has_the_latest_schema_and_pragmas() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).expect("open");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    const { assert!(SCHEMA_VERSION >= 2) };
    let mode: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
    let sync: i64 = store
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .expect("synchronous");
    assert_eq!(sync, 1, "NORMAL");
    let fk: i64 = store
        .conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .expect("foreign keys");
    assert_eq!(fk, 1);
}

#[test]
fn two_batches_add_counters_and_merge_member_sets() {
    let (_dir, path) = temp_db();
    let limits = StoreLimits {
        max_evidence: 3,
        ..StoreLimits::default()
    };
    let mut store = Store::open_with(&path, limits).expect("open");
    let est = FlowState::Established;
    let f1 = flow("198.51.100.7", "10.2.0.10", 5432, 100, 500, est);
    let f2 = flow("198.51.100.8", "10.2.0.10", 5432, 50, 300, est);
    let exposure = finding(
        "f-000000000001",
        FindingKind::PublicExposure,
        Severity::High,
    );
    let first = Batch {
        aggregates: vec![
            agg(0, "internet", "not-allowed", 2),
            agg(60, "app", "allowed", 5),
        ],
        findings: vec![delta(exposure.clone(), &[f1.clone(), f2.clone()])],
        ..Batch::default()
    };
    let out = store.commit(&first).expect("first commit");
    assert_eq!(out.new_findings, vec!["f-000000000001".to_string()]);

    // Second batch: the same initiator again (counts once), a third one,
    // more evidence than the cap, a higher severity and confidence.
    let f3 = flow("198.51.100.7", "10.2.0.10", 5432, 200, 700, est);
    let f4 = flow("198.51.100.9", "10.2.0.10", 5432, 300, 100, est);
    let mut worse = exposure.clone();
    worse.severity = Severity::Critical;
    worse.confidence = Confidence::High;
    let second = Batch {
        aggregates: vec![agg(0, "internet", "not-allowed", 3)],
        findings: vec![delta(worse, &[f3.clone(), f4.clone()])],
        ..Batch::default()
    };
    let out = store.commit(&second).expect("second commit");
    assert!(out.new_findings.is_empty(), "not new the second time");

    let reader = Reader::open(&path).expect("reader");
    let aggs = reader.aggregates(ts(0), ts(3600)).expect("aggregates");
    assert_eq!(aggs.len(), 2, "same key adds to one row: {aggs:?}");
    assert_eq!(aggs[0].flows, 5);
    assert_eq!(aggs[0].packets, 50);
    assert_eq!(aggs[0].bytes, 5000);
    assert_eq!(aggs[0].answered, 1 + 1);
    assert_eq!(aggs[1].flows, 5);
    let totals = reader.totals().expect("totals");
    assert_eq!(
        totals,
        Totals {
            flows: 10,
            packets: 100,
            bytes: 10_000,
            answered: 1 + 1 + 2
        }
    );

    let found = reader.findings().expect("findings");
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!(f.flows, 4);
    assert_eq!(f.packets, 4 * 5);
    assert_eq!(f.bytes, 500 + 300 + 700 + 100 + 4 * 100);
    assert_eq!(f.answered, 4);
    assert_eq!(f.initiator_count, 3, "198.51.100.7 twice counts once");
    assert_eq!(f.hosts, 1);
    assert_eq!(f.ports, 1);
    assert_eq!(f.dst, Some(ip("10.2.0.10")));
    assert_eq!(f.service.as_deref(), Some("tcp/5432"));
    assert_eq!(f.proto.as_deref(), Some("tcp"));
    assert_eq!(f.dport, Some(5432));
    // Initiators by bytes: .7 has 500+100+700+100.
    assert_eq!(
        f.initiators,
        vec![ip("198.51.100.7"), ip("198.51.100.8"), ip("198.51.100.9")]
    );
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.confidence, Confidence::High);
    assert_eq!(f.first, f2.first);
    assert_eq!(f.last, f4.last);
    assert_eq!(f.evidence.len(), 3, "capped at max_evidence");
    // Oldest first: f2 (50 s), f1 (100 s), f3 (200 s); f4 came after the cap.
    let firsts: Vec<&str> = f
        .evidence
        .iter()
        .map(|e| e["first"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        firsts,
        vec![
            f2.first.to_string(),
            f1.first.to_string(),
            f3.first.to_string()
        ]
    );
    assert_eq!(f.evidence[0]["src"], "198.51.100.8");
    assert_eq!(f.evidence[0]["community_id"], f2.community_id());
    assert!(!f.members_capped);
}

#[test]
fn a_scan_counts_hosts_and_ports_and_has_no_single_target() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let un = FlowState::Unanswered;
    let mut scan = finding("f-00000000000a", FindingKind::BlockedAttempt, Severity::Low);
    scan.src_zone = "app".into();
    let b1 = Batch {
        findings: vec![delta(
            scan.clone(),
            &[
                flow("10.1.0.5", "10.2.0.10", 22, 1, 60, un),
                flow("10.1.0.5", "10.2.0.11", 23, 2, 60, un),
            ],
        )],
        ..Batch::default()
    };
    let b2 = Batch {
        findings: vec![delta(
            scan,
            &[
                flow("10.1.0.5", "10.2.0.10", 22, 3, 60, un),
                flow("10.1.0.5", "10.2.0.12", 22, 4, 60, un),
            ],
        )],
        ..Batch::default()
    };
    store.commit(&b1).expect("b1");
    store.commit(&b2).expect("b2");
    let f = &Reader::open(&path)
        .expect("reader")
        .findings()
        .expect("findings")[0];
    assert_eq!((f.initiator_count, f.hosts, f.ports), (1, 3, 2));
    assert_eq!((f.dst, f.service.as_deref(), f.dport), (None, None, None));
    assert_eq!(f.answered, 0);
    assert_eq!(f.initiators, vec![ip("10.1.0.5")]);
}

#[test]
fn member_sets_stop_at_their_cap_and_say_so() {
    let (_dir, path) = temp_db();
    let limits = StoreLimits {
        max_members: 2,
        ..StoreLimits::default()
    };
    let mut store = Store::open_with(&path, limits).expect("open");
    let est = FlowState::Established;
    let flows: Vec<FlowRecord> = (1..=4)
        .map(|i| flow(&format!("198.51.100.{i}"), "10.2.0.10", 5432, i, 10, est))
        .collect();
    let f = finding(
        "f-00000000000b",
        FindingKind::PublicExposure,
        Severity::Critical,
    );
    store
        .commit(&Batch {
            findings: vec![delta(f.clone(), &flows[..1])],
            ..Batch::default()
        })
        .expect("first");
    store
        .commit(&Batch {
            findings: vec![delta(f, &flows)],
            ..Batch::default()
        })
        .expect("second");
    let got = &Reader::open(&path)
        .expect("reader")
        .findings()
        .expect("findings")[0];
    assert_eq!(got.initiator_count, 2);
    assert!(got.members_capped);
    assert_eq!(got.flows, 5, "counters stay exact");
    assert_eq!(count(&path, "finding_members WHERE role = 'initiator'"), 2);
    // The first initiator's bytes kept growing although the set is full.
    assert_eq!(got.initiators[0], ip("198.51.100.1"));
}

/// The store, fed one single-flow finding per flow across batches,
/// reads back exactly what one analyzer run over all flows reports.
#[test]
fn stored_findings_serialize_as_the_analyzer_findings() {
    let policy = Policy::parse(
        r#"
[[zone]]
name = "app"
cidrs = ["10.1.0.0/16"]

[[zone]]
name = "db"
cidrs = ["10.2.0.0/16"]
trust = "high"
exposure = "private"

[[allow]]
from = "app"
to = "db"
services = ["tcp/5432"]

[[suppress]]
kind = "unexpected-path"
from = "app"
to = "internet"
reason = "updates"
owner = "netops"
ticket = "SEC-1"
"#,
        "zones.toml",
    )
    .expect("policy");
    let est = FlowState::Established;
    let un = FlowState::Unanswered;
    let mut flows = vec![
        flow("198.51.100.7", "10.2.0.10", 5432, 10, 400, est),
        flow("198.51.100.8", "10.2.0.10", 5432, 11, 900, est),
        flow("10.1.0.5", "10.2.0.10", 22, 12, 60, un),
        flow("10.1.0.5", "10.2.0.11", 23, 13, 60, un),
        flow("10.1.0.5", "10.2.0.10", 22, 14, 60, un),
        flow("172.16.0.1", "10.1.0.5", 80, 15, 70, est),
        flow("10.1.0.6", "203.0.113.5", 443, 16, 80, est),
    ];
    for i in 0..6 {
        flows.push(flow("198.51.100.7", "10.2.0.10", 5432, 20 - i, 100, est));
    }
    let config = AnalyzerConfig {
        today: (2025, 1, 1),
        ..AnalyzerConfig::default()
    };
    let policy = std::sync::Arc::new(policy);
    let mut whole = Analyzer::new(policy.clone(), config.clone());
    for f in &flows {
        whole.observe(f);
    }
    let report = whole.finish();
    let expected: BTreeMap<String, serde_json::Value> = report
        .findings
        .iter()
        .chain(&report.suppressed)
        .map(|f| (f.id.clone(), serde_json::to_value(f).expect("json")))
        .collect();
    assert!(expected.len() >= 5, "{expected:?}");

    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let mut new_ids = Vec::new();
    // As the monitor does: one analyzer hands over its increments per batch.
    let mut inc = Analyzer::new(policy.clone(), config.clone());
    for chunk in flows.chunks(4) {
        for fl in chunk {
            inc.observe(fl);
        }
        let batch = Batch {
            findings: inc.take_deltas(),
            ..Batch::default()
        };
        new_ids.extend(store.commit(&batch).expect("commit").new_findings);
    }
    new_ids.sort();
    assert_eq!(new_ids, expected.keys().cloned().collect::<Vec<_>>());
    drop(store);

    let stored = Reader::open(&path)
        .expect("reader")
        .findings()
        .expect("findings");
    let got: BTreeMap<String, serde_json::Value> =
        stored.iter().map(|f| (f.id.clone(), f.to_json())).collect();
    // Which sample flows a finding keeps depends on how flows are batched;
    // how many, and that each is one of the finding's flows, does not.
    let samples = |m: &BTreeMap<String, serde_json::Value>| {
        m.iter()
            .map(|(id, v)| {
                let mut v = v.clone();
                let ev = v["evidence"].take();
                let ev = ev.as_array().expect("evidence").clone();
                (id.clone(), (v, ev))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (got, expected) = (samples(&got), samples(&expected));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (id, (v, ev)) in &got {
        let (want, want_ev) = &expected[id];
        assert_eq!(v, want, "{id}");
        assert_eq!(ev.len(), want_ev.len(), "{id}");
        let all: Vec<serde_json::Value> = flows
            .iter()
            .map(|f| serde_json::to_value(f).unwrap())
            .collect();
        assert!(ev.iter().all(|e| all.contains(e)), "{id}: {ev:?}");
    }
    // Most severe first, then first seen.
    let order: Vec<(Severity, Timestamp)> = stored.iter().map(|f| (f.severity, f.first)).collect();
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(order, sorted);
    assert_eq!(stored[0].kind, FindingKind::PublicExposure);
    let suppressed = stored
        .iter()
        .find(|f| f.kind == FindingKind::UnexpectedPath && f.src_zone == "app")
        .expect("suppressed finding");
    assert_eq!(
        suppressed.to_json()["suppressed"]["owner"],
        serde_json::json!("netops")
    );
    assert!(suppressed.suppressed.is_some());
}

#[test]
fn a_failing_batch_leaves_nothing_behind() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(&Batch {
            files: vec![file_row("aa", "old.pcap")],
            ..Batch::default()
        })
        .expect("setup");

    let est = FlowState::Established;
    let good_finding = delta(
        finding(
            "f-00000000000c",
            FindingKind::PublicExposure,
            Severity::Critical,
        ),
        &[flow("198.51.100.7", "10.2.0.10", 5432, 1, 10, est)],
    );
    let batch = |files: Vec<FileRow>, bad: Option<FindingDelta>| Batch {
        aggregates: vec![agg(0, "internet", "not-allowed", 2)],
        findings: std::iter::once(good_finding.clone()).chain(bad).collect(),
        paths: vec![PathObservation {
            src_zone: "internet".into(),
            dst_zone: "db".into(),
            proto: 6,
            dport: 5432,
            decision: "not-allowed".into(),
            rule: "default".into(),
            first: ts(1),
            last: ts(2),
            flows: 1,
            packets: 2,
            bytes: 3,
            talkers: vec![],
        }],
        files,
        meta: vec![("baseline_start".into(), "1".into())],
    };
    let empty = |store: &Store| {
        let reader = Reader::open(&path).expect("reader");
        assert_eq!(reader.totals().expect("totals"), Totals::default());
        assert!(reader.findings().expect("findings").is_empty());
        assert!(reader.paths().expect("paths").is_empty());
        assert_eq!(reader.files().expect("files").len(), 1);
        assert!(!store.file_seen("bb").expect("seen"));
        assert_eq!(store.meta("baseline_start").expect("meta"), None);
    };

    // A file already in the ledger: the last step of the batch fails.
    let err = store
        .commit(&batch(
            vec![file_row("bb", "new.pcap"), file_row("AA", "renamed.pcap")],
            None,
        ))
        .expect_err("duplicate file");
    assert!(
        matches!(&err, StoreError::FileAlreadyIngested { sha256, file, .. } if sha256 == "aa" && file == "renamed.pcap"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("zonewatch.db: file renamed.pcap (sha256 aa) was already ingested"),
        "{err}"
    );
    empty(&store);

    // A counter SQLite cannot hold, in a finding after the aggregates.
    let mut huge = good_finding.clone();
    huge.finding.id = "f-00000000000d".into();
    huge.finding.bytes = u64::MAX;
    let err = store
        .commit(&batch(vec![file_row("bb", "new.pcap")], Some(huge)))
        .expect_err("too large");
    assert!(matches!(err, StoreError::InvalidValue { .. }), "{err:?}");
    assert!(
        err.to_string().contains("finding f-00000000000d bytes"),
        "{err}"
    );
    empty(&store);

    // The same batch, valid: the ledger row and the aggregates are there together.
    store
        .commit(&batch(vec![file_row("bb", "new.pcap")], None))
        .expect("valid batch");
    let reader = Reader::open(&path).expect("reader");
    assert_eq!(reader.totals().expect("totals").flows, 2);
    assert!(store.file_seen("BB").expect("seen"));
    assert_eq!(reader.files().expect("files").len(), 2);
    assert_eq!(reader.findings().expect("findings").len(), 1);
    assert_eq!(
        reader.meta("baseline_start").expect("meta").as_deref(),
        Some("1")
    );
}

#[test]
fn an_invalid_decision_is_refused_with_the_row_named() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let err = store
        .commit(&Batch {
            aggregates: vec![agg(0, "app", "allowed", 1), agg(0, "app", "maybe", 1)],
            ..Batch::default()
        })
        .expect_err("bad decision");
    let text = err.to_string();
    assert!(text.contains("decision \"maybe\" is not one of"), "{text}");
    assert!(text.contains("the batch was not stored"), "{text}");
    assert_eq!(count(&path, "aggregates"), 0);
}

#[test]
fn a_reader_sees_commits_while_the_writer_stays_open() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let reader = Reader::open(&path).expect("reader");
    assert_eq!(reader.totals().expect("totals").flows, 0);
    store
        .commit(&Batch {
            aggregates: vec![agg(0, "app", "allowed", 4)],
            ..Batch::default()
        })
        .expect("commit");
    assert_eq!(reader.totals().expect("totals").flows, 4);
    store
        .commit(&Batch {
            aggregates: vec![agg(60, "app", "allowed", 1)],
            meta: vec![("k".into(), "v".into())],
            ..Batch::default()
        })
        .expect("commit");
    assert_eq!(reader.totals().expect("totals").flows, 5);
    assert_eq!(reader.meta("k").expect("meta").as_deref(), Some("v"));

    // A reader's snapshot is not blocked by a writer transaction in progress.
    let other = Connection::open(&path).expect("raw writer");
    other
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM aggregates;")
        .expect("begin");
    assert_eq!(reader.totals().expect("totals while writing").flows, 5);
    other.execute_batch("ROLLBACK").expect("rollback");

    // After the writer closed, a new reader still opens (read-only, WAL).
    drop(store);
    drop(reader);
    let late = Reader::open(&path).expect("reader after writer closed");
    assert_eq!(late.totals().expect("totals").flows, 5);
}

#[test]
fn retention_deletes_old_buckets_only() {
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(&Batch {
            aggregates: vec![
                agg(0, "app", "allowed", 1),
                agg(60, "app", "allowed", 2),
                agg(60, "internet", "not-allowed", 3),
                agg(120, "app", "allowed", 4),
            ],
            findings: vec![delta(
                finding("f-00000000000e", FindingKind::Egress, Severity::High),
                &[flow(
                    "10.2.0.1",
                    "203.0.113.9",
                    443,
                    0,
                    1,
                    FlowState::Established,
                )],
            )],
            ..Batch::default()
        })
        .expect("commit");
    assert_eq!(store.retain(ts(60)).expect("retain"), 1);
    assert_eq!(store.retain(ts(60)).expect("retain again"), 0);
    let reader = Reader::open(&path).expect("reader");
    let left = reader.aggregates(ts(0), ts(1000)).expect("aggregates");
    let buckets: Vec<i64> = left.iter().map(|a| a.bucket.secs()).collect();
    assert_eq!(buckets, vec![60, 60, 120]);
    assert_eq!(reader.totals().expect("totals").flows, 9);
    assert_eq!(
        reader.findings().expect("findings").len(),
        1,
        "findings kept"
    );
    // [from, to): the bucket at `to` is excluded.
    assert_eq!(reader.aggregates(ts(60), ts(120)).expect("window").len(), 2);
}

#[test]
fn reopening_keeps_everything_without_duplicates() {
    let (_dir, path) = temp_db();
    let est = FlowState::Established;
    let batch = |sha: &str| Batch {
        aggregates: vec![agg(0, "app", "allowed", 1)],
        findings: vec![delta(
            finding(
                "f-00000000000f",
                FindingKind::PublicExposure,
                Severity::Critical,
            ),
            &[flow("198.51.100.7", "10.2.0.10", 5432, 1, 10, est)],
        )],
        paths: vec![PathObservation {
            src_zone: "internet".into(),
            dst_zone: "db".into(),
            proto: 6,
            dport: 5432,
            decision: "not-allowed".into(),
            rule: "default".into(),
            first: ts(1),
            last: ts(2),
            flows: 1,
            packets: 2,
            bytes: 3,
            talkers: vec![Talker {
                src: ip("198.51.100.7"),
                dst: ip("10.2.0.10"),
                flows: 1,
                bytes: 3,
            }],
        }],
        files: vec![file_row(sha, "x.pcap")],
        meta: vec![("baseline_start".into(), "0".into())],
    };
    {
        let mut store = Store::open(&path).expect("open");
        let out = store.commit(&batch("01")).expect("commit");
        assert_eq!(out.new_paths, 1);
        assert_eq!(out.new_findings.len(), 1);
    }
    let tables = [
        "meta",
        "files",
        "aggregates",
        "findings",
        "finding_evidence",
        "finding_members",
        "paths",
        "path_talkers",
    ];
    let before: Vec<i64> = tables.iter().map(|t| count(&path, t)).collect();
    {
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        assert!(store.file_seen("01").expect("seen"));
    }
    let after: Vec<i64> = tables.iter().map(|t| count(&path, t)).collect();
    assert_eq!(before, after);
    // One row each; three members (initiator, host, service).
    assert_eq!(before, vec![1, 1, 1, 1, 1, 3, 1, 1]);

    // The same batch again (another file): rows grow in place.
    let mut store = Store::open(&path).expect("reopen");
    let out = store.commit(&batch("02")).expect("commit");
    assert_eq!((out.new_paths, out.new_findings.len()), (0, 0));
    let again: Vec<i64> = tables.iter().map(|t| count(&path, t)).collect();
    let mut expected = before.clone();
    expected[1] += 1; // a second file
    expected[4] += 1; // a second evidence flow
    assert_eq!(again, expected);
    let reader = Reader::open(&path).expect("reader");
    let p = &reader.paths().expect("paths")[0];
    assert_eq!((p.flows, p.packets, p.bytes), (2, 4, 6));
    assert_eq!(p.talkers.len(), 1);
    assert_eq!((p.talkers[0].flows, p.talkers[0].bytes), (2, 6));
    assert_eq!(reader.findings().expect("findings")[0].flows, 2);
}

#[test]
fn talkers_are_bounded_to_the_largest_by_bytes() {
    let (_dir, path) = temp_db();
    let limits = StoreLimits {
        max_talkers: 3,
        ..StoreLimits::default()
    };
    let mut store = Store::open_with(&path, limits).expect("open");
    let talker = |i: u8, bytes: u64| Talker {
        src: IpAddr::from([198, 51, 100, i]),
        dst: ip("10.2.0.10"),
        flows: 1,
        bytes,
    };
    let obs = |talkers: Vec<Talker>, first: i64| PathObservation {
        src_zone: "internet".into(),
        dst_zone: "db".into(),
        proto: 6,
        dport: 22,
        decision: "not-allowed".into(),
        rule: "default".into(),
        first: ts(first),
        last: ts(first + 1),
        flows: u64::try_from(talkers.len()).unwrap_or(0),
        packets: 1,
        bytes: talkers.iter().map(|t| t.bytes).sum(),
        talkers,
    };
    store
        .commit(&Batch {
            paths: vec![obs(
                vec![talker(1, 10), talker(2, 50), talker(3, 30), talker(4, 5)],
                10,
            )],
            ..Batch::default()
        })
        .expect("first");
    store
        .commit(&Batch {
            paths: vec![obs(vec![talker(1, 100), talker(5, 1)], 5)],
            ..Batch::default()
        })
        .expect("second");
    let p = &Reader::open(&path).expect("reader").paths().expect("paths")[0];
    let kept: Vec<(IpAddr, u64)> = p.talkers.iter().map(|t| (t.src, t.bytes)).collect();
    assert_eq!(
        kept,
        vec![
            (ip("198.51.100.1"), 110),
            (ip("198.51.100.2"), 50),
            (ip("198.51.100.3"), 30)
        ]
    );
    assert_eq!((p.first, p.last), (ts(5), ts(11)));
    assert_eq!(p.flows, 6);
    assert_eq!(count(&path, "path_talkers"), 3);
}

/// The schema as SQLite holds it: every object's normalized SQL and every
/// table's columns.
fn schema_of(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).expect("open");
    let mut out = Vec::new();
    let mut objects = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .expect("prepare");
    let rows: Vec<(String, String, String, Option<String>)> = objects
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for (kind, name, table, sql) in rows {
        let sql = sql
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.push(format!("{kind} {name} on {table}: {sql}"));
        if kind == "table" {
            let mut info = conn
                .prepare(&format!("PRAGMA table_info({name})"))
                .expect("table_info");
            let cols: Vec<String> = info
                .query_map([], |r| {
                    Ok(format!(
                        "  {} {} notnull={} default={:?} pk={}",
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?
                    ))
                })
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("cols");
            out.extend(cols);
        }
    }
    for pragma in ["user_version", "application_id"] {
        let v: i64 = conn
            .pragma_query_value(None, pragma, |r| r.get(0))
            .expect("pragma");
        out.push(format!("{pragma} = {v}"));
    }
    out
}

#[test]
fn every_old_version_upgrades_to_the_fresh_schema() {
    let (_fresh_dir, fresh) = temp_db();
    drop(Store::open(&fresh).expect("fresh"));
    let want = schema_of(&fresh);
    assert!(want.iter().any(|l| l.contains("path_talkers")), "{want:?}");

    for old in 1..SCHEMA_VERSION {
        let (_dir, path) = temp_db();
        {
            let conn = schema::open_writer(&path, old).expect("old version");
            assert_eq!(schema::user_version(&conn, &path).expect("version"), old);
            // Data written at the old version survives the upgrade.
            conn.execute_batch(
                "INSERT INTO meta VALUES ('baseline_start', '7');
                 INSERT INTO aggregates VALUES (0, 60, 'eth1', 'app', 'db', 6, 5432, 'allowed', 1, 2, 3, 1);
                 INSERT INTO paths (src_zone, dst_zone, proto, dport, decision, rule, first, last, flows, packets, bytes)
                 VALUES ('app', 'db', 6, 22, 'not-allowed', 'default', 0, 1, 1, 1, 1);",
            )
            .expect("old data");
        }
        // A reader refuses the old schema and says what to do.
        let err = Reader::open(&path).err().expect("too old for a reader");
        assert!(
            err.to_string().contains(&format!(
                "database is older (schema {old}) than this zonewatch"
            )),
            "{err}"
        );
        let store = Store::open(&path).expect("upgrade");
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        drop(store);
        assert_eq!(schema_of(&path), want, "upgraded from {old}");
        let reader = Reader::open(&path).expect("reader");
        assert_eq!(
            reader.meta("baseline_start").expect("meta").as_deref(),
            Some("7")
        );
        assert_eq!(reader.totals().expect("totals").flows, 1);
        assert_eq!(reader.paths().expect("paths").len(), 1);
    }
}

#[test]
fn a_newer_database_is_refused_with_a_clear_error() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).expect("create"));
    Connection::open(&path)
        .expect("raw")
        .pragma_update(None, "user_version", 7)
        .expect("bump");
    let want = format!(
        "zonewatch.db: database is newer (schema 7) than this zonewatch (schema {SCHEMA_VERSION}): upgrade zonewatch"
    );
    let err = Store::open(&path).err().expect("writer refuses");
    assert!(
        matches!(err, StoreError::TooNew { found: 7, .. }),
        "{err:?}"
    );
    assert!(err.to_string().ends_with(&want), "{err}");
    let err = Reader::open(&path).err().expect("reader refuses");
    assert!(err.to_string().ends_with(&want), "{err}");
    // Nothing was changed by the refusal.
    let v: i64 = Connection::open(&path)
        .expect("raw")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(v, 7);
}

#[test]
fn files_that_are_not_stores_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing.db");
    let err = Reader::open(&missing).err().expect("missing");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(!missing.exists(), "a reader creates nothing");

    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "this is not a database, it is a plain text file of some length\n".repeat(20),
    )
    .expect("write");
    for err in [
        Store::open(&text).err().expect("writer"),
        Reader::open(&text).err().expect("reader"),
    ] {
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
        assert!(
            err.to_string().contains("notes.txt: not a zonewatch store"),
            "{err}"
        );
    }

    let other = dir.path().join("other.db");
    Connection::open(&other)
        .expect("other")
        .execute_batch("CREATE TABLE t (x)")
        .expect("table");
    for err in [
        Store::open(&other).err().expect("writer"),
        Reader::open(&other).err().expect("reader"),
    ] {
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    }
    assert_eq!(count(&other, "sqlite_master"), 1, "left untouched");

    let nowhere = dir.path().join("no/such/folder/zonewatch.db");
    let err = Store::open(&nowhere).err().expect("no folder");
    assert!(
        err.to_string().contains("check that its folder exists"),
        "{err}"
    );
}

#[test]
fn store_and_reader_can_move_to_their_threads() {
    fn send<T: Send>() {}
    send::<Store>();
    send::<Reader>();
    let (_dir, path) = temp_db();
    let mut store = Store::open(&path).expect("open");
    let p = path.clone();
    let reader = std::thread::spawn(move || Reader::open(&p).map(|_| ()));
    store.commit(&Batch::default()).expect("empty batch");
    reader.join().expect("thread").expect("reader");
}
