//! zonewatch-analyzer: from flows and a zone policy to findings.
//!
//! An [`Analyzer`] holds a [`zonewatch_zones::Policy`]; each
//! [`zonewatch_collector::FlowRecord`] it [observes](Analyzer::observe) is
//! evaluated to a [`zonewatch_zones::Verdict`], turned into at most one path
//! finding kind (DESIGN.md's table order) plus `undeclared-address` findings
//! per address, and aggregated. [`Analyzer::finish`] returns a [`Report`]:
//! the [`Finding`]s, most severe first, and the suppressed ones apart.
//! [`render`] prints a report as a table, JSON, JSON Lines or Markdown.
//!
//! The monitor keeps its state in a SQLite [`store`]: one
//! [`store::Store`] (the single writer) commits [`store::Batch`]es of
//! aggregates, finding increments, observed paths and ingested files, each
//! batch in one transaction; [`store::Reader`]s read it on their own
//! connections. [`suggest`] turns the store's observed, not-allowed paths
//! into a reviewable `[[allow]]` patch for the zones file.
//!
//! ```
//! use zonewatch_analyzer::{Analyzer, AnalyzerConfig};
//! use zonewatch_zones::Policy;
//!
//! let policy = Policy::parse("[[zone]]\nname = \"db\"\ncidrs = [\"10.2.0.0/16\"]\ntrust = \"high\"\n", "zones.toml").unwrap();
//! let analyzer = Analyzer::new(std::sync::Arc::new(policy), AnalyzerConfig::default());
//! let report = analyzer.finish();
//! assert!(report.findings.is_empty());
//! ```
#![deny(missing_docs)]

mod analyze;
mod finding;
pub mod render;
pub mod store;
pub mod suggest;

pub use analyze::{
    Analyzer, AnalyzerConfig, AnalyzerStats, FindingDelta, PathName, Report, may_raise_finding,
    path_query, service_name,
};
pub use finding::{Confidence, Finding, FindingKind, SuppressionNote};
pub use zonewatch_zones::Severity;
