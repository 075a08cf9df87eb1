//! Command-line arguments (raw, clap) and the validated settings built from them.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

/// zonewatch: where the traffic on your network departs from your declared zones.
#[derive(Debug, Parser)]
#[command(name = "zonewatch", version, about, long_about = None)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr: human-readable, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Plain text.
    Human,
    /// JSON Lines.
    Json,
}

/// `zonewatch monitor`.
#[derive(Debug, ClapArgs)]
pub struct MonitorArgs {
    /// The configuration file.
    #[arg(long, default_value = "zonewatch.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// Print the effective configuration (defaults filled in) and exit.
    #[arg(long)]
    pub dump_config: bool,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print every flow in the inputs (JSON Lines by default).
    Flows(FlowsArgs),
    /// Hold the inputs' flows against a zones file and print findings.
    Analyze(AnalyzeArgs),
    /// Run continuously: live interfaces, export listeners and watched
    /// folders into the SQLite store, with /metrics.
    Monitor(MonitorArgs),
    /// Check or query a zones file.
    #[command(subcommand)]
    Zones(ZonesCommand),
}

/// Inputs and flow-table settings shared by `flows` and `analyze`.
#[derive(Debug, ClapArgs)]
pub struct InputArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed; captures of
    /// NetFlow/IPFIX/sFlow export traffic are decoded), AWS VPC Flow Logs
    /// files, folders of these (read in time order), or `-` for standard input.
    #[arg(required_unless_present = "listen", value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Receive flow exports over UDP: KIND=ADDR, KIND is `netflow` (v5, v9
    /// and IPFIX on one port) or `sflow`; ADDR is HOST:PORT, or PORT alone
    /// for 127.0.0.1:PORT. Repeatable.
    #[arg(long, value_name = "KIND=ADDR")]
    pub listen: Vec<String>,
    /// With --listen: stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Only try UDP datagrams to these destination ports as exports in
    /// captures (comma-separated; default: any port, recognised by content).
    #[arg(long, value_name = "PORTS", value_delimiter = ',')]
    pub export_ports: Option<Vec<u16>>,
    /// Accept exports only from these exporters (CIDR; repeatable); others
    /// are dropped and counted.
    #[arg(long, value_name = "CIDR")]
    pub allow_exporter: Vec<String>,
    /// Sampling rate assumed for exports that do not state one.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub default_sampling: u32,
    /// Most flows held at once; beyond it the table evicts (half-open first).
    #[arg(long, default_value_t = 2_000_000, value_name = "N")]
    pub max_flows: usize,
    /// Idle timeout of established TCP flows, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub tcp_idle_secs: u64,
    /// Idle timeout of UDP flows, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub udp_idle_secs: u64,
    /// Active timeout: a longer flow is reported in parts, in seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub active_secs: u64,
    /// Progress bar on stderr: auto shows it only on a terminal.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

/// When to draw a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// Only when stderr is a terminal.
    Auto,
    /// Never.
    Never,
}

/// `zonewatch flows`.
#[derive(Debug, ClapArgs)]
pub struct FlowsArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FlowFormat::Jsonl)]
    pub format: FlowFormat,
    /// Print export records as exported, one per record, without stitching
    /// the two directions (to compare with other decoders).
    #[arg(long)]
    pub unidirectional: bool,
}

/// Flow output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlowFormat {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
    /// Aligned columns for reading.
    Table,
}

/// `zonewatch analyze`.
#[derive(Debug, ClapArgs)]
pub struct AnalyzeArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// The zones file (TOML).
    #[arg(long, value_name = "FILE")]
    pub zones: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FindingFormat::Table)]
    pub format: FindingFormat,
    /// Exit 1 when a finding at or above this severity exists.
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<String>,
    /// Also print suppressed findings (they are always counted).
    #[arg(long)]
    pub show_suppressed: bool,
    /// Write, per finding, a pcap with the packets of its sample flows.
    #[arg(long, value_name = "DIR")]
    pub evidence_dir: Option<PathBuf>,
    /// Packets kept per sample flow with --evidence-dir.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub evidence_packets: usize,
    /// Sample flows kept per finding.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_evidence: usize,
}

/// Finding output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FindingFormat {
    /// Aligned columns for reading.
    Table,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// A Markdown report with evidence.
    Markdown,
}

/// `zonewatch zones ...`.
#[derive(Debug, Subcommand)]
pub enum ZonesCommand {
    /// Load a zones file and list every error (file:line).
    Check {
        /// The zones file.
        file: PathBuf,
    },
    /// Say which zone each side falls in and which rule decides a path, and why.
    Explain {
        /// The zones file.
        file: PathBuf,
        /// Initiator address.
        src: String,
        /// Responder address.
        dst: String,
        /// Service on the responder: tcp/5432, udp/53, icmp/8, proto/47.
        service: String,
    },
    /// Turn paths the monitor observed but no rule allows into a TOML patch
    /// of `allow` rules, for a human to review.
    Suggest {
        /// The monitor's store.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// The zones file to hold the paths against (default: the one the monitor used).
        #[arg(long, value_name = "FILE")]
        zones: Option<PathBuf>,
        /// Only paths seen in at least this many flows.
        #[arg(long, default_value_t = 1, value_name = "N")]
        min_flows: u64,
    },
}
