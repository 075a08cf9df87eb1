//! Reading the inputs (captures, flow logs, folders, stdin, UDP listeners)
//! into one engine, with progress, evidence buffering and the summary.

use std::fs;
use std::io::{self, IsTerminal};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use zonewatch_collector::FlowRecord;
use zonewatch_collector::capture::{CaptureReader, CapturedPacket};
use zonewatch_collector::exports::ExporterRange;
use zonewatch_collector::ingest::{self, Engine, Input, Opened, ReadStats};
use zonewatch_collector::packet::{Decoded, PacketInfo, decode};
use zonewatch_collector::table::{Ingested, TableConfig};
use zonewatch_collector::time::Timestamp;

use crate::flags::{InputArgs, Progress};
use crate::listen;

/// Receives ended flows; pushes the ids of flows kept as finding evidence.
pub type FlowSink<'a> = dyn FnMut(&[FlowRecord], &mut Vec<u64>) -> Result<()> + 'a;

/// Decides, when a packet starts a flow, whether to keep its packets as evidence.
pub type Suspect<'a> = dyn FnMut(&PacketInfo) -> bool + 'a;

fn table_config(a: &InputArgs) -> TableConfig {
    TableConfig {
        max_flows: a.max_flows.max(16),
        tcp_idle_secs: a.tcp_idle_secs,
        udp_idle_secs: a.udp_idle_secs,
        active_secs: a.active_secs,
        ..TableConfig::default()
    }
}

