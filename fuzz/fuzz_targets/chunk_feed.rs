//! A capture file read through a chunk feed (the command line's fast path)
//! with small chunks gives the records and the error of the same bytes read
//! as a stream. The first input byte picks the chunk size (1 to 766 bytes).
#![no_main]

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::capture::CaptureReader;
use zonewatch_collector::testkit::{Rec, read_records};

/// The packets and the text of the error that ended them.
fn read_all(r: &mut CaptureReader) -> (Vec<Rec>, Option<String>) {
    let (recs, err) = read_records(r);
    (recs, err.map(|e| e.to_string()))
}

/// One scratch file per fuzzing process, rewritten for every input.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("zw-fuzz-chunks-{}", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    // Small chunks, but at most ~512 reads for a large input.
    let chunk = (1 + usize::from(pick) * 3).max(bytes.len() / 512);
    let stream = CaptureReader::from_reader(Box::new(Cursor::new(bytes.to_vec())), "fuzz");
    if std::fs::write(scratch(), bytes).is_err() {
        return;
    }
    let chunked = CaptureReader::open_shared_chunked(scratch(), chunk);
    match (stream, chunked) {
        (Ok(mut s), Ok(mut c)) => assert_eq!(read_all(&mut s), read_all(&mut c), "chunk {chunk}"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("stream {:?}, chunked {:?}", a.is_ok(), b.is_ok()),
    }
});
