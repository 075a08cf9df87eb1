//! Reading inputs into a flow table: input expansion (files, folders,
//! standard input) and the read loop with its counters.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use crate::capture::{CaptureError, CaptureReader, CapturedPacket};
use crate::packet::{DecodeError, Decoded, Layer, PacketInfo, decode};
use crate::record::FlowRecord;
use crate::table::{FlowTable, Ingested, SourceId};
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
/// being written (`.tmp`, `.part`) are skipped.
pub fn is_candidate(name: &str) -> bool {
    !(name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part"))
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
}

impl ReadStats {
    /// Packets that could not be decoded.
    pub fn error_count(&self) -> u64 {
        self.decode_errors.values().sum()
    }
}

/// Reads every packet of `reader` into `table`. `on_packet` sees each IP
/// packet with what the table did with it (for evidence capture); `on_flows`
/// receives ended flows as they come (the vector is drained by the caller);
/// `on_progress` gets the bytes consumed from the input and the records
/// read so far, every 65,536 records.
#[allow(clippy::too_many_arguments)]
pub fn read_capture(
    reader: &mut CaptureReader,
    source: SourceId,
    table: &mut FlowTable,
    stats: &mut ReadStats,
    on_packet: &mut dyn FnMut(&CapturedPacket<'_>, &Ingested),
    on_flows: &mut dyn FnMut(&mut Vec<FlowRecord>),
    on_progress: &mut dyn FnMut(u64, u64),
) -> Result<(), CaptureError> {
    let mut out = Vec::new();
    loop {
        if stats.packets & 0xffff == 0 {
            on_progress(reader.bytes_consumed(), stats.packets);
        }
        let Some(pkt) = reader.next_packet()? else {
            break;
        };
        stats.packets += 1;
        match decode(pkt.linktype, pkt.data) {
            Decoded::Ip(info) => {
                stats.count_ip(&info, pkt.ts);
                let ingested = table.ingest(source, pkt.ts, &info, &mut out);
                on_packet(&pkt, &ingested);
                if !out.is_empty() {
                    on_flows(&mut out);
                }
            }
            Decoded::NotIp(_) => stats.non_ip += 1,
            Decoded::Error(e) => *stats.decode_errors.entry(e).or_insert(0) += 1,
        }
    }
    Ok(())
}

/// A batch of decoded packets passed from the reading thread to the table.
type Batch = Vec<(Timestamp, PacketInfo)>;

const BATCH: usize = 1024;
/// Batches in flight between the threads (bounds the pipeline's memory).
const BATCHES: usize = 4;

/// [`read_capture`] on two threads: one reads and decodes, the caller's
/// thread runs the flow table. Same counters and results; no per-packet
/// callback (use [`read_capture`] when raw packets are needed, e.g. evidence).
pub fn read_capture_pipelined(
    reader: &mut CaptureReader,
    source: SourceId,
    table: &mut FlowTable,
    stats: &mut ReadStats,
    on_flows: &mut dyn FnMut(&mut Vec<FlowRecord>),
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(), CaptureError> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Batch>(BATCHES + 2);
    for _ in 0..BATCHES + 2 {
        // Cannot fail: the channel has room for all of them.
        let _ = empty_tx.try_send(Vec::with_capacity(BATCH));
    }
    thread::scope(|scope| {
        let decoder = scope.spawn(move || {
            let mut local = ReadStats::default();
            let mut batch = Vec::with_capacity(BATCH);
            let result = (|| {
                loop {
                    if local.packets & 0xffff == 0 {
                        on_progress(reader.bytes_consumed(), local.packets);
                    }
                    let Some(pkt) = reader.next_packet()? else {
                        break;
                    };
                    local.packets += 1;
                    match decode(pkt.linktype, pkt.data) {
                        Decoded::Ip(info) => {
                            local.count_ip(&info, pkt.ts);
                            batch.push((pkt.ts, info));
                            if batch.len() == BATCH {
                                let next = empty_rx
                                    .recv()
                                    .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                                if full_tx.send(std::mem::replace(&mut batch, next)).is_err() {
                                    break;
                                }
                            }
                        }
                        Decoded::NotIp(_) => local.non_ip += 1,
                        Decoded::Error(e) => *local.decode_errors.entry(e).or_insert(0) += 1,
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
        for mut batch in full_rx.iter() {
            for (ts, info) in batch.drain(..) {
                table.ingest(source, ts, &info, &mut out);
                if !out.is_empty() {
                    on_flows(&mut out);
                }
            }
            let _ = empty_tx.try_send(batch);
        }
        drop(empty_tx);
        let (local, result) = match decoder.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        stats.merge(local);
        result
    })
}

impl ReadStats {
    fn count_ip(&mut self, info: &PacketInfo, ts: Timestamp) {
        self.ip_packets += 1;
        self.ip_bytes += u64::from(info.ip_len);
        if let Some(layer) = info.truncated {
            *self.snaplen_cut.entry(layer).or_insert(0) += 1;
        }
        if self.first.is_none_or(|f| ts < f) {
            self.first = Some(ts);
        }
        if self.last.is_none_or(|l| ts > l) {
            self.last = Some(ts);
        }
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
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, other.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.capture_errors.extend(other.capture_errors);
    }
}
