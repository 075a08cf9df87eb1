//! The verbs, wired from the library crates.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use zonewatch_analyzer::{Analyzer, AnalyzerConfig, Finding, Report, Severity, render};
use zonewatch_collector::FlowRecord;
use zonewatch_collector::pcap_writer::PcapWriter;
use zonewatch_zones::{PathQuery, Policy};

use crate::flags::{AnalyzeArgs, FindingFormat, FlowFormat, FlowsArgs, ZonesCommand};
use crate::read::{self, Delivery, Evidence, Kept};

/// `zonewatch flows`.
pub fn flows(a: FlowsArgs) -> Result<ExitCode> {
    let inputs = read::expand_inputs(&a.input)?;
    let stdout = io::stdout();
    let mut w = BufWriter::with_capacity(1 << 16, stdout.lock());
    match a.format {
        FlowFormat::Csv => writeln!(w, "{}", render::FLOW_CSV_HEADER)?,
        FlowFormat::Table => render::flow_table_header(&mut w)?,
        FlowFormat::Jsonl => {}
    }
    let format = a.format;
    // Listening, flows are shown as they end, not when the buffer fills.
    let live = !a.input.listen.is_empty();
    let mut sink = |out: &[FlowRecord], _: &mut Vec<u64>| -> Result<()> {
        for f in out {
            match format {
                FlowFormat::Jsonl => render::flow_jsonl(&mut w, f)?,
                FlowFormat::Csv => render::flow_csv(&mut w, f)?,
                FlowFormat::Table => render::flow_table_row(&mut w, f)?,
            }
        }
        if live {
            w.flush()?;
        }
        Ok(())
    };
    let mut engine = read::engine(&a.input, a.unidirectional)?;
    let stats = {
        let mut delivery = Delivery::new(&mut sink, None);
        read::read_all(&a.input, &inputs, &mut engine, None, &mut delivery)?
    };
    w.flush()?;
    eprintln!("{}", read::summary(&stats, &engine));
    for line in read::exporter_summary(&engine) {
        eprintln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Today's date (UTC), for suppression expiry.
pub fn today() -> (i32, u32, u32) {
    let (y, m, d) = crate::listen::now().date();
    (i32::try_from(y).unwrap_or(1970), m, d)
}

/// Loads a zones file; the error says how to see every problem.
pub fn load_policy(path: &Path) -> Result<Policy> {
    Policy::load(path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "zones file {} is not usable; `zonewatch zones check {}` lists every problem",
                path.display(),
                path.display()
            )
        })
}

/// `zonewatch analyze`.
pub fn analyze(a: AnalyzeArgs) -> Result<ExitCode> {
    let fail_on = match &a.fail_on {
        Some(s) => Some(s.parse::<Severity>().map_err(|_| {
            anyhow::anyhow!("--fail-on {s:?}: expected info, low, medium, high or critical")
        })?),
        None => None,
    };
    let policy = load_policy(&a.zones)?;
    let inputs = read::expand_inputs(&a.input)?;
    if let Some(dir) = &a.evidence_dir {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create evidence folder {}", dir.display()))?;
    }
    let config = AnalyzerConfig {
        max_evidence: a.max_evidence.max(1),
        max_initiators: 10,
        today: today(),
    };
    let policy = std::sync::Arc::new(policy);
    let mut analyzer = Analyzer::new(policy.clone(), config);
    let mut evidence = a
        .evidence_dir
        .as_ref()
        .map(|_| Evidence::new(a.evidence_packets));
    let mut engine = read::engine(&a.input, false)?;
    let stats = {
        let analyzer_ref = &mut analyzer;
        // Listening with JSON Lines: each finding is printed when first
        // raised; the final report repeats every finding with its totals
        // (a later line supersedes an earlier one with the same id).
        let stream = !a.input.listen.is_empty() && a.format == FindingFormat::Jsonl;
        let mut sink = |out: &[FlowRecord], kept: &mut Vec<u64>| -> Result<()> {
            for f in out {
                if analyzer_ref.observe(f) {
                    kept.push(f.id);
                }
            }
            if stream {
                let fresh = analyzer_ref.drain_new();
                if !fresh.is_empty() {
                    let mut w = io::stdout().lock();
                    render::findings_jsonl(&mut w, &fresh)?;
                    w.flush()?;
                }
            }
            Ok(())
        };
        let policy_ref = &policy;
        let mut suspect = |p: &zonewatch_collector::packet::PacketInfo| {
            zonewatch_analyzer::may_raise_finding(policy_ref, p)
        };
        let mut delivery = Delivery::new(&mut sink, evidence.as_mut());
        read::read_all(
            &a.input,
            &inputs,
            &mut engine,
            Some(&mut suspect),
            &mut delivery,
        )?
    };
    let report = analyzer.finish();
    let stdout = io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    // Copied only to add the suppressed ones (a busy capture's findings
    // carry thousands of sample flows).
    let shown: std::borrow::Cow<'_, [Finding]> = if a.show_suppressed {
        let mut all = report.findings.clone();
        all.extend(report.suppressed.iter().cloned());
        all.into()
    } else {
        (&report.findings[..]).into()
    };
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
    eprintln!("{}", read::summary(&stats, &engine));
    for line in read::exporter_summary(&engine) {
        eprintln!("{line}");
    }
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
        ZonesCommand::Suggest {
            db,
            zones,
            min_flows,
        } => {
            use zonewatch_analyzer::store::Reader;
            use zonewatch_analyzer::suggest::{SuggestOptions, suggest};
            let reader = Reader::open(&db)?;
            let zones = match zones {
                Some(z) => z,
                None => match reader.meta("zones_file")? {
                    Some(z) => PathBuf::from(z),
                    None => anyhow::bail!(
                        "{} does not say which zones file the monitor used; pass --zones FILE",
                        db.display()
                    ),
                },
            };
            let policy = load_policy(&zones)?;
            let opts = SuggestOptions {
                min_flows,
                ..SuggestOptions::default()
            };
            print!("{}", suggest(&reader, &policy, &opts)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
