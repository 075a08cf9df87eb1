//! `zonewatch monitor`: every configured source at once, into the store.
//!
//! Threads and what joins them (all channels bounded):
//! - sources: one thread per live interface, a tokio runtime for the UDP
//!   listeners, `/metrics` and signals, a folder watcher per watched folder
//!   feeding one file-reading thread; each sends [`Msg`]s to
//! - the engine (this thread): flow tables, the analyzer, checkpoints,
//!   visibility checks; every commit interval it hands one [`Batch`] to
//! - the writer thread, the store's only writer, one transaction a batch.
//!
//! A watched file's flows and its ledger row go into the same batch, so a
//! crash leaves either both or neither. Live flows are reported in parts
//! (at their first evidence, at every checkpoint, when they end), each part
//! carrying the counters since the previous one, so a `kill -9` loses at
//! most one checkpoint interval of a long flow and nothing is counted twice.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use zonewatch_analyzer::store::{
    Aggregate, Batch, FileRow, PathObservation, Reader, Store, StoreError,
};
use zonewatch_analyzer::{Analyzer, AnalyzerConfig, FindingDelta, path_query};
use zonewatch_collector::FlowRecord;
use zonewatch_collector::exports::{ExportKind, Outcome};
use zonewatch_collector::ingest::{self, Engine, EngineSource, Opened, ReadStats};
use zonewatch_collector::packet::{Decoded, decode};
use zonewatch_collector::table::TableConfig;
use zonewatch_collector::time::Timestamp;
use zonewatch_collector::watch::{FileWatcher, FolderWatcher, ReadyFile, WatchConfig, WatchEvent};
use zonewatch_dashboards::metrics::{Counter, ExporterLabel, FindingLabel, Metrics};
use zonewatch_zones::Policy;

use crate::config::{self, Settings, SourceSettings};
use crate::flags::MonitorArgs;
use crate::listen;

/// What the sources hand to the engine.
enum Msg {
    /// A frame captured on a live interface.
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    Packet {
        source: usize,
        ts: Timestamp,
        linktype: u32,
        data: Vec<u8>,
    },
    /// A UDP datagram received by an export listener.
    Datagram {
        source: usize,
        exporter: IpAddr,
        received_at: Timestamp,
        data: Vec<u8>,
    },
    /// A watched file, read whole into flows.
    File(Box<FileRead>),
    /// The zones file changed.
    Reload,
}

/// Zones a policy declares (the implicit ones aside).
fn declared(p: &Policy) -> usize {
    p.zones().iter().filter(|z| !z.implicit).count()
}

/// Reads a live source's kernel drop count.
type KernelDrops = Box<dyn Fn() -> u64 + Send>;

/// A watched file, read.
struct FileRead {
    source: usize,
    row: FileRow,
    flows: Vec<FlowRecord>,
    stats: ReadStats,
}

