//! Reading inputs into a flow table: input expansion (files, folders,
//! standard input) and the read loop with its counters.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use crate::capture::{CaptureError, CaptureReader, CapturedPacket};
use crate::export::ExportRecord;
use crate::exports::{ExportDecoder, ExporterRange, Outcome};
use crate::packet::{DecodeError, Decoded, Layer, PacketInfo, decode, decode_plain, ip_proto};
use crate::record::FlowRecord;
use crate::stitch::Stitcher;
use crate::table::{FlowTable, Ingested, Keyed, SourceId, TableConfig};
use crate::time::Timestamp;

/// One input as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A capture file.
    File(PathBuf),
    /// A folder: its captures, read in time order as one source.
    Folder {
        /// The folder as named.
        path: PathBuf,
        /// Its capture files, oldest first.
        files: Vec<PathBuf>,
    },
    /// Standard input.
    Stdin,
}

impl Input {
    /// The name flows from this input carry as `source`.
    pub fn source_name(&self) -> String {
        match self {
            Input::File(p) | Input::Folder { path: p, .. } => p.display().to_string(),
            Input::Stdin => "stdin".to_string(),
        }
    }

    /// The files to read, in order (`None` stands for standard input).
    pub fn files(&self) -> Vec<Option<&Path>> {
        match self {
            Input::File(p) => vec![Some(p.as_path())],
            Input::Folder { files, .. } => files.iter().map(|p| Some(p.as_path())).collect(),
            Input::Stdin => vec![None],
        }
    }
}

/// Whether a folder entry is a capture to read: hidden files and files still
/// being written (`.tmp`, `.part`, `.partial`) are skipped.
pub fn is_candidate(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".partial"))
}

/// Resolves what the user named: `-` is standard input, a folder becomes its
/// capture files sorted by their first packet's time (then name).
pub fn expand(path: &Path) -> io::Result<Input> {
    if path.as_os_str() == "-" {
        return Ok(Input::Stdin);
    }
    let meta = fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(Input::File(path.to_path_buf()));
    }
    let mut files: Vec<(Option<Timestamp>, PathBuf)> = Vec::new();
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_candidate(&name) || !entry.file_type()?.is_file() {
            continue;
        }
        let p = entry.path();
        // A file that is not a capture still sorts (last) and reports its error when read.
        let first = CaptureReader::open(&p)
            .ok()
            .and_then(|mut r| r.next_packet().ok().flatten().map(|pkt| pkt.ts));
        files.push((first, p));
    }
    files.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    });
    Ok(Input::Folder {
        path: path.to_path_buf(),
        files: files.into_iter().map(|f| f.1).collect(),
    })
}

/// What was read, over all inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Capture records read.
    pub packets: u64,
    /// Records that carried an IP packet.
    pub ip_packets: u64,
    /// IP-layer bytes (IP total length) of those.
    pub ip_bytes: u64,
    /// Records without IP (ARP, STP, ...).
    pub non_ip: u64,
    /// Records that could not be decoded, by layer and reason.
    pub decode_errors: BTreeMap<DecodeError, u64>,
    /// IP packets whose headers the snaplen cut, by the layer cut.
    pub snaplen_cut: BTreeMap<Layer, u64>,
    /// Earliest packet time.
    pub first: Option<Timestamp>,
    /// Latest packet time.
    pub last: Option<Timestamp>,
    /// Inputs that ended in an error (file name and message).
    pub capture_errors: Vec<String>,
    /// UDP datagrams that carried flow exports (decoded into records, not packet flows).
    pub export_datagrams: u64,
    /// Flow log lines read as records.
    pub flow_log_records: u64,
    /// Flow log lines that could not be read, by reason.
    pub flow_log_errors: BTreeMap<&'static str, u64>,
}

impl ReadStats {
    /// Packets that could not be decoded.
    pub fn error_count(&self) -> u64 {
        self.decode_errors.values().sum()
    }
}

/// Everything packets and export records flow into: the packet flow table,
/// the export stitcher and the export decoder (template state is kept across
/// inputs, so a template file read before a data file decodes it).
pub struct Engine {
    /// Biflows from packets.
    pub table: FlowTable,
    /// Biflows from export records.
    pub stitcher: Stitcher,
    /// Export recognition and decoding.
    pub exports: ExportDecoder,
    /// Print export records as exported (no stitching).
    pub unidirectional: bool,
}

