//! Output formats: findings as a table, JSON, JSON Lines or Markdown; flows
//! as JSON Lines, CSV or a table. Writers return I/O errors so the caller can
//! stop quietly on a closed pipe.

use std::io::{self, Write};

use zonewatch_collector::FlowRecord;

use crate::finding::Finding;

/// Keeps the I/O kind (a closed pipe must stay a `BrokenPipe`).
fn json_error(e: serde_json::Error) -> io::Error {
    match e.io_error_kind() {
        Some(kind) => io::Error::new(kind, e),
        None => io::Error::other(e),
    }
}

fn initiators_text(f: &Finding) -> String {
    let mut s = f
        .initiators
        .iter()
        .take(3)
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if f.initiator_count > 3 {
        s.push_str(&format!(" +{}", f.initiator_count - 3));
    }
    s
}

fn target_text(f: &Finding) -> String {
    match f.dst {
        Some(d) => d.to_string(),
        None => format!("{} hosts", f.hosts),
    }
}

fn service_text(f: &Finding) -> String {
    match &f.service {
        Some(s) => s.clone(),
        None if f.kind == crate::FindingKind::UndeclaredAddress => "-".to_string(),
        None => format!("{} services", f.ports),
    }
}

fn row(f: &Finding) -> [String; 9] {
    [
        f.severity.to_string(),
        if f.suppressed.is_some() {
            format!("{} (suppressed)", f.kind)
        } else {
            f.kind.to_string()
        },
        format!("{} -> {}", f.src_zone, f.dst_zone),
        target_text(f),
        service_text(f),
        initiators_text(f),
        f.flows.to_string(),
        format!("{}/{}", f.answered, f.flows),
        f.rule.clone(),
    ]
}

const HEADER: [&str; 9] = [
    "SEVERITY",
    "KIND",
    "ZONES",
    "DST",
    "SERVICE",
    "INITIATORS",
    "FLOWS",
    "ANSWERED",
    "RULE",
];

/// Writes findings as an aligned plain-text table.
pub fn findings_table(w: &mut dyn Write, findings: &[Finding]) -> io::Result<()> {
    if findings.is_empty() {
        return writeln!(w, "no findings");
    }
    let rows: Vec<[String; 9]> = findings.iter().map(row).collect();
    let mut widths = HEADER.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |w: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<width$}  ", width = widths[i]));
            }
        }
        writeln!(w, "{}", out.trim_end())
    };
    line(w, &HEADER)?;
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(w, &cells)?;
    }
    Ok(())
}

/// Writes findings as Markdown: a table, then each finding's evidence.
pub fn findings_markdown(w: &mut dyn Write, findings: &[Finding]) -> io::Result<()> {
    writeln!(w, "| {} |", HEADER.join(" | "))?;
    writeln!(w, "|{}", "---|".repeat(HEADER.len()))?;
    for f in findings {
        let cells: Vec<String> = row(f).iter().map(|c| c.replace('|', "\\|")).collect();
        writeln!(w, "| {} |", cells.join(" | "))?;
    }
    for f in findings {
        writeln!(w)?;
        writeln!(w, "### {} `{}` ({})", f.kind, f.id, f.severity)?;
        writeln!(w)?;
        writeln!(
            w,
            "{} -> {}, {} flow(s), {} packet(s), {} byte(s), {} answered, confidence {}, {} .. {}",
            f.src_zone,
            f.dst_zone,
            f.flows,
            f.packets,
            f.bytes,
            f.answered,
            f.confidence,
            f.first,
            f.last
        )?;
        writeln!(w, "Decided by: {}", f.rule)?;
        if let Some(s) = &f.suppressed {
            writeln!(
                w,
                "Suppressed: {} (owner {}, {})",
                s.reason, s.owner, s.rule
            )?;
        }
        if let Some(s) = &f.expired_suppression {
            writeln!(
                w,
                "Expired suppression (no longer applies): {} (owner {}, until {})",
                s.reason,
                s.owner,
                s.until.as_deref().unwrap_or("-")
            )?;
        }
        writeln!(w)?;
        for e in &f.evidence {
            writeln!(
                w,
                "- {} {} {}:{} -> {}:{} {} pkts/{} B, back {} pkts/{} B, {} ({})",
                e.first,
                e.proto,
                e.src,
                e.sport,
                e.dst,
                e.dport,
                e.packets,
                e.bytes,
                e.rpackets,
                e.rbytes,
                e.state.as_str(),
                e.community_id()
            )?;
        }
    }
    Ok(())
}

/// Writes findings as one JSON array.
pub fn findings_json(w: &mut dyn Write, findings: &[Finding]) -> io::Result<()> {
    write_pretty_array(w, findings, PARALLEL_FROM)?;
    writeln!(w)
}

/// Items from which [`write_pretty_array`] renders on two threads (a busy
/// capture's report: thousands of findings, megabytes of JSON).
const PARALLEL_FROM: usize = 64;