/// `zonewatch monitor`.
pub fn run(a: MonitorArgs) -> Result<ExitCode> {
    let settings = match config::load(&a.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            bail!(
                "config file {} is not usable (every problem is listed above)",
                a.config.display()
            );
        }
    };
    if a.dump_config {
        print!("{}", settings.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    Monitor::start(settings)?.run()?;
    Ok(ExitCode::SUCCESS)
}

/// Counters reported so far for a live flow (monitor parts).
#[derive(Debug, Clone, Copy, Default)]
struct Reported {
    packets: u64,
    bytes: u64,
    rpackets: u64,
    rbytes: u64,
    /// Whether the aggregates counted it as answered already.
    answered: bool,
}

/// Counters of one flow part beyond these are taken for garbage (a
/// corrupt or hostile export), counted as a decode error and dropped: no
/// link carries 2^40 packets or 2^56 bytes between two checkpoints.
const MAX_PART_PACKETS: u64 = 1 << 40;
const MAX_PART_BYTES: u64 = 1 << 56;

/// Per-source state of the engine.
struct SourceState {
    name: String,
    kind: &'static str,
    /// Flow tables of this source (each source has its own engine, so
    /// exporters, timeouts and allow lists never mix).
    engine: Engine,
    handle: EngineSource,
    /// Last time anything arrived.
    last_activity: Instant,
    silent_reported: bool,
    flows_ended: u64,
    flows_answered: u64,
    one_way_reported: bool,
    /// Exporters already reported for missing templates / unknown sampling.
    gaps_reported: HashSet<(IpAddr, &'static str)>,
    default_sampling: u32,
    /// This source's counters on /metrics (looked up once, not per packet).
    packets: Counter,
    bytes: Counter,
    flows: Counter,
}

type AggKey = (i64, usize, String, String, u8, u16, &'static str);

struct Monitor {
    settings: Settings,
    metrics: Arc<Metrics>,
    analyzer: Analyzer,
    sources: Vec<SourceState>,
    rx: Receiver<Msg>,
    stop: Arc<AtomicBool>,
    writer_tx: Option<SyncSender<(Batch, Instant)>>,
    writer: Option<JoinHandle<bool>>,
    helpers: Vec<JoinHandle<()>>,
    runtime: Option<(JoinHandle<()>, tokio::sync::watch::Sender<bool>)>,
    _watchers: Vec<FolderWatcher>,
    /// Per live source: its kernel drop counter, and how much of it /metrics has.
    kernel_drops: Vec<(usize, KernelDrops, u64)>,
    /// The zones file changed and is not reloaded yet.
    reload_pending: Arc<AtomicBool>,
    _zones_watcher: Option<FileWatcher>,
    /// Parts of live flows reported so far, by (source, flow id).
    reported: HashMap<(usize, u64), Reported>,
    /// Live flows that could raise a finding, not yet answered.
    suspects: HashSet<(usize, u64)>,
    aggregates: HashMap<AggKey, Aggregate>,
    files: Vec<FileRow>,
    held_deltas: Vec<FindingDelta>,
    held_paths: Vec<PathObservation>,
    baseline_saved: bool,
    oldest_pending: Option<Instant>,
    started: Instant,
}

fn table_config(s: &Settings) -> TableConfig {
    TableConfig {
        max_flows: s.max_flows.max(16),
        tcp_idle_secs: s.tcp_idle_secs,
        udp_idle_secs: s.udp_idle_secs,
        active_secs: s.active_secs,
        ..TableConfig::default()
    }
}

impl Monitor {
    fn start(settings: Settings) -> Result<Monitor> {
        let policy = Arc::new(crate::run::load_policy(&settings.zones)?);
        let mut store = Store::open(&settings.store)
            .with_context(|| format!("cannot open the store {}", settings.store.display()))?;
        let reader = Reader::open(&settings.store)?;
        let known: Vec<_> = reader
            .paths()?
            .into_iter()
            .map(|p| (p.src_zone, p.dst_zone, p.proto, p.dport))
            .collect();
        let baseline_start = reader
            .meta("baseline_start")?
            .and_then(|v| v.parse::<i64>().ok())
            .map(Timestamp);
        let ingested: HashSet<String> = reader.files()?.into_iter().map(|f| f.sha256).collect();
        drop(reader);
        let zones_abs = std::fs::canonicalize(&settings.zones).unwrap_or(settings.zones.clone());
        store.commit(&Batch {
            meta: vec![("zones_file".into(), zones_abs.display().to_string())],
            ..Batch::default()
        })?;
        let mut analyzer = Analyzer::new(
            policy,
            AnalyzerConfig {
                max_evidence: 5,
                max_initiators: 10,
                today: crate::run::today(),
            },
        );
        analyzer.track_paths(known, baseline_start, settings.baseline_secs);
        let metrics = Arc::new(Metrics::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel::<Msg>(16_384);

        // Sources.
        let mut sources = Vec::new();
        let mut sockets = Vec::new();
        let mut helpers = Vec::new();
        let mut watchers = Vec::new();
        let mut kernel_drops = Vec::new();
        let (file_tx, file_rx) = mpsc::channel::<(usize, WatchEvent)>();
        for (i, s) in settings.sources.iter().enumerate() {
            let (kind, sampling, allowed) = match s {
                SourceSettings::Live { .. } => ("live", 1, Vec::new()),
                SourceSettings::Export {
                    kind,
                    default_sampling,
                    allow_exporters,
                    ..
                } => (*kind, *default_sampling, allow_exporters.clone()),
                SourceSettings::Watch { .. } => ("watch", 1, Vec::new()),
            };
            let mut engine = Engine::new(table_config(&settings), sampling, allowed, None);
            let handle = engine.add_source(s.name());
            sources.push(SourceState {
                name: s.name().to_string(),
                kind,
                engine,
                handle,
                last_activity: Instant::now(),
                silent_reported: false,
                flows_ended: 0,
                flows_answered: 0,
                one_way_reported: false,
                gaps_reported: HashSet::new(),
                default_sampling: sampling,
                packets: metrics
                    .packets
                    .get_or_create(&Metrics::source(s.name()))
                    .clone(),
                bytes: metrics
                    .bytes
                    .get_or_create(&Metrics::source(s.name()))
                    .clone(),
                flows: metrics
                    .flows
                    .get_or_create(&Metrics::source(s.name()))
                    .clone(),
            });
            match s {
                SourceSettings::Live {
                    name,
                    interface,
                    filter,
                    snaplen,
                    promiscuous,
                } => {
                    let (thread, drops) = spawn_live(
                        i,
                        name,
                        interface,
                        filter.clone(),
                        *snaplen,
                        *promiscuous,
                        tx.clone(),
                        stop.clone(),
                        metrics.clone(),
                    )?;
                    helpers.push(thread);
                    kernel_drops.push((i, drops, 0));
                }
                SourceSettings::Export { listen, kind, .. } => {
                    let sock = listen::bind(*listen).with_context(|| {
                        format!("cannot listen for {kind} on {listen}: is another collector using the port?")
                    })?;
                    tracing::info!(source = s.name(), address = %sock.local_addr()?, "listening");
                    sockets.push((i, sock));
                }
                SourceSettings::Watch {
                    path, settle_ms, ..
                } => {
                    let (ftx, fi) = (file_tx.clone(), i);
                    let (etx, erx) = mpsc::channel::<WatchEvent>();
                    let w = FolderWatcher::start(
                        WatchConfig {
                            path: path.clone(),
                            settle: Duration::from_millis(*settle_ms),
                        },
                        etx,
                    )
                    .with_context(|| format!("cannot watch {}", path.display()))?;
                    tracing::info!(source = s.name(), path = %path.display(), "watching");
                    helpers.push(thread::spawn(move || {
                        for ev in erx {
                            if ftx.send((fi, ev)).is_err() {
                                break;
                            }
                        }
                    }));
                    watchers.push(w);
                }
            }
        }
        drop(file_tx);
        {
            let (tx, stop, names, tc) = (
                tx.clone(),
                stop.clone(),
                settings
                    .sources
                    .iter()
                    .map(|s| s.name().to_string())
                    .collect::<Vec<_>>(),
                table_config(&settings),
            );
            helpers.push(thread::spawn(move || {
                read_files(file_rx, tx, &stop, &names, tc, ingested)
            }));
        }
        let reload_pending = Arc::new(AtomicBool::new(false));
        let zones_watcher = {
            let (tx, pending) = (tx.clone(), reload_pending.clone());
            match FileWatcher::start(
                &settings.zones,
                Duration::from_millis(300),
                Box::new(move || {
                    // The flag is what counts (a full queue cannot lose an
                    // edit); the message only wakes the engine up.
                    pending.store(true, Ordering::Relaxed);
                    let _ = tx.try_send(Msg::Reload);
                }),
            ) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, zones = %settings.zones.display(), "cannot watch the zones file; edits take effect at the next start");
                    None
                }
            }
        };

        // The runtime: UDP listeners, /metrics, signals.
        let metrics_listener = match settings.metrics {
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr).with_context(|| {
                    format!("cannot serve /metrics on {addr}: is the port in use? (set [metrics] listen)")
                })?;
                l.set_nonblocking(true)?;
                tracing::info!(address = %l.local_addr()?, "serving /metrics");
                Some(l)
            }
            None => None,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let rt = {
            let (tx, stop, metrics, names) = (
                tx.clone(),
                stop.clone(),
                metrics.clone(),
                sources.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            );
            thread::spawn(move || {
                runtime.block_on(serve(
                    sockets,
                    metrics_listener,
                    tx,
                    stop,
                    stop_rx,
                    metrics,
                    names,
                ));
            })
        };
        drop(tx);

        // The writer.
        let (writer_tx, writer_rx) = mpsc::sync_channel::<(Batch, Instant)>(64);
        let writer = {
            let metrics = metrics.clone();
            let (retention_secs, stop) = (settings.retention_secs, stop.clone());
            thread::spawn(move || write_batches(store, writer_rx, &metrics, retention_secs, &stop))
        };
        eprintln!(
            "zonewatch: monitoring {} source(s) into {}",
            settings.sources.len(),
            settings.store.display()
        );
        Ok(Monitor {
            baseline_saved: baseline_start.is_some(),
            settings,
            metrics,
            analyzer,
            sources,
            rx,
            stop,
            writer_tx: Some(writer_tx),
            writer: Some(writer),
            helpers,
            runtime: Some((rt, stop_tx)),
            _watchers: watchers,
            kernel_drops,
            reload_pending,
            _zones_watcher: zones_watcher,
            reported: HashMap::new(),
            suspects: HashSet::new(),
            aggregates: HashMap::new(),
            files: Vec::new(),
            held_deltas: Vec::new(),
            held_paths: Vec::new(),
            oldest_pending: None,
            started: Instant::now(),
        })
    }

    fn run(mut self) -> Result<()> {
        let commit_every = Duration::from_millis(self.settings.commit_interval_ms.max(10));
        let checkpoint_every = Duration::from_secs(self.settings.checkpoint_secs.max(1));
        let mut last_commit = Instant::now();
        let mut last_checkpoint = Instant::now();
        let mut last_tick = Instant::now();
        let mut out = Vec::new();
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(msg) => self.handle(msg, &mut out),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.stop.load(Ordering::Relaxed) {
                // Take what the sources already handed over, then stop.
                while let Ok(msg) = self.rx.try_recv() {
                    self.handle(msg, &mut out);
                }
                break;
            }
            if self.reload_pending.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                self.tick(&mut out);
            }
            if last_checkpoint.elapsed() >= checkpoint_every {
                last_checkpoint = Instant::now();
                self.checkpoint();
            }
            if last_commit.elapsed() >= commit_every {
                last_commit = Instant::now();
                self.commit(false)?;
            }
        }
        self.shutdown(&mut out)
    }

    fn handle(&mut self, msg: Msg, out: &mut Vec<FlowRecord>) {
        match msg {
            Msg::Packet {
                source,
                ts,
                linktype,
                data,
            } => self.packet(source, ts, linktype, &data, out),
            Msg::Datagram {
                source,
                exporter,
                received_at,
                data,
            } => self.datagram(source, exporter, received_at, &data, out),
            Msg::File(f) => {
                let FileRead {
                    source,
                    row,
                    flows,
                    stats,
                } = *f;
                self.file(source, row, flows, &stats);
                // The file's ledger row commits with its flows.
                if let Err(e) = self.commit(true) {
                    tracing::error!(error = %e, "cannot hand a batch to the store");
                }
            }
            // Only wakes the loop, which applies a pending reload after every message.
            Msg::Reload => {}
        }
    }

    fn packet(
        &mut self,
        si: usize,
        ts: Timestamp,
        linktype: u32,
        data: &[u8],
        out: &mut Vec<FlowRecord>,
    ) {
        let src = &mut self.sources[si];
        src.last_activity = Instant::now();
        match decode(linktype, data) {
            Decoded::Ip(info) => {
                src.packets.inc();
                src.bytes.inc_by(u64::from(info.ip_len));
                let ing = src.engine.table.ingest(src.handle.table(), ts, &info, out);
                if ing.new && zonewatch_analyzer::may_raise_finding(self.analyzer.policy(), &info) {
                    self.suspects.insert((si, ing.flow_id));
                } else if !ing.forward
                    && self.suspects.remove(&(si, ing.flow_id))
                    && let Some(now) = src.engine.table.current()
                {
                    // First evidence (the SYN-ACK, the first reply): raise now.
                    self.part(si, &now, false);
                }
            }
            Decoded::NotIp(_) => {}
            Decoded::Error(e) => {
                self.metrics
                    .decode_errors
                    .get_or_create(&Metrics::reason(&src.name, &e.to_string()))
                    .inc();
            }
        }
        self.ended(si, out);
    }

    fn datagram(
        &mut self,
        si: usize,
        exporter: IpAddr,
        at: Timestamp,
        data: &[u8],
        out: &mut Vec<FlowRecord>,
    ) {
        let src = &mut self.sources[si];
        let kind = if src.kind == "sflow" {
            ExportKind::Sflow
        } else {
            ExportKind::Netflow
        };
        let mut records = Vec::new();
        match src
            .engine
            .exports
            .datagram(kind, exporter, at, data, &mut records)
        {
            Outcome::Malformed { reason, message } => {
                tracing::debug!(source = %src.name, %exporter, %message, "malformed export datagram");
                self.metrics
                    .decode_errors
                    .get_or_create(&Metrics::reason(&src.name, reason))
                    .inc();
            }
            Outcome::NotAllowed => {
                self.metrics
                    .dropped
                    .get_or_create(&Metrics::reason(&src.name, "exporter-not-allowed"))
                    .inc();
            }
            // Only what decodes keeps a source from being reported silent.
            Outcome::Decoded(_) => src.last_activity = Instant::now(),
            Outcome::NotExport => {}
        }
        for rec in &records {
            let rate = u64::from(if rec.sampling == 0 {
                src.default_sampling
            } else {
                rec.sampling
            });
            let (rp, rb) = rec.reverse.map_or((0, 0), |r| (r.packets, r.bytes));
            src.packets
                .inc_by(rec.packets.saturating_add(rp).saturating_mul(rate));
            src.bytes
                .inc_by(rec.bytes.saturating_add(rb).saturating_mul(rate));
            src.engine.export(src.handle, rec, at, out);
        }
        self.ended(si, out);
    }

    fn file(&mut self, si: usize, row: FileRow, flows: Vec<FlowRecord>, stats: &ReadStats) {
        let name = self.sources[si].name.clone();
        self.sources[si].last_activity = Instant::now();
        // What the file held: its packets, or its export records' and flow
        // log lines' counters (after sampling), as the flows carry them.
        let (packets, bytes) = flows.iter().fold((0u64, 0u64), |(p, b), f| {
            (
                p.saturating_add(f.packets.saturating_add(f.rpackets)),
                b.saturating_add(f.bytes.saturating_add(f.rbytes)),
            )
        });
        self.sources[si].packets.inc_by(packets);
        self.sources[si].bytes.inc_by(bytes);
        for (e, n) in &stats.decode_errors {
            self.metrics
                .decode_errors
                .get_or_create(&Metrics::reason(&name, &e.to_string()))
                .inc_by(*n);
        }
        for f in &flows {
            self.final_part(si, f);
        }
        self.metrics.files_ingested.inc();
        tracing::info!(source = %name, file = %row.path, flows = flows.len(), packets = stats.ip_packets, "file ingested");
        self.files.push(row);
    }

    /// Flows the tables ended: their last part.
    fn ended(&mut self, si: usize, out: &mut Vec<FlowRecord>) {
        for f in out.drain(..) {
            self.final_part(si, &f);
        }
    }

    fn final_part(&mut self, si: usize, f: &FlowRecord) {
        self.suspects.remove(&(si, f.id));
        self.part(si, f, true);
        let src = &mut self.sources[si];
        src.flows_ended += 1;
        if f.answered == Some(true) {
            src.flows_answered += 1;
        }
        src.flows.inc();
    }

    /// One part of a flow: the counters since its previous part.
    fn part(&mut self, si: usize, f: &FlowRecord, last: bool) {
        let id = (si, f.id);
        let prior = if last {
            self.reported.remove(&id)
        } else {
            self.reported.get(&id).copied()
        };
        let first = prior.is_none();
        let p = prior.unwrap_or_default();
        let mut delta = f.clone();
        delta.packets = f.packets.saturating_sub(p.packets);
        delta.bytes = f.bytes.saturating_sub(p.bytes);
        delta.rpackets = f.rpackets.saturating_sub(p.rpackets);
        delta.rbytes = f.rbytes.saturating_sub(p.rbytes);
        let packets = delta.packets.saturating_add(delta.rpackets);
        let bytes = delta.bytes.saturating_add(delta.rbytes);
        if packets > MAX_PART_PACKETS || bytes > MAX_PART_BYTES {
            self.reported.remove(&id);
            self.metrics
                .decode_errors
                .get_or_create(&Metrics::reason(
                    &self.sources[si].name,
                    "implausible-counters",
                ))
                .inc();
            tracing::warn!(source = %self.sources[si].name, src = %f.src, dst = %f.dst, packets, bytes, "flow with implausible counters dropped");
            return;
        }
        let answered_now = f.answered == Some(true) && !p.answered;
        if !last {
            self.reported.insert(
                id,
                Reported {
                    packets: f.packets,
                    bytes: f.bytes,
                    rpackets: f.rpackets,
                    rbytes: f.rbytes,
                    answered: p.answered || f.answered == Some(true),
                },
            );
        }
        if !first && packets == 0 && !answered_now {
            return;
        }
        self.oldest_pending.get_or_insert_with(Instant::now);
        let policy = Arc::clone(self.analyzer.policy());
        let v = policy.evaluate(&path_query(f));
        self.analyzer.observe_part(&delta, &v, first);
        let bucket_ns =
            i64::try_from(self.settings.bucket_secs.max(1)).unwrap_or(300) * 1_000_000_000;
        let bucket = f.last.0.div_euclid(bucket_ns) * bucket_ns;
        let key = (
            bucket,
            si,
            policy.zone(v.src.zone).name.clone(),
            policy.zone(v.dst.zone).name.clone(),
            f.proto.0,
            f.dport,
            v.decision.as_str(),
        );
        let bucket_secs = u32::try_from(self.settings.bucket_secs).unwrap_or(u32::MAX);
        let source = self.sources[si].name.clone();
        let agg = self
            .aggregates
            .entry(key)
            .or_insert_with_key(|k| Aggregate {
                bucket: Timestamp(k.0),
                bucket_secs,
                source,
                src_zone: k.2.clone(),
                dst_zone: k.3.clone(),
                proto: k.4,
                dport: k.5,
                decision: k.6.to_string(),
                flows: 0,
                packets: 0,
                bytes: 0,
                answered: 0,
            });
        if first {
            agg.flows += 1;
        }
        if answered_now {
            agg.answered += 1;
        }
        agg.packets = agg.packets.saturating_add(packets);
        agg.bytes = agg.bytes.saturating_add(bytes);
    }

    /// Every live flow reports what it gathered since its last part.
    fn checkpoint(&mut self) {
        for si in 0..self.sources.len() {
            let mut snap = Vec::new();
            self.sources[si].engine.table.snapshot(&mut snap);
            // Only answered flows: a flow still waiting for its reply would be
            // classified (and counted) as an unanswered attempt, then again
            // as what it becomes. Those are small; they report at their
            // first evidence or when they end.
            for f in snap.iter().filter(|f| f.answered == Some(true)) {
                self.part(si, f, false);
            }
        }
    }

    /// Once a second: wall-clock expiry, gauges, visibility gaps.
    fn tick(&mut self, out: &mut Vec<FlowRecord>) {
        let now = listen::now();
        let mut live_flows = 0;
        for si in 0..self.sources.len() {
            {
                let src = &mut self.sources[si];
                if src.kind == "live" {
                    src.engine.table.advance(now, out);
                }
                src.engine.stitcher.sweep(now, out);
            }
            self.ended(si, out);
            let src = &self.sources[si];
            live_flows += src.engine.table.len() + src.engine.stitcher.len();
            for (addr, t) in src.engine.exports.templates().stats() {
                self.metrics
                    .template_cache_entries
                    .get_or_create(&ExporterLabel {
                        exporter: addr.to_string(),
                    })
                    .set(i64::try_from(t.templates + t.options_templates).unwrap_or(i64::MAX));
            }
            self.visibility(si, now);
        }
        self.metrics
            .flow_table_flows
            .set(i64::try_from(live_flows).unwrap_or(i64::MAX));
        self.count_kernel_drops();
    }

    /// Packets the kernel dropped before libpcap read them (refreshed by
    /// the capture threads about once a second).
    fn count_kernel_drops(&mut self) {
        for (si, drops, reported) in &mut self.kernel_drops {
            let now = drops();
            if now > *reported {
                self.metrics
                    .dropped
                    .get_or_create(&Metrics::reason(&self.sources[*si].name, "kernel"))
                    .inc_by(now - *reported);
                *reported = now;
            }
        }
    }

    fn visibility(&mut self, si: usize, now: Timestamp) {
        let silent_after = Duration::from_secs(self.settings.silent_after_secs.max(1));
        let min_flows = self.settings.one_way_min_flows.max(1);
        let src = &mut self.sources[si];
        let name = src.name.clone();
        let quiet = src.last_activity.elapsed();
        if quiet >= silent_after && self.started.elapsed() >= silent_after {
            if !src.silent_reported {
                src.silent_reported = true;
                let what = match src.kind {
                    "live" => "no packet captured",
                    "watch" => "no new file",
                    _ => "no datagram received",
                };
                self.analyzer.raise_gap(
                    &name,
                    "silent",
                    format!(
                        "{name}: {what} for {} s; check that the tap, exporter or file rotation still works (no findings here does not mean no traffic)",
                        quiet.as_secs()
                    ),
                    now,
                );
            }
        } else if quiet < silent_after {
            src.silent_reported = false;
        }
        if !src.one_way_reported && src.flows_ended >= min_flows && src.flows_answered == 0 {
            src.one_way_reported = true;
            self.analyzer.raise_gap(
                &name,
                "one-way",
                format!(
                    "{name}: {} flows ended and none was seen in both directions; the tap or span port sees one direction only (findings need replies: check the mirror's direction setting)",
                    src.flows_ended
                ),
                now,
            );
        }
        let mut gaps = Vec::new();
        let cache = src.engine.exports.templates();
        for (addr, c) in src.engine.exports.exporters() {
            let pending = cache.exporter_pending(*addr);
            let dropped = cache.stats().get(addr).map_or(0, |t| t.dropped_no_template);
            if pending + usize::try_from(dropped).unwrap_or(usize::MAX) > 0 {
                gaps.push((*addr, "missing-template", format!(
                    "exporter {addr} ({name}): {} data sets wait for a template and {dropped} were dropped without one; the exporter's templates are not arriving (check its template refresh interval)",
                    pending
                )));
            }
            // v5 states its rate in every header (0: unsampled); v9 and
            // IPFIX only in options data, which some exporters never send.
            let learned = cache.stats().get(addr);
            if c.records > 0
                && learned.is_some_and(|t| t.sampling.is_none() && !t.versions.contains(&5))
            {
                gaps.push((*addr, "unknown-sampling", format!(
                    "exporter {addr} ({name}): {} records and no sampling rate announced; counters assume 1:{} (set default_sampling on the source if it samples)",
                    c.records, src.default_sampling
                )));
            }
        }
        for (addr, reason, detail) in gaps {
            if src.gaps_reported.insert((addr, reason)) {
                self.analyzer
                    .raise_gap(&format!("exporter {addr}"), reason, detail, now);
            }
        }
    }

    fn reload(&mut self) {
        let path = self.settings.zones.clone();
        match Policy::load(&path) {
            Ok(p) if declared(&p) == 0 && declared(self.analyzer.policy()) > 0 => {
                tracing::error!(zones_file = %path.display(), "the edited zones file declares no zone (an empty or truncated save?); the previous policy stays in force");
            }
            Ok(p) => {
                let zones = declared(&p);
                let (deltas, paths) = self.analyzer.set_policy(Arc::new(p));
                self.held_deltas.extend(deltas);
                self.held_paths.extend(paths);
                tracing::info!(zones_file = %path.display(), zones, "zones reloaded; the new policy applies from now on");
            }
            Err(e) => {
                tracing::error!(zones_file = %path.display(), "the edited zones file has errors; the previous policy stays in force until they are fixed:\n{e}");
            }
        }
    }

    /// Hands everything gathered since the last batch to the writer.
    fn commit(&mut self, force: bool) -> Result<()> {
        let mut findings = std::mem::take(&mut self.held_deltas);
        findings.extend(self.analyzer.take_deltas());
        let mut observed = std::mem::take(&mut self.held_paths);
        observed.extend(self.analyzer.take_paths());
        let mut meta = Vec::new();
        if !self.baseline_saved
            && let Some(b) = self.analyzer.baseline_start()
        {
            meta.push(("baseline_start".to_string(), b.0.to_string()));
            self.baseline_saved = true;
        }
        let mut aggregates: Vec<Aggregate> = self.aggregates.drain().map(|(_, a)| a).collect();
        aggregates.sort_by_key(|a| a.bucket);
        if !force
            && findings.is_empty()
            && observed.is_empty()
            && aggregates.is_empty()
            && self.files.is_empty()
            && meta.is_empty()
        {
            return Ok(());
        }
        let batch = Batch {
            aggregates,
            findings,
            paths: observed,
            files: std::mem::take(&mut self.files),
            meta,
        };
        let since = self.oldest_pending.take().unwrap_or_else(Instant::now);
        match &self.writer_tx {
            Some(tx) => tx
                .send((batch, since))
                .map_err(|_| anyhow!("the store writer stopped; see the error logged before")),
            None => Ok(()),
        }
    }

    fn shutdown(mut self, out: &mut Vec<FlowRecord>) -> Result<()> {
        tracing::info!("stopping: ending every flow and committing");
        if let Some((rt, stop_tx)) = self.runtime.take() {
            let _ = stop_tx.send(true);
            let _ = rt.join();
        }
        self.stop.store(true, Ordering::Relaxed);
        // Sources stopped: take what they handed over before.
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(msg, out);
        }
        self.count_kernel_drops();
        for si in 0..self.sources.len() {
            let mut ended = Vec::new();
            self.sources[si]
                .engine
                .flush_each(&mut |chunk| ended.append(chunk));
            for f in &ended {
                self.final_part(si, f);
            }
        }
        self.commit(true)?;
        drop(self.writer_tx.take());
        let committed = matches!(self.writer.take().map(JoinHandle::join), Some(Ok(true)));
        let store = self.settings.store.clone();
        let helpers = std::mem::take(&mut self.helpers);
        // Dropping the rest closes the queue and the watchers, so no source
        // thread can wait on a full queue while it is joined.
        drop(self);
        for h in helpers {
            let _ = h.join();
        }
        if !committed {
            bail!(
                "some data could not be committed to {}; see the errors above",
                store.display()
            );
        }
        eprintln!(
            "zonewatch: stopped; everything is committed to {}",
            store.display()
        );
        Ok(())
    }
}

