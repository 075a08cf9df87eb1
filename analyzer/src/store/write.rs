//! [`Store::commit`](super::Store::commit): one batch, one transaction.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, named_params};
use zonewatch_collector::time::Timestamp;

use super::{
    Aggregate, Batch, CommitOutcome, DECISIONS, FileRow, FindingDelta, PathObservation, StoreError,
    StoreLimits, addr_blob, confidence_rank, service_blob, severity_rank,
};
use crate::FindingKind;

const ACTION: &str = "committing a batch";

/// The transaction and the file it writes to, for error messages.
struct Tx<'a> {
    tx: Transaction<'a>,
    path: &'a Path,
    limits: &'a StoreLimits,
}

impl Tx<'_> {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::sql(self.path, ACTION, e)
    }

    fn invalid(&self, what: String, why: impl Into<String>) -> StoreError {
        StoreError::InvalidValue {
            path: self.path.to_owned(),
            what,
            why: why.into(),
        }
    }

    /// A counter as SQLite keeps it (i64).
    fn int(&self, v: u64, what: impl FnOnce() -> String) -> Result<i64, StoreError> {
        i64::try_from(v).map_err(|_| self.invalid(what(), format!("{v} is above {}", i64::MAX)))
    }

    fn decision(&self, d: &str, what: impl FnOnce() -> String) -> Result<(), StoreError> {
        if DECISIONS.contains(&d) {
            Ok(())
        } else {
            Err(self.invalid(
                what(),
                format!("decision {d:?} is not one of {}", DECISIONS.join(", ")),
            ))
        }
    }
}

pub(super) fn commit(
    conn: &mut Connection,
    path: &Path,
    limits: &StoreLimits,
    batch: &Batch,
) -> Result<CommitOutcome, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| StoreError::sql(path, ACTION, e))?;
    let t = Tx { tx, path, limits };
    let mut outcome = CommitOutcome::default();
    // Any early return drops the transaction, which rolls it back.
    for (key, value) in &batch.meta {
        meta(&t, key, value)?;
    }
    for a in &batch.aggregates {
        aggregate(&t, a)?;
    }
    for d in &batch.findings {
        if finding(&t, d)? {
            outcome.new_findings.push(d.finding.id.clone());
        }
    }
    for p in &batch.paths {
        if observed_path(&t, p)? {
            outcome.new_paths += 1;
        }
    }
    for f in &batch.files {
        file(&t, f)?;
    }
    t.tx.commit()
        .map_err(|e| StoreError::sql(path, ACTION, e))?;
    Ok(outcome)
}

pub(super) fn retain(
    conn: &mut Connection,
    path: &Path,
    keep_buckets_from: Timestamp,
) -> Result<u64, StoreError> {
    let e = |e| StoreError::sql(path, "deleting old aggregates", e);
    let n = conn
        .execute(
            "DELETE FROM aggregates WHERE bucket < :from",
            named_params! {":from": keep_buckets_from.0},
        )
        .map_err(e)?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

fn meta(t: &Tx, key: &str, value: &str) -> Result<(), StoreError> {
    t.tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (:key, :value)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut s| s.execute(named_params! {":key": key, ":value": value}))
    .map_err(|e| t.err(e))?;
    Ok(())
}

fn aggregate(t: &Tx, a: &Aggregate) -> Result<(), StoreError> {
    let what = |field: &str| {
        format!(
            "aggregate {} {} -> {} {}/{} {field}",
            a.bucket, a.src_zone, a.dst_zone, a.proto, a.dport
        )
    };
    t.decision(&a.decision, || what("decision"))?;
    let flows = t.int(a.flows, || what("flows"))?;
    let packets = t.int(a.packets, || what("packets"))?;
    let bytes = t.int(a.bytes, || what("bytes"))?;
    let answered = t.int(a.answered, || what("answered"))?;
    t.tx.prepare_cached(
        "INSERT INTO aggregates (bucket, bucket_secs, source, src_zone, dst_zone, proto, dport,
                                 decision, flows, packets, bytes, answered)
         VALUES (:bucket, :bucket_secs, :source, :src_zone, :dst_zone, :proto, :dport,
                 :decision, :flows, :packets, :bytes, :answered)
         ON CONFLICT (bucket, bucket_secs, source, src_zone, dst_zone, proto, dport, decision)
         DO UPDATE SET flows = flows + excluded.flows,
                       packets = packets + excluded.packets,
                       bytes = bytes + excluded.bytes,
                       answered = answered + excluded.answered",
    )
    .and_then(|mut s| {
        s.execute(named_params! {
            ":bucket": a.bucket.0,
            ":bucket_secs": a.bucket_secs,
            ":source": a.source,
            ":src_zone": a.src_zone,
            ":dst_zone": a.dst_zone,
            ":proto": a.proto,
            ":dport": a.dport,
            ":decision": a.decision,
            ":flows": flows,
            ":packets": packets,
            ":bytes": bytes,
            ":answered": answered,
        })
    })
    .map_err(|e| t.err(e))?;
    Ok(())
}

