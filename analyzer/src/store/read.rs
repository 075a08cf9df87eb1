//! Queries shared by [`Store`](super::Store) and [`Reader`](super::Reader).
//! Each public query of the reader runs in one read transaction, so it sees
//! one consistent snapshot even while the writer commits.

use std::net::IpAddr;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, named_params};
use zonewatch_collector::Proto;
use zonewatch_collector::time::Timestamp;

use super::{
    Aggregate, FileRow, MAX_INITIATORS_LISTED, StoreError, StoredFinding, StoredPath, Talker,
    Totals, blob_addr, blob_service, confidence_of_rank, severity_of_rank,
};
use crate::finding::{Finding, FindingKind, SuppressionNote};
use crate::service_name;

/// Runs `f` inside a read transaction (one snapshot).
fn snapshot<T>(
    conn: &Connection,
    path: &Path,
    action: &'static str,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| StoreError::sql(path, action, e))?;
    let out = f(&tx)?;
    tx.finish().map_err(|e| StoreError::sql(path, action, e))?;
    Ok(out)
}

/// A non-negative INTEGER column (counters are stored as i64).
fn uint<T: TryFrom<i64>>(r: &Row, i: usize) -> rusqlite::Result<T> {
    let v: i64 = r.get(i)?;
    T::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

fn corrupt(path: &Path, what: impl Into<String>, why: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        what: what.into(),
        why: why.into(),
    }
}

pub(super) fn file_seen(conn: &Connection, path: &Path, sha256: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM files WHERE sha256 = :sha")
        .and_then(|mut s| s.exists(named_params! {":sha": sha256.to_ascii_lowercase()}))
        .map_err(|e| StoreError::sql(path, "reading the file ledger", e))
}

pub(super) fn meta(
    conn: &Connection,
    path: &Path,
    key: &str,
) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = :key")
        .and_then(|mut s| {
            s.query_row(named_params! {":key": key}, |r| r.get(0))
                .optional()
        })
        .map_err(|e| StoreError::sql(path, "reading meta", e))
}

pub(super) fn totals(conn: &Connection, path: &Path) -> Result<Totals, StoreError> {
    conn.query_row(
        "SELECT coalesce(sum(flows), 0), coalesce(sum(packets), 0), coalesce(sum(bytes), 0),
                coalesce(sum(answered), 0)
         FROM aggregates",
        [],
        |r| {
            Ok(Totals {
                flows: uint(r, 0)?,
                packets: uint(r, 1)?,
                bytes: uint(r, 2)?,
                answered: uint(r, 3)?,
            })
        },
    )
    .map_err(|e| StoreError::sql(path, "summing aggregates", e))
}