/// An input registered with both tables.
#[derive(Debug, Clone, Copy)]
pub struct EngineSource {
    table: SourceId,
    stitcher: u16,
}

impl EngineSource {
    /// The input's id in the packet flow table.
    pub fn table(&self) -> SourceId {
        self.table
    }
}

impl Engine {
    /// An engine whose packet table and export stitcher share `config`;
    /// `default_sampling` applies to exports that state no rate, `allowed`
    /// (empty: any) to exporters, `export_ports` (None: any) to UDP ports
    /// tried as exports in captures.
    pub fn new(
        config: TableConfig,
        default_sampling: u32,
        allowed: Vec<ExporterRange>,
        export_ports: Option<Vec<u16>>,
    ) -> Engine {
        let default_sampling = default_sampling.max(1);
        Engine {
            table: FlowTable::new(config.clone()),
            stitcher: Stitcher::new(config, default_sampling),
            exports: ExportDecoder::new(default_sampling, allowed, export_ports),
            unidirectional: false,
        }
    }

    /// Registers an input by name.
    pub fn add_source(&mut self, name: &str) -> EngineSource {
        EngineSource {
            table: self.table.add_source(name),
            stitcher: self.stitcher.add_source(name),
        }
    }

    /// Feeds one export record; ended flows go to `out`.
    pub fn export(
        &mut self,
        source: EngineSource,
        rec: &ExportRecord,
        now: Timestamp,
        out: &mut Vec<FlowRecord>,
    ) {
        if self.unidirectional {
            out.push(self.stitcher.as_exported(source.stitcher, rec));
        } else {
            self.stitcher.ingest(source.stitcher, rec, now, out);
        }
    }

    /// Ends every flow of both tables, in chunks.
    pub fn flush_each(&mut self, on_flows: &mut dyn FnMut(&mut Vec<FlowRecord>)) {
        self.table.flush_each(on_flows);
        let mut out = Vec::new();
        self.stitcher.flush(&mut out);
        if !out.is_empty() {
            on_flows(&mut out);
        }
    }
}

/// Decodes one captured frame into items: an IP packet, or the records of the
/// flow export it carries. Returns the packet info for ordinary IP packets.
#[inline]
fn frame_items(
    pkt: &CapturedPacket<'_>,
    exports: &mut ExportDecoder,
    stats: &mut ReadStats,
    records: &mut Vec<ExportRecord>,
) -> Option<PacketInfo> {
    match decode(pkt.linktype, pkt.data) {
        Decoded::Ip(info) => {
            stats.count_ip(&info, pkt.ts);
            if info.proto == ip_proto::UDP
                && let Some(payload) = info.udp_payload(pkt.data)
            {
                let before = records.len();
                match exports.captured(info.src, info.dport, pkt.ts, payload, records) {
                    Outcome::Decoded(_) | Outcome::NotAllowed => {
                        stats.export_datagrams += 1;
                        return None;
                    }
                    Outcome::Malformed { .. } => {
                        // Counted per exporter; the datagram stays ordinary traffic.
                        records.truncate(before);
                    }
                    Outcome::NotExport => {}
                }
            }
            Some(info)
        }
        Decoded::NotIp(_) => {
            stats.non_ip += 1;
            None
        }
        Decoded::Error(e) => {
            *stats.decode_errors.entry(e).or_insert(0) += 1;
            None
        }
    }
}