/// Merges one finding delta; returns whether the finding is new.
fn finding(t: &Tx, d: &FindingDelta) -> Result<bool, StoreError> {
    let f = &d.finding;
    let what = |field: &str| format!("finding {} {field}", f.id);
    let flows = t.int(f.flows, || what("flows"))?;
    let packets = t.int(f.packets, || what("packets"))?;
    let bytes = t.int(f.bytes, || what("bytes"))?;
    let answered = t.int(f.answered, || what("answered"))?;
    let note = |n: &Option<crate::SuppressionNote>| -> Result<Option<String>, StoreError> {
        n.as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| t.invalid(what("suppression"), e.to_string()))
    };
    let suppressed = note(&f.suppressed)?;
    let expired = note(&f.expired_suppression)?;
    // The address of an undeclared-address finding is its key; for other
    // kinds the responder is derived from the host set when read.
    let dst = match f.kind {
        FindingKind::UndeclaredAddress => f.dst.map(|a| a.to_canonical().to_string()),
        _ => None,
    };
    let params = named_params! {
        ":id": f.id,
        ":kind": f.kind.as_str(),
        ":severity": severity_rank(f.severity),
        ":src_zone": f.src_zone,
        ":dst_zone": f.dst_zone,
        ":dst": dst,
        ":flows": flows,
        ":packets": packets,
        ":bytes": bytes,
        ":answered": answered,
        ":confidence": confidence_rank(f.confidence),
        ":first": f.first.0,
        ":last": f.last.0,
        ":rule": f.rule,
        ":suppressed": suppressed,
        ":expired": expired,
    };
    let inserted =
        t.tx.prepare_cached(
            "INSERT INTO findings (id, kind, severity, src_zone, dst_zone, dst, flows, packets,
                                   bytes, answered, confidence, first, last, rule, suppressed,
                                   expired_suppression)
             VALUES (:id, :kind, :severity, :src_zone, :dst_zone, :dst, :flows, :packets,
                     :bytes, :answered, :confidence, :first, :last, :rule, :suppressed, :expired)
             ON CONFLICT (id) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params))
        .map_err(|e| t.err(e))?
            == 1;
    if !inserted {
        t.tx.prepare_cached(
            "UPDATE findings SET
                 kind = :kind,
                 severity = max(severity, :severity),
                 src_zone = :src_zone,
                 dst_zone = :dst_zone,
                 dst = coalesce(:dst, dst),
                 flows = flows + :flows,
                 packets = packets + :packets,
                 bytes = bytes + :bytes,
                 answered = answered + :answered,
                 confidence = max(confidence, :confidence),
                 first = min(first, :first),
                 last = max(last, :last),
                 rule = :rule,
                 suppressed = :suppressed,
                 expired_suppression = :expired
             WHERE id = :id",
        )
        .and_then(|mut s| s.execute(params))
        .map_err(|e| t.err(e))?;
    }
    members(t, d)?;
    evidence(t, d)?;
    Ok(inserted)
}

