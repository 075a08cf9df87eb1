//! Reading inputs into a flow table: input expansion (files, folders,
//! standard input) and the read loop with its counters.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::capture::{CaptureError, CaptureReader, CapturedPacket};
use crate::packet::{DecodeError, Decoded, Layer, decode};
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
    Ok(Input::Folder { path: path.to_path_buf(), files: files.into_iter().map(|f| f.1).collect() })
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
        let Some(pkt) = reader.next_packet()? else { break };
        stats.packets += 1;
        match decode(pkt.linktype, pkt.data) {
            Decoded::Ip(info) => {
                stats.ip_packets += 1;
                stats.ip_bytes += u64::from(info.ip_len);
                if let Some(layer) = info.truncated {
                    *stats.snaplen_cut.entry(layer).or_insert(0) += 1;
                }
                if stats.first.is_none_or(|f| pkt.ts < f) {
                    stats.first = Some(pkt.ts);
                }
                if stats.last.is_none_or(|l| pkt.ts > l) {
                    stats.last = Some(pkt.ts);
                }
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