/// Attempts to commit one batch before it is given up (about a minute).
const COMMIT_ATTEMPTS: u32 = 10;

/// The store's one writer: commits each batch in one transaction. A failed
/// commit is retried with backoff (the data stays in memory meanwhile);
/// hourly, buckets older than the retention are deleted.
fn write_batches(
    mut store: Store,
    rx: Receiver<(Batch, Instant)>,
    metrics: &Metrics,
    retention_secs: u64,
    stopping: &AtomicBool,
) -> bool {
    let mut all_committed = true;
    let stdout = Mutex::new(std::io::stdout());
    let mut last_retention: Option<Instant> = None;
    // Retention counts back from the newest data seen, not from the clock:
    // captures of last year dropped into a watched folder are kept too.
    let mut newest: Option<Timestamp> = None;
    for (batch, since) in rx {
        // A clock in the future (one bad exporter or capture) must not age
        // out real data: the newest bucket counts at most a day past now.
        let horizon = Timestamp(listen::now().0.saturating_add(86_400 * 1_000_000_000));
        if let Some(b) = batch.aggregates.iter().map(|a| a.bucket).max() {
            let b = b.min(horizon);
            newest = Some(newest.map_or(b, |n| n.max(b)));
        }
        if let Some(newest) = newest
            && last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600))
        {
            last_retention = Some(Instant::now());
            let keep_ns = i64::try_from(retention_secs)
                .unwrap_or(i64::MAX / 1_000_000_000)
                .saturating_mul(1_000_000_000);
            match store.retain(Timestamp(newest.0.saturating_sub(keep_ns))) {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "retention: old aggregate buckets deleted"),
                Err(e) => tracing::error!(error = %e, "retention failed"),
            }
        }
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            match store.commit(&batch) {
                Ok(o) => break Some(o),
                // A value the store refuses is refused again: no retry.
                Err(e @ StoreError::InvalidValue { .. }) => {
                    tracing::error!(error = %e, aggregates = batch.aggregates.len(), findings = batch.findings.len(), files = batch.files.len(), "a batch holds a value the store cannot take and is lost; its files will be ingested again at the next start");
                    break None;
                }
                // Stopping, a failing store gets two tries a batch, not a
                // minute: SIGTERM must end the process.
                Err(e)
                    if attempt < COMMIT_ATTEMPTS
                        && !(stopping.load(Ordering::Relaxed) && attempt >= 2) =>
                {
                    tracing::error!(error = %e, attempt, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "cannot commit to the store; retrying (is the disk full or the file locked?)");
                    thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(15));
                }
                Err(e) => {
                    tracing::error!(error = %e, aggregates = batch.aggregates.len(), findings = batch.findings.len(), files = batch.files.len(), "a batch could not be committed and is lost; its files will be ingested again at the next start");
                    break None;
                }
            }
        };
        metrics.store_lag_seconds.set(since.elapsed().as_secs_f64());
        let Some(outcome) = outcome else {
            all_committed = false;
            continue;
        };
        let new: HashSet<&str> = outcome.new_findings.iter().map(String::as_str).collect();
        for d in &batch.findings {
            let f = &d.finding;
            if !new.contains(f.id.as_str()) || f.suppressed.is_some() {
                continue;
            }
            metrics
                .findings
                .get_or_create(&FindingLabel {
                    kind: f.kind.to_string(),
                    severity: f.severity.to_string(),
                })
                .inc();
            tracing::warn!(id = %f.id, kind = %f.kind, severity = %f.severity, src_zone = %f.src_zone, dst_zone = %f.dst_zone, service = f.service.as_deref().unwrap_or("-"), "new finding");
            // New findings are the monitor's data: one JSON object per line on stdout.
            if let Ok(mut w) = stdout.lock() {
                let mut line = serde_json::to_string(f).unwrap_or_default();
                line.push('\n');
                let _ = w.write_all(line.as_bytes());
                let _ = w.flush();
            }
        }
        for f in &batch.files {
            tracing::debug!(file = %f.path, sha256 = %f.sha256, "ledger row committed");
        }
    }
    metrics.store_lag_seconds.set(0.0);
    all_committed
}