/// A count column (never negative: the store writes it).
fn count_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<usize> {
    let v: i64 = r.get(i)?;
    usize::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

/// A count as SQLite keeps it.
fn count_sql(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Merges the member sets and updates the counts kept on the finding row.
fn members(t: &Tx, d: &FindingDelta) -> Result<(), StoreError> {
    let id = &d.finding.id;
    let (mut initiators, mut hosts, mut ports, mut capped): (usize, usize, usize, bool) =
        t.tx.prepare_cached(
            "SELECT initiator_count, hosts, ports, members_capped FROM findings WHERE id = :id",
        )
        .and_then(|mut s| {
            s.query_row(named_params! {":id": id}, |r| {
                Ok((count_at(r, 0)?, count_at(r, 1)?, count_at(r, 2)?, r.get(3)?))
            })
        })
        .map_err(|e| t.err(e))?;
    for &(ip, b) in &d.initiators {
        let b = t.int(b, || format!("finding {id} initiator {ip} bytes"))?;
        capped |= !member(t, id, "initiator", &addr_blob(ip), b, &mut initiators)?;
    }
    for &ip in &d.hosts {
        capped |= !member(t, id, "host", &addr_blob(ip), 0, &mut hosts)?;
    }
    for &(proto, dport) in &d.services {
        capped |= !member(t, id, "service", &service_blob(proto, dport), 0, &mut ports)?;
    }
    t.tx.prepare_cached(
        "UPDATE findings SET initiator_count = :initiators, hosts = :hosts, ports = :ports,
                             members_capped = :capped
         WHERE id = :id",
    )
    .and_then(|mut s| {
        s.execute(named_params! {
            ":initiators": count_sql(initiators),
            ":hosts": count_sql(hosts),
            ":ports": count_sql(ports),
            ":capped": capped,
            ":id": id,
        })
    })
    .map_err(|e| t.err(e))?;
    Ok(())
}

/// Adds one member (or its bytes, when known). Returns `false` when the
/// member is new but its set is full, so it was not recorded.
fn member(
    t: &Tx,
    id: &str,
    role: &str,
    member: &[u8],
    bytes: i64,
    count: &mut usize,
) -> Result<bool, StoreError> {
    let params = named_params! {":id": id, ":role": role, ":member": member, ":bytes": bytes};
    if *count < t.limits.max_members {
        let inserted =
            t.tx.prepare_cached(
                "INSERT INTO finding_members (finding_id, role, member, bytes)
                 VALUES (:id, :role, :member, :bytes)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params))
            .map_err(|e| t.err(e))?;
        if inserted == 1 {
            *count += 1;
            return Ok(true);
        }
    }
    let updated =
        t.tx.prepare_cached(
            "UPDATE finding_members SET bytes = bytes + :bytes
             WHERE finding_id = :id AND role = :role AND member = :member",
        )
        .and_then(|mut s| s.execute(params))
        .map_err(|e| t.err(e))?;
    Ok(updated == 1)
}

/// Appends the delta's sample flows while the finding has fewer than the cap.
fn evidence(t: &Tx, d: &FindingDelta) -> Result<(), StoreError> {
    let id = &d.finding.id;
    if d.finding.evidence.is_empty() {
        return Ok(());
    }
    let (count, next): (usize, i64) =
        t.tx.prepare_cached(
            "SELECT count(*), coalesce(max(seq) + 1, 0) FROM finding_evidence
             WHERE finding_id = :id",
        )
        .and_then(|mut s| {
            s.query_row(named_params! {":id": id}, |r| {
                Ok((count_at(r, 0)?, r.get(1)?))
            })
        })
        .map_err(|e| t.err(e))?;
    let room = t.limits.max_evidence.saturating_sub(count);
    let mut insert =
        t.tx.prepare_cached(
            "INSERT INTO finding_evidence (finding_id, seq, first, flow)
             VALUES (:id, :seq, :first, :flow)",
        )
        .map_err(|e| t.err(e))?;
    for (seq, flow) in (next..).zip(d.finding.evidence.iter().take(room)) {
        let json = serde_json::to_string(flow)
            .map_err(|e| t.invalid(format!("finding {id} evidence"), e.to_string()))?;
        insert
            .execute(named_params! {":id": id, ":seq": seq, ":first": flow.first.0, ":flow": json})
            .map_err(|e| t.err(e))?;
    }
    Ok(())
}

/// Merges one path observation; returns whether the path is new.
fn observed_path(t: &Tx, p: &PathObservation) -> Result<bool, StoreError> {
    let what = |field: &str| {
        format!(
            "path {} -> {} {}/{} {field}",
            p.src_zone, p.dst_zone, p.proto, p.dport
        )
    };
    t.decision(&p.decision, || what("decision"))?;
    let flows = t.int(p.flows, || what("flows"))?;
    let packets = t.int(p.packets, || what("packets"))?;
    let bytes = t.int(p.bytes, || what("bytes"))?;
    let key = named_params! {
        ":src_zone": p.src_zone, ":dst_zone": p.dst_zone, ":proto": p.proto, ":dport": p.dport,
    };
    let existing: Option<i64> =
        t.tx.prepare_cached(
            "SELECT id FROM paths
             WHERE src_zone = :src_zone AND dst_zone = :dst_zone AND proto = :proto
               AND dport = :dport",
        )
        .and_then(|mut s| s.query_row(key, |r| r.get(0)).optional())
        .map_err(|e| t.err(e))?;
    let values = named_params! {
        ":src_zone": p.src_zone,
        ":dst_zone": p.dst_zone,
        ":proto": p.proto,
        ":dport": p.dport,
        ":decision": p.decision,
        ":rule": p.rule,
        ":first": p.first.0,
        ":last": p.last.0,
        ":flows": flows,
        ":packets": packets,
        ":bytes": bytes,
    };
    let id = match existing {
        Some(id) => {
            t.tx.prepare_cached(
                "UPDATE paths SET decision = :decision, rule = :rule,
                                  first = min(first, :first), last = max(last, :last),
                                  flows = flows + :flows, packets = packets + :packets,
                                  bytes = bytes + :bytes
                 WHERE src_zone = :src_zone AND dst_zone = :dst_zone AND proto = :proto
                   AND dport = :dport",
            )
            .and_then(|mut s| s.execute(values))
            .map_err(|e| t.err(e))?;
            id
        }
        None => {
            t.tx.prepare_cached(
                "INSERT INTO paths (src_zone, dst_zone, proto, dport, decision, rule, first,
                                    last, flows, packets, bytes)
                 VALUES (:src_zone, :dst_zone, :proto, :dport, :decision, :rule, :first,
                         :last, :flows, :packets, :bytes)",
            )
            .and_then(|mut s| s.insert(values))
            .map_err(|e| t.err(e))?
        }
    };
    if !p.talkers.is_empty() {
        talkers(t, id, p)?;
    }
    Ok(existing.is_none())
}

