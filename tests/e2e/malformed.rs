//! Every malformed capture: no panic, a clear message, the valid part analysed.

use std::collections::HashMap;

use crate::{corpus, jsonl, s, zonewatch};

fn summary_rows(corpus: &std::path::Path) -> HashMap<String, HashMap<String, String>> {
    let text =
        std::fs::read_to_string(corpus.join("expected").join("summary.tsv")).expect("summary.tsv");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            let row: HashMap<String, String> = header
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect();
            (row["file"].clone(), row)
        })
        .collect()
}

fn read_count(stderr: &str) -> u64 {
    let at = stderr.find("read ").expect("summary line on stderr");
    stderr[at + 5..]
        .split_whitespace()
        .next()
        .expect("count")
        .parse()
        .expect("number")
}

#[test]
fn malformed_captures_never_crash_and_keep_the_valid_part() {
    let Some(corpus) = corpus() else { return };
    let rows = summary_rows(&corpus);
    let mut files: Vec<_> = std::fs::read_dir(corpus.join("malformed"))
        .expect("malformed")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 20);
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let out = zonewatch(&["flows", s(&file)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0) | Some(2)),
            "{name}: exit {code:?} (a panic is 101): {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        // stdout is always valid JSON Lines, even when the capture ends in an error.
        let flows = jsonl(&out.stdout);
        if code == Some(2) {
            assert!(
                stderr.contains(&name) && stderr.contains("error"),
                "{name}: unclear message: {stderr}"
            );
            assert!(flows.is_empty());
            continue;
        }
        let row = &rows[&format!("malformed/{name}")];
        let tshark_packets: u64 = row["packets"].parse().unwrap_or(0);
        if name.starts_with("cut-") {
            // Files cut mid-record: every complete record is read, and the cut is reported.
            assert_eq!(read_count(&stderr), tshark_packets, "{name}: {stderr}");
            assert!(
                stderr.contains("problems:") && stderr.contains(&name),
                "{name}: cut not reported: {stderr}"
            );
            assert!(!flows.is_empty(), "{name}: the valid part yields flows");
        }
    }
}