pub(super) fn aggregates(
    conn: &Connection,
    path: &Path,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Aggregate>, StoreError> {
    let action = "reading aggregates";
    let mut stmt = conn
        .prepare_cached(
            "SELECT bucket, bucket_secs, source, src_zone, dst_zone, proto, dport, decision,
                    flows, packets, bytes, answered
             FROM aggregates WHERE bucket >= :from AND bucket < :to
             ORDER BY bucket, source, src_zone, dst_zone, proto, dport, decision, bucket_secs",
        )
        .map_err(|e| StoreError::sql(path, action, e))?;
    let rows = stmt
        .query_map(named_params! {":from": from.0, ":to": to.0}, |r| {
            Ok(Aggregate {
                bucket: Timestamp(r.get(0)?),
                bucket_secs: r.get(1)?,
                source: r.get(2)?,
                src_zone: r.get(3)?,
                dst_zone: r.get(4)?,
                proto: r.get(5)?,
                dport: r.get(6)?,
                decision: r.get(7)?,
                flows: uint(r, 8)?,
                packets: uint(r, 9)?,
                bytes: uint(r, 10)?,
                answered: uint(r, 11)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StoreError::sql(path, action, e))?;
    Ok(rows)
}

pub(super) fn files(conn: &Connection, path: &Path) -> Result<Vec<FileRow>, StoreError> {
    let action = "reading the file ledger";
    let mut stmt = conn
        .prepare_cached(
            "SELECT sha256, path, size, ingested_at, packets, flows, errors FROM files
             ORDER BY ingested_at, sha256",
        )
        .map_err(|e| StoreError::sql(path, action, e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(FileRow {
                sha256: r.get(0)?,
                path: r.get(1)?,
                size: uint(r, 2)?,
                ingested_at: Timestamp(r.get(3)?),
                packets: uint(r, 4)?,
                flows: uint(r, 5)?,
                errors: uint(r, 6)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StoreError::sql(path, action, e))?;
    Ok(rows)
}

pub(super) fn paths(conn: &Connection, path: &Path) -> Result<Vec<StoredPath>, StoreError> {
    let action = "reading paths";
    snapshot(conn, path, action, |conn| {
        let e = |e| StoreError::sql(path, action, e);
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, src_zone, dst_zone, proto, dport, decision, rule, first, last, flows,
                        packets, bytes
                 FROM paths ORDER BY src_zone, dst_zone, proto, dport",
            )
            .map_err(e)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    StoredPath {
                        src_zone: r.get(1)?,
                        dst_zone: r.get(2)?,
                        proto: r.get(3)?,
                        dport: r.get(4)?,
                        decision: r.get(5)?,
                        rule: r.get(6)?,
                        first: Timestamp(r.get(7)?),
                        last: Timestamp(r.get(8)?),
                        flows: uint(r, 9)?,
                        packets: uint(r, 10)?,
                        bytes: uint(r, 11)?,
                        talkers: Vec::new(),
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(e)?;
        let mut talkers = conn
            .prepare_cached(
                "SELECT src, dst, flows, bytes FROM path_talkers WHERE path_id = :id
                 ORDER BY bytes DESC, flows DESC, src, dst",
            )
            .map_err(e)?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, mut p) in rows {
            let list = talkers
                .query_map(named_params! {":id": id}, |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        uint::<u64>(r, 2)?,
                        uint::<u64>(r, 3)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(e)?;
            for (src, dst, flows, bytes) in list {
                let ip = |s: &str| {
                    s.parse::<IpAddr>()
                        .map_err(|_| corrupt(path, "path talker address", format!("{s:?}")))
                };
                p.talkers.push(Talker {
                    src: ip(&src)?,
                    dst: ip(&dst)?,
                    flows,
                    bytes,
                });
            }
            out.push(p);
        }
        Ok(out)
    })
}

/// The columns of a finding row, before the member and evidence look-ups.
struct FindingRow {
    id: String,
    kind: String,
    severity: i64,
    src_zone: String,
    dst_zone: String,
    dst: Option<String>,
    initiator_count: usize,
    hosts: usize,
    ports: usize,
    members_capped: bool,
    flows: u64,
    packets: u64,
    bytes: u64,
    answered: u64,
    confidence: i64,
    first: i64,
    last: i64,
    rule: String,
    suppressed: Option<String>,
    expired_suppression: Option<String>,
}

impl FindingRow {
    fn from_row(r: &Row) -> rusqlite::Result<FindingRow> {
        Ok(FindingRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            severity: r.get(2)?,
            src_zone: r.get(3)?,
            dst_zone: r.get(4)?,
            dst: r.get(5)?,
            initiator_count: uint(r, 6)?,
            hosts: uint(r, 7)?,
            ports: uint(r, 8)?,
            members_capped: r.get(9)?,
            flows: uint(r, 10)?,
            packets: uint(r, 11)?,
            bytes: uint(r, 12)?,
            answered: uint(r, 13)?,
            confidence: r.get(14)?,
            first: r.get(15)?,
            last: r.get(16)?,
            rule: r.get(17)?,
            suppressed: r.get(18)?,
            expired_suppression: r.get(19)?,
        })
    }
}

pub(super) fn findings(conn: &Connection, path: &Path) -> Result<Vec<StoredFinding>, StoreError> {
    let action = "reading findings";
    snapshot(conn, path, action, |conn| {
        let e = |e| StoreError::sql(path, action, e);
        let rows = conn
            .prepare_cached(
                "SELECT id, kind, severity, src_zone, dst_zone, dst, initiator_count, hosts,
                        ports, members_capped, flows, packets, bytes, answered, confidence,
                        first, last, rule, suppressed, expired_suppression
                 FROM findings ORDER BY severity DESC, first, id",
            )
            .and_then(|mut s| {
                s.query_map([], FindingRow::from_row)
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            })
            .map_err(e)?;
        let mut members = conn
            .prepare_cached(
                "SELECT member FROM finding_members WHERE finding_id = :id AND role = :role
                 ORDER BY bytes DESC, member LIMIT :limit",
            )
            .map_err(e)?;
        let mut evidence = conn
            .prepare_cached(
                "SELECT flow FROM finding_evidence WHERE finding_id = :id ORDER BY first, seq",
            )
            .map_err(e)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut list = |role: &str, limit: usize| -> Result<Vec<Vec<u8>>, StoreError> {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                members
                    .query_map(
                        named_params! {":id": row.id, ":role": role, ":limit": limit},
                        |r| r.get(0),
                    )
                    .and_then(|rows| rows.collect())
                    .map_err(e)
            };
            let what = |field: &str| format!("finding {} {field}", row.id);
            let addr = |b: &[u8]| {
                blob_addr(b).ok_or_else(|| corrupt(path, what("member"), format!("{b:02x?}")))
            };
            let initiators = list("initiator", MAX_INITIATORS_LISTED)?
                .iter()
                .map(|b| addr(b))
                .collect::<Result<Vec<_>, _>>()?;
            let kind = FindingKind::ALL
                .into_iter()
                .find(|k| k.as_str() == row.kind)
                .ok_or_else(|| {
                    corrupt(
                        path,
                        what("kind"),
                        format!("{:?} is unknown (written by a newer zonewatch?)", row.kind),
                    )
                })?;
            let (mut dst, mut proto, mut dport, mut service) = (None, None, None, None);
            if kind == FindingKind::UndeclaredAddress {
                dst = match &row.dst {
                    Some(s) => Some(
                        s.parse::<IpAddr>()
                            .map_err(|_| corrupt(path, what("dst"), format!("{s:?}")))?,
                    ),
                    None => None,
                };
            } else {
                if row.hosts == 1 && !row.members_capped {
                    dst = list("host", 1)?.first().map(|b| addr(b)).transpose()?;
                }
                let one_service = if row.ports == 1 && !row.members_capped {
                    list("service", 1)?
                } else {
                    Vec::new()
                };
                if let Some(b) = one_service.first() {
                    let (p, d) = blob_service(b).ok_or_else(|| {
                        corrupt(path, what("service member"), format!("{b:02x?}"))
                    })?;
                    proto = Some(Proto(p).to_string());
                    dport = Some(d);
                    service = Some(service_name(p, d));
                }
            }
            let note = |field: &str, s: &Option<String>| -> Result<_, StoreError> {
                s.as_deref()
                    .map(serde_json::from_str::<SuppressionNote>)
                    .transpose()
                    .map_err(|err| corrupt(path, what(field), err.to_string()))
            };
            let flows = evidence
                .query_map(named_params! {":id": row.id}, |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(e)?
                .iter()
                .map(|text| {
                    serde_json::from_str(text)
                        .map_err(|err| corrupt(path, what("evidence"), err.to_string()))
                })
                .collect::<Result<Vec<serde_json::Value>, _>>()?;
            out.push(StoredFinding {
                finding: Finding {
                    kind,
                    severity: severity_of_rank(row.severity)
                        .ok_or_else(|| corrupt(path, what("severity"), row.severity.to_string()))?,
                    confidence: confidence_of_rank(row.confidence).ok_or_else(|| {
                        corrupt(path, what("confidence"), row.confidence.to_string())
                    })?,
                    suppressed: note("suppression", &row.suppressed)?,
                    expired_suppression: note("expired suppression", &row.expired_suppression)?,
                    id: row.id,
                    src_zone: row.src_zone,
                    dst_zone: row.dst_zone,
                    dst,
                    proto,
                    dport,
                    service,
                    initiators,
                    initiator_count: row.initiator_count,
                    hosts: row.hosts,
                    ports: row.ports,
                    flows: row.flows,
                    packets: row.packets,
                    bytes: row.bytes,
                    answered: row.answered,
                    first: Timestamp(row.first),
                    last: Timestamp(row.last),
                    rule: row.rule,
                    evidence: flows,
                },
                members_capped: row.members_capped,
            });
        }
        Ok(out)
    })
}