/// Adds the talkers of one path, then keeps only the largest by bytes.
fn talkers(t: &Tx, path_id: i64, p: &PathObservation) -> Result<(), StoreError> {
    let mut upsert =
        t.tx.prepare_cached(
            "INSERT INTO path_talkers (path_id, src, dst, flows, bytes)
             VALUES (:path_id, :src, :dst, :flows, :bytes)
             ON CONFLICT (path_id, src, dst)
             DO UPDATE SET flows = flows + excluded.flows, bytes = bytes + excluded.bytes",
        )
        .map_err(|e| t.err(e))?;
    for k in &p.talkers {
        let what = |field: &str| {
            format!(
                "path {} -> {} talker {} -> {} {field}",
                p.src_zone, p.dst_zone, k.src, k.dst
            )
        };
        let flows = t.int(k.flows, || what("flows"))?;
        let bytes = t.int(k.bytes, || what("bytes"))?;
        upsert
            .execute(named_params! {
                ":path_id": path_id,
                ":src": k.src.to_canonical().to_string(),
                ":dst": k.dst.to_canonical().to_string(),
                ":flows": flows,
                ":bytes": bytes,
            })
            .map_err(|e| t.err(e))?;
    }
    let keep = i64::try_from(t.limits.max_talkers).unwrap_or(i64::MAX);
    t.tx.prepare_cached(
        "DELETE FROM path_talkers WHERE path_id = :path_id AND rowid NOT IN (
             SELECT rowid FROM path_talkers WHERE path_id = :path_id
             ORDER BY bytes DESC, flows DESC, src, dst LIMIT :keep)",
    )
    .and_then(|mut s| s.execute(named_params! {":path_id": path_id, ":keep": keep}))
    .map_err(|e| t.err(e))?;
    Ok(())
}

fn file(t: &Tx, f: &FileRow) -> Result<(), StoreError> {
    let sha = f.sha256.to_ascii_lowercase();
    let what = |field: &str| format!("file {} {field}", f.path);
    if sha.is_empty() {
        return Err(t.invalid(what("sha256"), "empty"));
    }
    let size = t.int(f.size, || what("size"))?;
    let packets = t.int(f.packets, || what("packets"))?;
    let flows = t.int(f.flows, || what("flows"))?;
    let errors = t.int(f.errors, || what("errors"))?;
    let inserted =
        t.tx.prepare_cached(
            "INSERT INTO files (sha256, path, size, ingested_at, packets, flows, errors)
             VALUES (:sha256, :path, :size, :ingested_at, :packets, :flows, :errors)
             ON CONFLICT (sha256) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(named_params! {
                ":sha256": sha,
                ":path": f.path,
                ":size": size,
                ":ingested_at": f.ingested_at.0,
                ":packets": packets,
                ":flows": flows,
                ":errors": errors,
            })
        })
        .map_err(|e| t.err(e))?;
    if inserted == 0 {
        return Err(StoreError::FileAlreadyIngested {
            path: t.path.to_owned(),
            sha256: sha,
            file: f.path.clone(),
        });
    }
    Ok(())
}