/// Writes `items` as a pretty-printed JSON array, the bytes of
/// `serde_json::to_writer_pretty`. From `parallel_from` items on, the two
/// halves are rendered on two threads and written joined.
fn write_pretty_array<T: serde::Serialize + Sync>(
    w: &mut dyn Write,
    items: &[T],
    parallel_from: usize,
) -> io::Result<()> {
    if items.len() < parallel_from.max(2) {
        return serde_json::to_writer_pretty(&mut *w, items).map_err(json_error);
    }
    let (first, second) = items.split_at(items.len() / 2);
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| serde_json::to_vec_pretty(second));
        let first = serde_json::to_vec_pretty(first);
        (first, second.join())
    });
    let second = second.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let (first, second) = (first.map_err(json_error)?, second.map_err(json_error)?);
    // "[\n  a\n]" and "[\n  b\n]" make "[\n  a,\n  b\n]": both halves hold
    // items, so each is such an array (a string in JSON holds no raw newline).
    match (first.strip_suffix(b"\n]"), second.strip_prefix(b"[")) {
        (Some(head), Some(tail)) => {
            w.write_all(head)?;
            w.write_all(b",")?;
            w.write_all(tail)
        }
        _ => {
            debug_assert!(
                false,
                "a pretty JSON array of items ends in \\n] and starts with ["
            );
            serde_json::to_writer_pretty(&mut *w, items).map_err(json_error)
        }
    }
}

/// Writes one finding per line.
pub fn findings_jsonl(w: &mut dyn Write, findings: &[Finding]) -> io::Result<()> {
    for f in findings {
        serde_json::to_writer(&mut *w, f).map_err(json_error)?;
        writeln!(w)?;
    }
    Ok(())
}

/// Writes one flow as a JSON line, built in a reused buffer by the
/// collector's hand-written writer and written at once (serde's per-token
/// writes and escaping were most of the cost of printing flows).
pub fn flow_jsonl(w: &mut dyn Write, f: &FlowRecord) -> io::Result<()> {
    thread_local! {
        static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LINE.with_borrow_mut(|line| {
        line.clear();
        zonewatch_collector::json::write_flow(line, f);
        line.push(b'\n');
        w.write_all(line)
    })
}

/// The CSV header matching [`flow_csv`].
pub const FLOW_CSV_HEADER: &str = "first,last,proto,src,sport,dst,dport,packets,bytes,rpackets,rbytes,answered,state,tcp_flags,rtcp_flags,oriented_by,vlan,source,sampling,community_id";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes one flow as a CSV row.
pub fn flow_csv(w: &mut dyn Write, f: &FlowRecord) -> io::Result<()> {
    let answered = match f.answered {
        Some(true) => "true",
        Some(false) => "false",
        None => "",
    };
    let vlan = f
        .vlan
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(";");
    writeln!(
        w,
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        f.first,
        f.last,
        f.proto,
        f.src,
        f.sport,
        f.dst,
        f.dport,
        f.packets,
        f.bytes,
        f.rpackets,
        f.rbytes,
        answered,
        f.state.as_str(),
        f.tcp_flags,
        f.rtcp_flags,
        f.oriented_by.as_str(),
        vlan,
        csv_field(&f.source),
        f.sampling,
        f.community_id()
    )
}

/// The header line matching [`flow_table_row`].
pub fn flow_table_header(w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "{:<27} {:<6} {:<41} {:<41} {:>8} {:>10} {:>8} {:>10} {:<11} FLAGS",
        "FIRST", "PROTO", "SRC", "DST", "PKTS", "BYTES", "RPKTS", "RBYTES", "STATE"
    )
}

/// Writes one flow as a fixed-width table row.
pub fn flow_table_row(w: &mut dyn Write, f: &FlowRecord) -> io::Result<()> {
    let ep = |a: std::net::IpAddr, p: u16| match a {
        std::net::IpAddr::V6(_) => format!("[{a}]:{p}"),
        _ => format!("{a}:{p}"),
    };
    writeln!(
        w,
        "{:<27} {:<6} {:<41} {:<41} {:>8} {:>10} {:>8} {:>10} {:<11} {}/{}",
        f.first.to_string(),
        f.proto.to_string(),
        ep(f.src, f.sport),
        ep(f.dst, f.dport),
        f.packets,
        f.bytes,
        f.rpackets,
        f.rbytes,
        f.state.as_str(),
        f.tcp_flags,
        f.rtcp_flags
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items of varied shapes: nested arrays and objects, empty ones,
    /// strings needing escapes.
    fn items(n: usize) -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| match i % 4 {
                0 => serde_json::json!({"id": i, "tags": ["a", "b\"c"], "empty": [], "obj": {}}),
                1 => serde_json::json!([i, {"x": null, "y": [1, [2, []]]}]),
                2 => serde_json::json!(format!("line\n{i}")),
                _ => serde_json::json!({"nested": {"deep": {"deeper": [i, i + 1]}}}),
            })
            .collect()
    }

    #[test]
    fn an_array_rendered_in_two_halves_is_the_one_rendered_whole() {
        for n in 0..12 {
            let v = items(n);
            let whole = serde_json::to_vec_pretty(&v).unwrap();
            for from in 0..=n + 1 {
                let mut got = Vec::new();
                write_pretty_array(&mut got, &v, from).unwrap();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(whole.clone()).unwrap(),
                    "{n} items, parallel from {from}"
                );
            }
        }
        let v = items(1000);
        let mut got = Vec::new();
        write_pretty_array(&mut got, &v, 2).unwrap();
        assert_eq!(got, serde_json::to_vec_pretty(&v).unwrap());
    }
}