/// Reads watched files (one at a time, in arrival order) and hands their
/// flows to the engine; files already in the ledger are skipped.
fn read_files(
    events: Receiver<(usize, WatchEvent)>,
    tx: SyncSender<Msg>,
    stop: &AtomicBool,
    names: &[String],
    tc: TableConfig,
    mut seen: HashSet<String>,
) {
    for (source, ev) in events {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let ready: ReadyFile = match ev {
            WatchEvent::Ready(r) => r,
            WatchEvent::Error { path, message } => {
                tracing::error!(source = %names[source], path = %path.display(), %message, "watched folder problem");
                continue;
            }
        };
        if !seen.insert(ready.sha256.clone()) {
            tracing::info!(source = %names[source], file = %ready.path.display(), "already ingested (same content); skipped");
            continue;
        }
        // The ledger row must describe exactly what was read: the file must
        // still be the one hashed, before and after reading. If not (renamed
        // away, appended to), nothing is recorded: a file that settles again
        // is reported again.
        if !still_as_hashed(&ready) {
            seen.remove(&ready.sha256);
            tracing::info!(source = %names[source], file = %ready.path.display(), "changed or gone since it settled; not ingested now");
            continue;
        }
        let (flows, stats) = read_one(&ready.path, tc.clone());
        if !still_as_hashed(&ready) {
            seen.remove(&ready.sha256);
            tracing::warn!(source = %names[source], file = %ready.path.display(), "changed or gone while being read; what was read is discarded, the file is taken again once it settles");
            continue;
        }
        let errors = stats.error_count() + u64::try_from(stats.capture_errors.len()).unwrap_or(0);
        for e in &stats.capture_errors {
            tracing::warn!(source = %names[source], %e, "file ends in an error; the packets before it were ingested");
        }
        let row = FileRow {
            sha256: ready.sha256,
            path: ready.path.display().to_string(),
            size: ready.size,
            ingested_at: listen::now(),
            packets: stats.ip_packets + stats.flow_log_records,
            flows: u64::try_from(flows.len()).unwrap_or(0),
            errors,
        };
        if tx
            .send(Msg::File(Box::new(FileRead {
                source,
                row,
                flows,
                stats,
            })))
            .is_err()
        {
            break;
        }
    }
}

