//! End-to-end tests of the real `zonewatch` binary on real captures.

mod cli;
mod corpus;
mod exports;
mod malformed;
mod monitor;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/corpus` next to the workspace, or `None` (with a message) when absent.
pub fn corpus() -> Option<PathBuf> {
    let dir = root().join("..").join("shared").join("corpus");
    if dir.join("README.md").exists() {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/corpus is absent (CI always has it)");
        None
    }
}

/// Runs the binary with arguments.
pub fn zonewatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(args)
        .env("ZONEWATCH_LOG", "warn")
        .output()
        .expect("zonewatch runs")
}

/// Whether a peer tool is installed; when it is not, the calling test skips
/// with a message, or fails under `ZONEWATCH_REQUIRE_TOOLS=1`.
pub fn have_tool(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("ZONEWATCH_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{tool} is required (ZONEWATCH_REQUIRE_TOOLS=1): apt-get install {package}"
        );
        eprintln!("skipped: {tool} is not installed (apt-get install {package})");
    }
    found
}

/// Parses JSON Lines.
pub fn jsonl(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