/// Reads every packet of `reader` into the engine. `on_packet` sees each
/// ordinary IP packet with what the table did with it (for evidence
/// capture); `on_flows` receives ended flows as they come (the vector is
/// drained by the caller); `on_progress` gets the bytes consumed from the
/// input and the records read so far, every 65,536 records.
pub fn read_capture(
    reader: &mut CaptureReader,
    source: EngineSource,
    engine: &mut Engine,
    stats: &mut ReadStats,
    on_packet: &mut dyn FnMut(&CapturedPacket<'_>, &Ingested),
    on_flows: &mut dyn FnMut(&mut Vec<FlowRecord>),
    on_progress: &mut dyn FnMut(u64, u64),
) -> Result<(), CaptureError> {
    let mut out = Vec::new();
    let mut records = Vec::new();
    loop {
        if stats.packets & 0xffff == 0 {
            on_progress(reader.bytes_consumed(), stats.packets);
        }
        let Some(pkt) = reader.next_packet()? else {
            break;
        };
        stats.packets += 1;
        if let Some(info) = frame_items(&pkt, &mut engine.exports, stats, &mut records) {
            let ingested = engine.table.ingest(source.table, pkt.ts, &info, &mut out);
            on_packet(&pkt, &ingested);
        }
        for rec in records.drain(..) {
            engine.export(source, &rec, pkt.ts, &mut out);
        }
        if !out.is_empty() {
            on_flows(&mut out);
        }
    }
    Ok(())
}

/// Decoded frames passed from the reading thread to the tables: ordinary
/// packets already keyed, and between them the packets the table keys
/// itself and the export records found.
#[derive(Default)]
struct Batch {
    keyed: Vec<Keyed>,
    /// Each after the first `.0` keyed packets of the batch.
    others: Vec<(usize, Other)>,
}

enum Other {
    Packet(Timestamp, PacketInfo),
    Export(Timestamp, ExportRecord),
}

impl Batch {
    fn with_capacity(n: usize) -> Batch {
        Batch {
            keyed: Vec::with_capacity(n),
            others: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.keyed.len() + self.others.len()
    }

    fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.others.is_empty()
    }

    fn clear(&mut self) {
        self.keyed.clear();
        self.others.clear();
    }
}

const BATCH: usize = 1024;
/// Batches in flight between the threads (bounds the pipeline's memory:
/// ~80 KB each). Enough for the reader to go on through most of the table's
/// work when a sweep ends thousands of flows at once, rather than wait.
const BATCHES: usize = 48;

/// [`read_capture`] on two threads: one reads and decodes, the caller's
/// thread runs the tables. Same counters and results (the same flow records
/// in the same order); no per-packet callback (use [`read_capture`] when raw
/// packets are needed, e.g. evidence).
pub fn read_capture_pipelined(
    reader: &mut CaptureReader,
    source: EngineSource,
    engine: &mut Engine,
    stats: &mut ReadStats,
    on_flows: &mut dyn FnMut(&mut Vec<FlowRecord>),
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(), CaptureError> {
    let feed = reader.feed();
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Batch>(BATCHES + 2);
    for _ in 0..BATCHES + 2 {
        // Cannot fail: the channel has room for all of them.
        let _ = empty_tx.try_send(Batch::with_capacity(BATCH));
    }
    let keyer = engine.table.keyer(source.table);
    // The reading thread owns the export decoder, this thread the tables.
    let Engine {
        table,
        stitcher,
        exports: exports_dec,
        unidirectional,
    } = engine;
    let unidirectional = *unidirectional;
    let (result, local) = thread::scope(|scope| {
        let decoder = scope.spawn(move || {
            let mut local = ReadStats::default();
            let mut batch = Batch::with_capacity(BATCH);
            let mut records = Vec::new();
            let result = (|| {
                loop {
                    if local.packets & 0xffff == 0 {
                        on_progress(reader.bytes_consumed(), local.packets);
                    }
                    let Some(pkt) = reader.next_packet()? else {
                        break;
                    };
                    local.packets += 1;
                    // Nearly every packet: read and keyed in one pass.
                    let plain = decode_plain(pkt.linktype, pkt.data).filter(|p| {
                        p.proto != ip_proto::UDP
                            || !exports_dec.may_be_export(p.dport, p.udp_payload)
                    });
                    if let Some(p) = plain {
                        local.count_ip_len(p.ip_len, pkt.ts);
                        batch.keyed.push(keyer.key_plain(pkt.ts, &p));
                    } else if let Some(info) =
                        frame_items(&pkt, exports_dec, &mut local, &mut records)
                    {
                        match keyer.key(pkt.ts, &info) {
                            Some(k) => batch.keyed.push(k),
                            None => {
                                let at = batch.keyed.len();
                                batch.others.push((at, Other::Packet(pkt.ts, info)));
                            }
                        }
                    }
                    if !records.is_empty() {
                        let at = batch.keyed.len();
                        batch.others.extend(
                            records
                                .drain(..)
                                .map(|rec| (at, Other::Export(pkt.ts, rec))),
                        );
                    }
                    if batch.len() >= BATCH {
                        let next = empty_rx
                            .recv()
                            .unwrap_or_else(|_| Batch::with_capacity(BATCH));
                        if full_tx.send(std::mem::replace(&mut batch, next)).is_err() {
                            break;
                        }
                    }
                }
                Ok(())
            })();
            // What was read before an error still counts.
            if !batch.is_empty() {
                let _ = full_tx.send(batch);
            }
            drop(full_tx);
            (local, result)
        });
        let mut out = Vec::new();
        loop {
            // Waiting for the reader: copy the file ahead for it instead.
            let mut batch = match full_rx.try_recv() {
                Ok(b) => b,
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    if feed.as_ref().is_some_and(|f| f.copy_ahead()) {
                        continue;
                    }
                    match full_rx.recv() {
                        Ok(b) => b,
                        Err(_) => break,
                    }
                }
            };
            let mut done = 0;
            for (at, other) in &batch.others {
                if let Some(run) = batch.keyed.get(done..*at) {
                    ingest_run(table, source.table, run, &mut out, on_flows);
                }
                done = *at;
                match other {
                    Other::Packet(ts, pkt) => {
                        table.ingest(source.table, *ts, pkt, &mut out);
                    }
                    Other::Export(_, rec) if unidirectional => {
                        out.push(stitcher.as_exported(source.stitcher, rec));
                    }
                    Other::Export(ts, rec) => stitcher.ingest(source.stitcher, rec, *ts, &mut out),
                }
            }
            if let Some(run) = batch.keyed.get(done..) {
                ingest_run(table, source.table, run, &mut out, on_flows);
            }
            if !out.is_empty() {
                on_flows(&mut out);
            }
            batch.clear();
            let _ = empty_tx.try_send(batch);
        }
        drop(empty_tx);
        match decoder.join() {
            Ok((local, result)) => (result, local),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    stats.merge(local);
    result
}

/// Counts keyed packets into `table`, handing the ended flows to `on_flows`
/// whenever [`FlowTable::ingest_keyed`] stops for them (the rest are left in
/// `out`). `on_flows` drains the vector, as everywhere in this module: what
/// it left would be handed on again.
fn ingest_run(
    table: &mut FlowTable,
    source: SourceId,
    mut run: &[Keyed],
    out: &mut Vec<FlowRecord>,
    on_flows: &mut dyn FnMut(&mut Vec<FlowRecord>),
) {
    loop {
        let counted = table.ingest_keyed(source, run, out);
        run = run.get(counted..).unwrap_or_default();
        if run.is_empty() {
            return;
        }
        on_flows(out);
        debug_assert!(out.is_empty(), "on_flows drains the records");
    }
}

impl ReadStats {
    fn count_ip(&mut self, info: &PacketInfo, ts: Timestamp) {
        self.count_ip_len(info.ip_len, ts);
        if let Some(layer) = info.truncated {
            *self.snaplen_cut.entry(layer).or_insert(0) += 1;
        }
    }

    /// An IP packet of `ip_len` bytes read whole.
    fn count_ip_len(&mut self, ip_len: u32, ts: Timestamp) {
        self.ip_packets += 1;
        self.ip_bytes += u64::from(ip_len);
        self.saw(ts, ts);
    }

    /// Widens the time span read to cover `first ..= last`.
    pub fn saw(&mut self, first: Timestamp, last: Timestamp) {
        self.first = Some(self.first.map_or(first, |f| f.min(first)));
        self.last = Some(self.last.map_or(last, |l| l.max(last)));
    }

    /// Adds another reading's counters to these.
    pub fn merge(&mut self, other: ReadStats) {
        self.packets += other.packets;
        self.ip_packets += other.ip_packets;
        self.ip_bytes += other.ip_bytes;
        self.non_ip += other.non_ip;
        for (k, v) in other.decode_errors {
            *self.decode_errors.entry(k).or_insert(0) += v;
        }
        for (k, v) in other.snaplen_cut {
            *self.snaplen_cut.entry(k).or_insert(0) += v;
        }
        if let (Some(first), Some(last)) = (other.first, other.last) {
            self.saw(first, last);
        }
        self.capture_errors.extend(other.capture_errors);
        self.export_datagrams += other.export_datagrams;
        self.flow_log_records += other.flow_log_records;
        for (k, v) in other.flow_log_errors {
            *self.flow_log_errors.entry(k).or_insert(0) += v;
        }
    }
}

/// An input file, opened for what it turned out to be.
pub enum Opened {
    /// An AWS VPC flow log, for [`read_flow_log`].
    FlowLog(Box<dyn io::BufRead + Send>),
    /// A capture, read through a chunk feed ([`CaptureReader::open_shared`]).
    Capture(Box<CaptureReader>),
}

/// Opens an input file: a flow log when its first line is one, else a
/// capture. The outer error is one of reading the file at all, the inner one
/// says why it is not a capture (see [`not_an_input`]).
pub fn open_input(path: &Path) -> io::Result<Result<Opened, CaptureError>> {
    Ok(match open_flow_log(path)? {
        Some(log) => Ok(Opened::FlowLog(log)),
        None => CaptureReader::open_shared(path).map(|r| Opened::Capture(Box::new(r))),
    })
}

/// The message for an input that is neither a capture nor a flow log.
pub fn not_an_input(name: &str, e: &CaptureError) -> String {
    format!("{name}: {e}; is it a pcap or pcapng capture, or an AWS VPC flow log?")
}

/// Opens an input file for [`read_flow_log`] if it is a flow log (plain or
/// gzip) rather than a capture: returns `None` for anything else.
pub fn open_flow_log(path: &Path) -> io::Result<Option<Box<dyn io::BufRead + Send>>> {
    use std::io::{BufRead, BufReader};
    let mut file = BufReader::new(fs::File::open(path)?);
    let magic = file.fill_buf()?.get(..2).map(|m| [m[0], m[1]]);
    let mut reader: Box<dyn BufRead + Send> = if magic == Some([0x1f, 0x8b]) {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    };
    // Look at the first line without consuming it.
    let head = reader.fill_buf()?;
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let first = String::from_utf8_lossy(&head[..end.min(4096)]).into_owned();
    if crate::vpc::looks_like_vpc_flow_log(first.trim_end()) {
        Ok(Some(reader))
    } else {
        Ok(None)
    }
}

/// Reads an AWS VPC Flow Logs stream into the engine: one export record per
/// line; bad lines are counted by reason and reported once per reason.
pub fn read_flow_log(
    reader: Box<dyn io::BufRead + Send>,
    name: &str,
    source: EngineSource,
    engine: &mut Engine,
    stats: &mut ReadStats,
    on_flows: &mut dyn FnMut(&mut Vec<FlowRecord>),
) {
    let mut lines = crate::vpc::VpcReader::new(reader, name);
    let mut out = Vec::new();
    while let Some(item) = lines.next_record() {
        match item {
            Ok(rec) => {
                stats.flow_log_records += 1;
                let now = rec.last;
                stats.saw(rec.first, rec.last);
                engine.export(source, &rec, now, &mut out);
                if !out.is_empty() {
                    on_flows(&mut out);
                }
            }
            Err(e) => {
                let n = stats.flow_log_errors.entry(e.reason).or_insert(0);
                if *n == 0 {
                    stats.capture_errors.push(e.to_string());
                }
                *n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_candidate;

    #[test]
    fn hidden_and_unfinished_files_are_not_candidates() {
        for skipped in [
            ".tap.pcap",
            "tap.pcap.tmp",
            "tap.pcap.part",
            "tap.pcap.partial",
        ] {
            assert!(!is_candidate(skipped), "{skipped}");
        }
        for taken in ["tap.pcap", "tap.pcapng.gz", "partial.pcap", "vpc-flows.log"] {
            assert!(is_candidate(taken), "{taken}");
        }
    }
}