/// Whether a watched file is still the one hashed (same size and mtime).
fn still_as_hashed(r: &ReadyFile) -> bool {
    std::fs::metadata(&r.path)
        .is_ok_and(|m| m.len() == r.size && m.modified().ok() == Some(r.modified))
}

/// One file, whole, into flows (captures of exports decoded too).
fn read_one(path: &Path, tc: TableConfig) -> (Vec<FlowRecord>, ReadStats) {
    let mut engine = Engine::new(tc, 1, Vec::new(), None);
    let name = path.display().to_string();
    let source = engine.add_source(&name);
    let mut stats = ReadStats::default();
    let mut flows = Vec::new();
    match ingest::open_input(path) {
        Ok(Ok(Opened::FlowLog(log))) => {
            ingest::read_flow_log(log, &name, source, &mut engine, &mut stats, &mut |out| {
                flows.append(out)
            });
        }
        Ok(Ok(Opened::Capture(mut reader))) => {
            if let Err(e) = ingest::read_capture_pipelined(
                &mut reader,
                source,
                &mut engine,
                &mut stats,
                &mut |out| flows.append(out),
                &|_, _| {},
            ) {
                stats.capture_errors.push(format!("{name}: {e}"));
            }
        }
        Ok(Err(e)) => stats.capture_errors.push(ingest::not_an_input(&name, &e)),
        Err(e) => stats.capture_errors.push(format!("{name}: {e}")),
    }
    engine.flush_each(&mut |out| flows.append(out));
    (flows, stats)
}

