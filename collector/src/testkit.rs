//! Test helpers shared by the collector's and other crates' tests (feature
//! `testkit`): the two ways of reading a capture, compared.

use std::path::Path;

use crate::capture::{CaptureError, CaptureReader};
use crate::ingest::{self, Engine, ReadStats};
use crate::table::{TableConfig, TableStats};

/// Everything one reading path produced: flow records as delivered (Debug
/// form, all fields), read counters, table counters, the error that ended
/// the file.
#[derive(Debug, PartialEq)]
pub struct PathRun {
    /// Flow records in delivery order.
    pub flows: Vec<String>,
    /// Read counters.
    pub stats: ReadStats,
    /// Table counters.
    pub table: TableStats,
    /// The error that ended the capture, if any.
    pub error: Option<String>,
}

/// Reads `path` with the pipelined fast path (through a chunk feed, as the
/// command line does) or the single-threaded one (a plain stream); `None`
/// when it is not a capture.
pub fn run_path(path: &Path, config: &TableConfig, pipelined: bool) -> Option<PathRun> {
    let mut reader = if pipelined {
        CaptureReader::open_shared(path).ok()?
    } else {
        CaptureReader::open(path).ok()?
    };
    let mut engine = Engine::new(config.clone(), 1, Vec::new(), None);
    // The stitcher keeps the default limits: evicting, it picks flows in
    // its map's (random) order, so two runs of one path would differ.
    engine.stitcher = crate::stitch::Stitcher::new(TableConfig::default(), 1);
    let source = engine.add_source("capture");
    let mut stats = ReadStats::default();
    let mut flows = Vec::new();
    let mut keep = |out: &mut Vec<crate::FlowRecord>| {
        flows.extend(out.drain(..).map(|f| format!("{f:?}")));
    };
    let res = if pipelined {
        ingest::read_capture_pipelined(
            &mut reader,
            source,
            &mut engine,
            &mut stats,
            &mut keep,
            &|_, _| {},
        )
    } else {
        ingest::read_capture(
            &mut reader,
            source,
            &mut engine,
            &mut stats,
            &mut |_, _| {},
            &mut keep,
            &mut |_, _| {},
        )
    };
    engine.flush_each(&mut keep);
    Some(PathRun {
        flows,
        stats,
        table: engine.table.stats().clone(),
        error: res.err().map(|e| e.to_string()),
    })
}

/// Reads `path` both ways under `config` and panics, naming `at` and the
/// first differing record, unless records and counters are identical.
/// Returns the single-threaded run (`None`: not a capture).
pub fn assert_paths_agree(path: &Path, config: &TableConfig, at: &str) -> Option<PathRun> {
    let single = run_path(path, config, false)?;
    let fast = run_path(path, config, true).expect("the capture opens twice");
    if let Some(i) = (0..fast.flows.len().max(single.flows.len()))
        .find(|&i| fast.flows.get(i) != single.flows.get(i))
    {
        panic!(
            "{at}: flow record {i} of {} (fast) / {} (single) differs:\n fast:   {:?}\n single: {:?}",
            fast.flows.len(),
            single.flows.len(),
            fast.flows.get(i),
            single.flows.get(i)
        );
    }
    assert_eq!(fast.stats, single.stats, "{at}: read counters differ");
    assert_eq!(fast.table, single.table, "{at}: table counters differ");
    assert_eq!(fast.error, single.error, "{at}: errors differ");
    Some(single)
}

/// A packet as read: (ts, caplen, wire_len, linktype, interface, data).
pub type Rec = (i64, u32, u32, u32, u32, Vec<u8>);

/// Every packet `r` gives, then the error that ended it, if any; panics
/// unless each packet's data is `caplen` bytes and the reader gives nothing
/// more after its error.
pub fn read_records(r: &mut CaptureReader) -> (Vec<Rec>, Option<CaptureError>) {
    let mut out = Vec::new();
    loop {
        match r.next_packet() {
            Ok(Some(p)) => {
                assert_eq!(usize::try_from(p.caplen).ok(), Some(p.data.len()));
                out.push((
                    p.ts.0,
                    p.caplen,
                    p.wire_len,
                    p.linktype,
                    p.interface,
                    p.data.to_vec(),
                ));
            }
            Ok(None) => return (out, None),
            Err(e) => {
                assert!(
                    matches!(r.next_packet(), Ok(None)),
                    "a packet after an error"
                );
                return (out, Some(e));
            }
        }
    }
}

/// Holds [`crate::packet::decode_plain`] to [`crate::packet::decode`]: where
/// the one-pass reader reads `frame` (of link type `lt`), the full decoder
/// reads the same packet ([`crate::packet::Plain::agrees_with`]) and the
/// table keys both alike. Returns whether `decode_plain` read it; panics
/// with both readings otherwise.
pub fn check_plain(lt: u32, frame: &[u8]) -> bool {
    use crate::packet::{Decoded, decode, decode_plain};
    let Some(p) = decode_plain(lt, frame) else {
        return false;
    };
    let decoded = decode(lt, frame);
    let Decoded::Ip(info) = decoded else {
        panic!("decode_plain read {p:?}, decode {decoded:?}");
    };
    assert!(p.agrees_with(&info, frame), "{p:?}\n{info:?}");
    let mut table = crate::table::FlowTable::new(TableConfig::default());
    let source = table.add_source("check");
    let keyer = table.keyer(source);
    let ts = crate::time::Timestamp::from_secs_nanos(1_700_000_000, 5);
    assert_eq!(
        Some(keyer.key_plain(ts, &p)),
        keyer.key(ts, &info),
        "keys of {p:?}"
    );
    true
}
