//! The verbs, wired from the library crates.

use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use zonewatch_analyzer::{Analyzer, AnalyzerConfig, Finding, Report, Severity, render};
use zonewatch_collector::FlowRecord;
use zonewatch_collector::capture::CaptureReader;
use zonewatch_collector::ingest::{self, Input, ReadStats};
use zonewatch_collector::pcap_writer::PcapWriter;
use zonewatch_collector::table::{FlowTable, TableConfig, TableStats};
use zonewatch_collector::time::Timestamp;
use zonewatch_zones::{PathQuery, Policy};

use crate::flags::{
    AnalyzeArgs, FindingFormat, FlowFormat, FlowsArgs, InputArgs, Progress, ZonesCommand,
};

fn table_config(a: &InputArgs) -> TableConfig {
    TableConfig {
        max_flows: a.max_flows.max(16),
        tcp_idle_secs: a.tcp_idle_secs,
        udp_idle_secs: a.udp_idle_secs,
        active_secs: a.active_secs,
        ..TableConfig::default()
    }
}

fn expand_inputs(a: &InputArgs) -> Result<Vec<Input>> {
    a.inputs
        .iter()
        .map(|p| ingest::expand(p).with_context(|| format!("cannot open input {}", p.display())))
        .collect()
}

fn progress_bar(a: &InputArgs, inputs: &[Input]) -> Option<ProgressBar> {
    if a.progress == Progress::Never || !io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = inputs
        .iter()
        .flat_map(|i| i.files())
        .filter_map(|f| f.and_then(|p| fs::metadata(p).ok()).map(|m| m.len()))
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// A packet kept as evidence.
struct Kept {
    ts: Timestamp,
    linktype: u32,
    wire_len: u32,
    data: Vec<u8>,
}

/// Packet buffers of the flows that may become evidence.
struct Evidence {
    per_flow: usize,
    flows: std::collections::HashMap<u64, Vec<Kept>>,
    kept: std::collections::HashMap<u64, Vec<Kept>>,
}

/// Receives ended flows; pushes the ids of flows kept as finding evidence.
type FlowSink<'a> = dyn FnMut(&[FlowRecord], &mut Vec<u64>) -> Result<()> + 'a;

/// Reads all inputs through one table; `sink` gets ended flows.
fn read_all(
    a: &InputArgs,
    inputs: &[Input],
    mut suspect: Option<&mut dyn FnMut(&zonewatch_collector::packet::PacketInfo) -> bool>,
    evidence: Option<&mut Evidence>,
    sink: &mut FlowSink<'_>,
) -> Result<(ReadStats, TableStats)> {
    let mut kept_ids = Vec::new();
    // Shared by the packet callback (fills buffers) and the flow callback (settles them).
    let evidence = std::cell::RefCell::new(evidence);
    let mut table = FlowTable::new(table_config(a));
    let mut stats = ReadStats::default();
    let bar = progress_bar(a, inputs);
    let mut done_bytes = 0u64;
    let mut sink_err: Option<anyhow::Error> = None;
    for input in inputs {
        let source = table.add_source(&input.source_name());
        for file in input.files() {
            let name = file.map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
            let opened = match file {
                Some(p) => CaptureReader::open(p),
                None => CaptureReader::from_reader(Box::new(io::stdin()), "stdin"),
            };
            let mut reader = match opened {
                Ok(r) => r,
                Err(e) => {
                    if inputs.len() == 1 && input.files().len() == 1 {
                        bail!("{name}: {e}; is it a pcap or pcapng capture?");
                    }
                    tracing::error!(input = %name, error = %e, "cannot read capture, skipped");
                    stats.capture_errors.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let mut on_packet =
                |pkt: &zonewatch_collector::capture::CapturedPacket<'_>,
                 ing: &zonewatch_collector::table::Ingested| {
                    if let Some(ev) = evidence.borrow_mut().as_deref_mut() {
                        if ing.new {
                            // Decide once per flow whether its packets are worth keeping.
                            let keep = match (
                                &mut suspect,
                                zonewatch_collector::packet::decode(pkt.linktype, pkt.data),
                            ) {
                                (Some(f), zonewatch_collector::packet::Decoded::Ip(info)) => {
                                    f(&info)
                                }
                                _ => false,
                            };
                            if keep {
                                ev.flows.insert(ing.flow_id, Vec::new());
                            }
                        }
                        if let Some(buf) = ev.flows.get_mut(&ing.flow_id)
                            && buf.len() < ev.per_flow
                        {
                            buf.push(Kept {
                                ts: pkt.ts,
                                linktype: pkt.linktype,
                                wire_len: pkt.wire_len,
                                data: pkt.data.to_vec(),
                            });
                        }
                    }
                };
            let mut on_flows = |out: &mut Vec<FlowRecord>| {
                if sink_err.is_none()
                    && let Err(e) = sink(out, &mut kept_ids)
                {
                    sink_err = Some(e);
                }
                settle_evidence(evidence.borrow_mut().as_deref_mut(), out, &mut kept_ids);
                out.clear();
            };
            let on_progress = |bytes: u64, packets: u64| {
                if let Some(b) = &bar {
                    b.set_position(done_bytes + bytes);
                    let secs = b.elapsed().as_secs_f64().max(1e-3);
                    b.set_message(format!(
                        "{packets} packets, {:.0} packets/s",
                        packets as f64 / secs
                    ));
                }
            };
            // Evidence needs the raw packets next to the table: one thread then.
            let res = if evidence.borrow().is_some() {
                ingest::read_capture(
                    &mut reader,
                    source,
                    &mut table,
                    &mut stats,
                    &mut on_packet,
                    &mut on_flows,
                    &mut |b, p| on_progress(b, p),
                )
            } else {
                ingest::read_capture_pipelined(
                    &mut reader,
                    source,
                    &mut table,
                    &mut stats,
                    &mut on_flows,
                    &on_progress,
                )
            };
            done_bytes += reader.bytes_consumed();
            if let Some(b) = &bar {
                b.set_position(done_bytes);
                b.set_message(format!("{} packets", stats.packets));
            }
            if let Err(e) = res {
                tracing::warn!(input = %name, error = %e, "capture ends in an error; the packets before it were analysed");
                stats.capture_errors.push(format!("{name}: {e}"));
            }
            if let Some(e) = sink_err.take() {
                return Err(e);
            }
        }
    }
    let mut evidence = evidence.into_inner();
    table.flush_each(&mut |chunk| {
        if sink_err.is_none()
            && let Err(e) = sink(chunk, &mut kept_ids)
        {
            sink_err = Some(e);
        }
        settle_evidence(evidence.as_deref_mut(), chunk, &mut kept_ids);
    });
    if let Some(e) = sink_err.take() {
        return Err(e);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok((stats, table.stats().clone()))
}

/// Ended flows release their packet buffers, unless a finding keeps them as evidence.
fn settle_evidence(ev: Option<&mut Evidence>, ended: &[FlowRecord], kept_ids: &mut Vec<u64>) {
    if let Some(ev) = ev {
        for f in ended {
            if let Some(buf) = ev.flows.remove(&f.id)
                && kept_ids.contains(&f.id)
            {
                ev.kept.insert(f.id, buf);
            }
        }
    }
    kept_ids.clear();
}

fn summary(stats: &ReadStats, table: &TableStats) -> String {
    let mut s = format!(
        "zonewatch: read {} packets ({} IP, {} not IP, {} undecodable), {} IP bytes, {} flows (peak {} live, {} evicted)",
        stats.packets,
        stats.ip_packets,
        stats.non_ip,
        stats.error_count(),
        stats.ip_bytes,
        table.flows,
        table.peak_live,
        table.evicted
    );
    match (stats.first, stats.last) {
        (Some(f), Some(l)) => {
            let secs = (l.0 - f.0) as f64 / 1e9;
            s.push_str(&format!(", span {f} .. {l} ({secs:.1} s)"));
        }
        _ => s.push_str(", span: no IP packets"),
    }
    let mut problems: Vec<String> = stats
        .decode_errors
        .iter()
        .map(|(e, n)| format!("{} {}", e, n))
        .collect();
    for (layer, n) in &stats.snaplen_cut {
        problems.push(format!("{} header cut by snaplen {}", layer.as_str(), n));
    }
    if table.orphan_fragments > 0 {
        problems.push(format!(
            "fragments without their first {}",
            table.orphan_fragments
        ));
    }
    problems.extend(stats.capture_errors.iter().cloned());
    if problems.is_empty() {
        s.push_str(", problems: none");
    } else {
        s.push_str(&format!(", problems: {}", problems.join("; ")));
    }
    s
}

/// `zonewatch flows`.
pub fn flows(a: FlowsArgs) -> Result<ExitCode> {
    let inputs = expand_inputs(&a.input)?;
    let stdout = io::stdout();
    let mut w = BufWriter::with_capacity(1 << 16, stdout.lock());
    match a.format {
        FlowFormat::Csv => writeln!(w, "{}", render::FLOW_CSV_HEADER)?,
        FlowFormat::Table => render::flow_table_header(&mut w)?,
        FlowFormat::Jsonl => {}
    }
    let format = a.format;
    let mut sink = |out: &[FlowRecord], _: &mut Vec<u64>| -> Result<()> {
        for f in out {
            match format {
                FlowFormat::Jsonl => render::flow_jsonl(&mut w, f)?,
                FlowFormat::Csv => render::flow_csv(&mut w, f)?,
                FlowFormat::Table => render::flow_table_row(&mut w, f)?,
            }
        }
        Ok(())
    };
    let (stats, table) = read_all(&a.input, &inputs, None, None, &mut sink)?;
    w.flush()?;
    eprintln!("{}", summary(&stats, &table));
    Ok(ExitCode::SUCCESS)
}

fn today() -> (i32, u32, u32) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (y, m, d) = Timestamp::from_secs_nanos(i64::try_from(secs).unwrap_or(0), 0).date();
    (i32::try_from(y).unwrap_or(1970), m, d)
}

/// `zonewatch analyze`.
pub fn analyze(a: AnalyzeArgs) -> Result<ExitCode> {
    let fail_on = match &a.fail_on {
        Some(s) => Some(s.parse::<Severity>().map_err(|_| {
            anyhow::anyhow!("--fail-on {s:?}: expected info, low, medium, high or critical")
        })?),
        None => None,
    };
    let policy = Policy::load(&a.zones)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "zones file {} is not usable; `zonewatch zones check {}` lists every problem",
                a.zones.display(),
                a.zones.display()
            )
        })?;
    let inputs = expand_inputs(&a.input)?;
    if let Some(dir) = &a.evidence_dir {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create evidence folder {}", dir.display()))?;
    }
    let config = AnalyzerConfig {
        max_evidence: a.max_evidence.max(1),
        max_initiators: 10,
        today: today(),
    };
    let mut analyzer = Analyzer::new(&policy, config);
    let mut evidence = a.evidence_dir.as_ref().map(|_| Evidence {
        per_flow: a.evidence_packets.max(1),
        flows: Default::default(),
        kept: Default::default(),
    });
    let (stats, table) = {
        let analyzer_ref = &mut analyzer;
        let mut sink = |out: &[FlowRecord], kept: &mut Vec<u64>| -> Result<()> {
            for f in out {
                if analyzer_ref.observe(f) {
                    kept.push(f.id);
                }
            }
            Ok(())
        };
        let policy_ref = &policy;
        let mut suspect = |p: &zonewatch_collector::packet::PacketInfo| {
            zonewatch_analyzer::may_raise_finding(policy_ref, p)
        };
        read_all(
            &a.input,
            &inputs,
            Some(&mut suspect),
            evidence.as_mut(),
            &mut sink,
        )?
    };
    let report = analyzer.finish();
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    let mut shown: Vec<Finding> = report.findings.clone();
    if a.show_suppressed {
        shown.extend(report.suppressed.iter().cloned());
    }
    match a.format {
        FindingFormat::Table => render::findings_table(&mut w, &shown)?,
        FindingFormat::Json => render::findings_json(&mut w, &shown)?,
        FindingFormat::Jsonl => render::findings_jsonl(&mut w, &shown)?,
        FindingFormat::Markdown => render::findings_markdown(&mut w, &shown)?,
    }
    w.flush()?;
    if let (Some(dir), Some(ev)) = (&a.evidence_dir, &evidence) {
        write_evidence(dir, &shown, ev)?;
    }
    eprintln!("{}", summary(&stats, &table));
    eprintln!("{}", findings_summary(&report));
    let failing = match fail_on {
        Some(t) => report.findings.iter().any(|f| f.severity >= t),
        None => false,
    };
    Ok(if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn findings_summary(r: &Report) -> String {
    let mut by: std::collections::BTreeMap<Severity, usize> = Default::default();
    for f in &r.findings {
        *by.entry(f.severity).or_insert(0) += 1;
    }
    let parts: Vec<String> = by.iter().rev().map(|(s, n)| format!("{n} {s}")).collect();
    let mut s = format!(
        "zonewatch: {} findings{}, {} suppressed; {} flows: {} allowed, {} flagged, {} local",
        r.findings.len(),
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        },
        r.suppressed.len(),
        r.stats.flows,
        r.stats.allowed,
        r.stats.flagged,
        r.stats.local
    );
    let expired: Vec<String> = r
        .findings
        .iter()
        .filter_map(|f| {
            f.expired_suppression
                .as_ref()
                .map(|n| format!("{} (until {})", n.rule, n.until.as_deref().unwrap_or("-")))
        })
        .collect();
    if !expired.is_empty() {
        s.push_str(&format!(
            "; expired suppressions no longer applied: {}",
            expired.join(", ")
        ));
    }
    s
}

fn write_evidence(dir: &Path, findings: &[Finding], ev: &Evidence) -> Result<()> {
    for f in findings {
        let mut packets: Vec<&Kept> = f
            .evidence
            .iter()
            .filter_map(|e| ev.kept.get(&e.id))
            .flatten()
            .collect();
        if packets.is_empty() {
            continue;
        }
        packets.sort_by_key(|k| k.ts);
        let linktype = packets[0].linktype;
        let path: PathBuf = dir.join(format!("{}-{}.pcap", f.id, f.kind));
        let file = fs::File::create(&path)
            .with_context(|| format!("cannot write evidence {}", path.display()))?;
        let mut pw = PcapWriter::new(BufWriter::new(file), linktype, 262_144)?;
        for k in packets.iter().filter(|k| k.linktype == linktype) {
            pw.write_packet(k.ts, k.wire_len, &k.data)?;
        }
        pw.finish()?;
    }
    Ok(())
}

/// `zonewatch zones check|explain`.
pub fn zones(z: ZonesCommand) -> Result<ExitCode> {
    match z {
        ZonesCommand::Check { file } => match Policy::load(&file) {
            Ok(p) => {
                println!(
                    "{}: ok ({} zones)",
                    file.display(),
                    p.zones().iter().filter(|z| !z.implicit).count()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
        ZonesCommand::Explain {
            file,
            src,
            dst,
            service,
        } => {
            let policy = Policy::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let q = PathQuery::parse(&src, &dst, &service).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", policy.explain(&q));
            Ok(ExitCode::SUCCESS)
        }
    }
}