/// The runtime's work: UDP listeners, /metrics, and the signals that stop everything.
async fn serve(
    sockets: Vec<(usize, std::net::UdpSocket)>,
    metrics_listener: Option<std::net::TcpListener>,
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    mut stop_rx: tokio::sync::watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    names: Vec<String>,
) {
    let mut tasks = Vec::new();
    for (source, sock) in sockets {
        let sock = match tokio::net::UdpSocket::from_std(sock) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot use a UDP socket");
                continue;
            }
        };
        let (tx, metrics, mut stop_rx, name) = (
            tx.clone(),
            metrics.clone(),
            stop_rx.clone(),
            names[source].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let full = Metrics::reason(&name, "queue-full");
            listen::receive_loop(sock, &mut stop_rx, |from, bytes| {
                let msg = Msg::Datagram {
                    source,
                    exporter: from.ip(),
                    received_at: listen::now(),
                    data: bytes.to_vec(),
                };
                match tx.try_send(msg) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        metrics.dropped.get_or_create(&full).inc();
                    }
                }
            })
            .await;
        }));
    }
    if let Some(l) = metrics_listener {
        match tokio::net::TcpListener::from_std(l) {
            Ok(l) => {
                let (metrics, mut stop_rx) = (metrics.clone(), stop_rx.clone());
                tasks.push(tokio::spawn(async move {
                    let shutdown = async move {
                        let _ = stop_rx.changed().await;
                    };
                    if let Err(e) = zonewatch_dashboards::serve(l, metrics, shutdown).await {
                        tracing::error!(error = %e, "/metrics server failed");
                    }
                }));
            }
            Err(e) => tracing::error!(error = %e, "cannot serve /metrics"),
        }
    }
    drop(tx);
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let by_signal = tokio::select! {
        _ = tokio::signal::ctrl_c() => true,
        _ = term => true,
        _ = stop_rx.changed() => false,
    };
    stop.store(true, Ordering::Relaxed);
    if by_signal {
        // The engine takes what is queued, then asks the listeners to stop.
        let _ = stop_rx.changed().await;
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(feature = "live")]
#[allow(clippy::too_many_arguments)]
fn spawn_live(
    source: usize,
    name: &str,
    interface: &str,
    filter: Option<String>,
    snaplen: i32,
    promiscuous: bool,
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> Result<(JoinHandle<()>, KernelDrops)> {
    use zonewatch_collector::live::{LiveCapture, LiveConfig};
    let cfg = LiveConfig {
        filter,
        snaplen,
        promiscuous,
        ..LiveConfig::new(interface)
    };
    let mut cap = LiveCapture::open(&cfg)
        .with_context(|| format!("source {name}: cannot capture on {interface}"))?;
    let linktype = cap.linktype();
    tracing::info!(source = name, interface, linktype, "capturing");
    let name = name.to_string();
    let handle = cap.stats_handle();
    let drops: KernelDrops = Box::new(move || {
        let s = handle.get();
        s.dropped_kernel + s.dropped_interface
    });
    let thread = thread::spawn(move || {
        let full = Metrics::reason(&name, "queue-full");
        let r = cap.run(&stop, &mut |ts, data| {
            let msg = Msg::Packet {
                source,
                ts,
                linktype,
                data: data.to_vec(),
            };
            if tx.try_send(msg).is_err() {
                metrics.dropped.get_or_create(&full).inc();
            }
        });
        if let Err(e) = r {
            tracing::error!(source = %name, error = %e, "live capture stopped");
        }
    });
    Ok((thread, drops))
}

#[cfg(not(feature = "live"))]
#[allow(clippy::too_many_arguments)]
fn spawn_live(
    _source: usize,
    name: &str,
    _interface: &str,
    _filter: Option<String>,
    _snaplen: i32,
    _promiscuous: bool,
    _tx: SyncSender<Msg>,
    _stop: Arc<AtomicBool>,
    _metrics: Arc<Metrics>,
) -> Result<(JoinHandle<()>, KernelDrops)> {
    bail!(
        "source {name}: this zonewatch was built without live capture; rebuild with `cargo build --release --features live` (needs libpcap-dev)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appended_to_or_gone_is_no_longer_the_one_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pcap");
        std::fs::write(&path, b"0123").unwrap();
        let m = std::fs::metadata(&path).unwrap();
        let ready = ReadyFile {
            path: path.clone(),
            size: m.len(),
            modified: m.modified().unwrap(),
            sha256: String::new(),
        };
        assert!(still_as_hashed(&ready));
        std::fs::write(&path, b"012345").unwrap();
        assert!(!still_as_hashed(&ready), "appended");
        std::fs::remove_file(&path).unwrap();
        assert!(!still_as_hashed(&ready), "gone");
    }
}