/// The engine the arguments describe.
pub fn engine(a: &InputArgs, unidirectional: bool) -> Result<Engine> {
    let allowed = a
        .allow_exporter
        .iter()
        .map(|c| ExporterRange::parse(c).map_err(|e| anyhow::anyhow!("--allow-exporter {e}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Engine {
        unidirectional,
        ..Engine::new(
            table_config(a),
            a.default_sampling,
            allowed,
            a.export_ports.clone(),
        )
    })
}

/// Resolves the named inputs.
pub fn expand_inputs(a: &InputArgs) -> Result<Vec<Input>> {
    a.inputs
        .iter()
        .map(|p| ingest::expand(p).with_context(|| format!("cannot open input {}", p.display())))
        .collect()
}

fn progress_bar(a: &InputArgs, inputs: &[Input]) -> Option<ProgressBar> {
    if a.progress == Progress::Never || !io::stderr().is_terminal() || inputs.is_empty() {
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
pub struct Kept {
    pub ts: Timestamp,
    pub linktype: u32,
    pub wire_len: u32,
    pub data: Vec<u8>,
}

/// Packet buffers of the flows that may become evidence.
pub struct Evidence {
    pub per_flow: usize,
    pub flows: std::collections::HashMap<u64, Vec<Kept>>,
    pub kept: std::collections::HashMap<u64, Vec<Kept>>,
}

impl Evidence {
    /// Buffers for at most `per_flow` packets of each suspect flow.
    pub fn new(per_flow: usize) -> Evidence {
        Evidence {
            per_flow: per_flow.max(1),
            flows: Default::default(),
            kept: Default::default(),
        }
    }

    fn packet(
        &mut self,
        pkt: &CapturedPacket<'_>,
        ing: &Ingested,
        suspect: Option<&mut Suspect<'_>>,
    ) {
        if ing.new {
            // Decide once per flow whether its packets are worth keeping.
            let keep = match (suspect, decode(pkt.linktype, pkt.data)) {
                (Some(f), Decoded::Ip(info)) => f(&info),
                _ => false,
            };
            if keep {
                self.flows.insert(ing.flow_id, Vec::new());
            }
        }
        if let Some(buf) = self.flows.get_mut(&ing.flow_id)
            && buf.len() < self.per_flow
        {
            buf.push(Kept {
                ts: pkt.ts,
                linktype: pkt.linktype,
                wire_len: pkt.wire_len,
                data: pkt.data.to_vec(),
            });
        }
    }

    /// Ended flows release their buffers, unless a finding keeps them.
    fn settle(&mut self, ended: &[FlowRecord], kept_ids: &[u64]) {
        for f in ended {
            if let Some(buf) = self.flows.remove(&f.id)
                && kept_ids.contains(&f.id)
            {
                self.kept.insert(f.id, buf);
            }
        }
    }
}

/// Hands ended flows to the sink, settles evidence, remembers the first sink error.
pub struct Delivery<'s, 'e> {
    pub sink: &'s mut FlowSink<'s>,
    pub evidence: Option<&'e mut Evidence>,
    pub error: Option<anyhow::Error>,
    kept_ids: Vec<u64>,
}

impl<'s, 'e> Delivery<'s, 'e> {
    pub fn new(sink: &'s mut FlowSink<'s>, evidence: Option<&'e mut Evidence>) -> Self {
        Delivery {
            sink,
            evidence,
            error: None,
            kept_ids: Vec::new(),
        }
    }

    /// Delivers and clears `out`.
    pub fn deliver(&mut self, out: &mut Vec<FlowRecord>) {
        if self.error.is_none()
            && let Err(e) = (self.sink)(out, &mut self.kept_ids)
        {
            self.error = Some(e);
        }
        if let Some(ev) = self.evidence.as_deref_mut() {
            ev.settle(out, &self.kept_ids);
        }
        self.kept_ids.clear();
        out.clear();
    }

    /// The sink's first error, if any.
    pub fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Reads every input, then the listeners (if any), through `engine`.
pub fn read_all(
    a: &InputArgs,
    inputs: &[Input],
    engine: &mut Engine,
    mut suspect: Option<&mut Suspect<'_>>,
    delivery: &mut Delivery<'_, '_>,
) -> Result<ReadStats> {
    let mut stats = ReadStats::default();
    let bar = progress_bar(a, inputs);
    let mut done_bytes = 0u64;
    let single = inputs.len() == 1 && inputs[0].files().len() == 1 && a.listen.is_empty();
    for input in inputs {
        let source = engine.add_source(&input.source_name());
        for file in input.files() {
            let name = file.map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
            let opened = match file {
                Some(p) => ingest::open_input(p).with_context(|| format!("cannot read {name}"))?,
                None => CaptureReader::from_reader(Box::new(io::stdin()), "stdin")
                    .map(|r| Opened::Capture(Box::new(r))),
            };
            let mut reader = match opened {
                Ok(Opened::FlowLog(log)) => {
                    ingest::read_flow_log(log, &name, source, engine, &mut stats, &mut |out| {
                        delivery.deliver(out)
                    });
                    delivery.check()?;
                    continue;
                }
                Ok(Opened::Capture(r)) => *r,
                Err(e) => {
                    if single {
                        bail!("{}", ingest::not_an_input(&name, &e));
                    }
                    tracing::error!(input = %name, error = %e, "cannot read input, skipped");
                    stats.capture_errors.push(format!("{name}: {e}"));
                    continue;
                }
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
            let res = if delivery.evidence.is_some() {
                let delivery_cell = std::cell::RefCell::new(&mut *delivery);
                let mut on_packet = |pkt: &CapturedPacket<'_>, ing: &Ingested| {
                    if let Some(ev) = delivery_cell.borrow_mut().evidence.as_deref_mut() {
                        ev.packet(pkt, ing, suspect.as_deref_mut());
                    }
                };
                let mut on_flows =
                    |out: &mut Vec<FlowRecord>| delivery_cell.borrow_mut().deliver(out);
                ingest::read_capture(
                    &mut reader,
                    source,
                    engine,
                    &mut stats,
                    &mut on_packet,
                    &mut on_flows,
                    &mut |b, p| on_progress(b, p),
                )
            } else {
                ingest::read_capture_pipelined(
                    &mut reader,
                    source,
                    engine,
                    &mut stats,
                    &mut |out| delivery.deliver(out),
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
            delivery.check()?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !a.listen.is_empty() {
        listen::run(a, engine, &mut stats, delivery)?;
    }
    engine.flush_each(&mut |chunk| delivery.deliver(chunk));
    delivery.check()?;
    Ok(stats)
}

/// The one-line summary of what was read (stderr).
pub fn summary(stats: &ReadStats, engine: &Engine) -> String {
    let table = engine.table.stats();
    let st = engine.stitcher.stats();
    let mut parts = Vec::new();
    // Packets are reported when there were any, or when there is nothing else.
    if stats.packets > 0 || st.records == 0 {
        parts.push(format!(
            "read {} packets ({} IP, {} not IP, {} undecodable), {} IP bytes, {} flows (peak {} live, {} evicted)",
            stats.packets,
            stats.ip_packets,
            stats.non_ip,
            stats.error_count(),
            stats.ip_bytes,
            table.flows,
            table.peak_live,
            table.evicted
        ));
    }
    if st.records > 0 {
        parts.push(format!(
            "{} export records ({} datagrams, {} flow-log lines) into {} flows ({} with both directions)",
            st.records, stats.export_datagrams, stats.flow_log_records, st.flows, st.stitched
        ));
    }
    let mut s = format!("zonewatch: {}", parts.join(", "));
    match (stats.first, stats.last) {
        (Some(f), Some(l)) => {
            let secs = (l.0 - f.0) as f64 / 1e9;
            s.push_str(&format!(", span {f} .. {l} ({secs:.1} s)"));
        }
        _ => s.push_str(", span: nothing read"),
    }
    let mut problems: Vec<String> = stats
        .decode_errors
        .iter()
        .map(|(e, n)| format!("{e} {n}"))
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
    for (reason, n) in &stats.flow_log_errors {
        problems.push(format!("flow-log {reason} {n}"));
    }
    problems.extend(stats.capture_errors.iter().cloned());
    if problems.is_empty() {
        s.push_str(", problems: none");
    } else {
        s.push_str(&format!(", problems: {}", problems.join("; ")));
    }
    s
}

/// One line per exporter (stderr): records, templates, sampling, sequence gaps, errors.
pub fn exporter_summary(engine: &Engine) -> Vec<String> {
    let templates = engine.exports.templates().stats();
    let held = |a: std::net::IpAddr| {
        u64::try_from(engine.exports.templates().exporter_pending(a)).unwrap_or(0)
    };
    engine
        .exports
        .exporters()
        .iter()
        .map(|(addr, c)| {
            let t = templates.get(addr);
            let errors: Vec<String> = c.errors.iter().map(|(r, n)| format!("{r} {n}")).collect();
            format!(
                "zonewatch: exporter {addr} ({}): {} datagrams, {} records, {} templates, sampling {}, {} sequence gaps, {} data sets without template ({} dropped, {} still held), {} counter samples, {} not allowed, errors: {}",
                c.protocols.iter().copied().collect::<Vec<_>>().join("+"),
                c.datagrams,
                c.records,
                t.map_or(0, |t| t.templates + t.options_templates),
                c.sampling.map_or("unknown".to_string(), |s| format!("1:{s}")),
                t.map_or(0, |t| t.sequence_gaps),
                t.map_or(0, |t| t.dropped_no_template) + held(*addr),
                t.map_or(0, |t| t.dropped_no_template),
                held(*addr),
                c.counter_samples,
                c.not_allowed,
                if errors.is_empty() { "none".to_string() } else { errors.join(", ") }
            )
        })
        .collect()
}
