//! The monitor's configuration file (`zonewatch.toml`): read, checked with
//! every problem reported as `file:line: message`, and resolved into
//! [`Settings`] (relative paths are taken from the config file's folder).
//! [`Settings::to_toml`] prints the effective configuration, every default
//! filled in, in a form that reads back as the same settings.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use zonewatch_collector::exports::ExporterRange;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    zones: Spanned<String>,
    store: Option<Spanned<String>>,
    #[serde(default)]
    monitor: Option<Spanned<MonitorFile>>,
    #[serde(default)]
    flows: Option<Spanned<FlowsFile>>,
    #[serde(default)]
    source: Vec<Spanned<SourceFile>>,
    metrics: Option<Spanned<MetricsFile>>,
    dashboard: Option<Spanned<DashboardFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorFile {
    baseline: Option<Spanned<String>>,
    checkpoint: Option<Spanned<String>>,
    bucket: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
    commit_interval: Option<Spanned<String>>,
    silent_after: Option<Spanned<String>>,
    one_way_min_flows: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowsFile {
    tcp_idle: Option<Spanned<String>>,
    udp_idle: Option<Spanned<String>>,
    active: Option<Spanned<String>>,
    max_flows: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    name: Option<String>,
    // pcap_live
    interface: Option<String>,
    filter: Option<String>,
    snaplen: Option<i32>,
    promiscuous: Option<bool>,
    // netflow, sflow
    listen: Option<Spanned<String>>,
    #[serde(default)]
    allow_exporters: Vec<Spanned<String>>,
    default_sampling: Option<u32>,
    // watch
    path: Option<Spanned<String>>,
    settle: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    listen: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardFile {
    listen: Option<Spanned<String>>,
    token_env: Option<String>,
}

/// One configured source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSettings {
    /// Live capture on an interface (feature `live`).
    Live {
        /// Name in metrics and flows.
        name: String,
        /// Interface (`eth1`, `lo`, `any`).
        interface: String,
        /// BPF filter.
        filter: Option<String>,
        /// Bytes kept per packet.
        snaplen: i32,
        /// Promiscuous mode.
        promiscuous: bool,
    },
    /// NetFlow v5/v9/IPFIX (`netflow`) or sFlow (`sflow`) over UDP.
    Export {
        /// Name in metrics and flows.
        name: String,
        /// `netflow` or `sflow`.
        kind: &'static str,
        /// Address to bind.
        listen: SocketAddr,
        /// Exporters accepted (empty: any).
        allow_exporters: Vec<ExporterRange>,
        /// As written, for printing.
        allow_text: Vec<String>,
        /// Sampling assumed when an export states none.
        default_sampling: u32,
    },
    /// A folder where rotated captures and flow logs land.
    Watch {
        /// Name in metrics and flows.
        name: String,
        /// The folder.
        path: PathBuf,
        /// A file is complete once unchanged this long.
        settle_ms: u64,
    },
}

impl SourceSettings {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            SourceSettings::Live { name, .. }
            | SourceSettings::Export { name, .. }
            | SourceSettings::Watch { name, .. } => name,
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The config file itself.
    pub file: PathBuf,
    /// Zones file (hot-reloaded).
    pub zones: PathBuf,
    /// SQLite store.
    pub store: PathBuf,
    /// `new-path`: paths seen within this long of the first flow are the baseline.
    pub baseline_secs: u64,
    /// Live flows are reported in parts this often.
    pub checkpoint_secs: u64,
    /// Width of the store's aggregate buckets.
    pub bucket_secs: u64,
    /// Buckets older than this are deleted.
    pub retention_secs: u64,
    /// How often a batch is committed to the store.
    pub commit_interval_ms: u64,
    /// `visibility-gap`: a source with nothing for this long is silent.
    pub silent_after_secs: u64,
    /// `visibility-gap`: a source is one-way once this many flows ended
    /// and none of them was answered.
    pub one_way_min_flows: u64,
    /// TCP idle timeout.
    pub tcp_idle_secs: u64,
    /// UDP idle timeout.
    pub udp_idle_secs: u64,
    /// Active timeout.
    pub active_secs: u64,
    /// Flow table cap.
    pub max_flows: usize,
    /// Sources, in file order.
    pub sources: Vec<SourceSettings>,
    /// `/metrics` address (None: off).
    pub metrics: Option<SocketAddr>,
    /// The dashboard section, kept for printing (served by a later version).
    pub dashboard: Option<(Option<String>, Option<String>)>,
}

/// Byte offset to 1-based line.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

struct Diags<'a> {
    file: String,
    text: &'a str,
    list: Vec<(usize, String)>,
}

impl Diags<'_> {
    fn push(&mut self, span: &Range<usize>, message: String) {
        self.list.push((line_of(self.text, span.start), message));
    }
}

/// Parses `200ms`, `90s`, `5m`, `2h`, `7d`, or a bare number of seconds,
/// into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 90s, 5m, 2h, 7d"))?;
    let mult = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?}: use ms, s, m, h or d (e.g. 90s, 5m, 2h, 7d)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// [`parse_duration_ms`] for settings kept in whole seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let ms = parse_duration_ms(s)?;
    if !ms.is_multiple_of(1000) {
        return Err(format!("{:?}: whole seconds here (e.g. 1s)", s.trim()));
    }
    Ok(ms / 1000)
}

/// The shortest exact form of a duration in milliseconds (`7d`, `1s`, `200ms`).
fn fmt_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        fmt_secs(ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The shortest exact form of a duration (`7d`, `90s`).
fn fmt_secs(s: u64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s != 0 && s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// `HOST:PORT`, or a bare port on loopback.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| format!("{s:?} is not HOST:PORT (e.g. 127.0.0.1:2055) or a port"))
}

/// Reads and checks a config file; the error lists every problem, one per line.
pub fn load(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    parse(&text, path)
}

/// Checks config text read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Settings, String> {
    let mut d = Diags {
        file: path.display().to_string(),
        text,
        list: Vec::new(),
    };
    // Unknown keys and wrong types, all of them (serde stops at the first).
    for (span, message) in schema_problems(text) {
        d.push(&span, message);
    }
    if !d.list.is_empty() {
        return Err(render(&d));
    }
    let raw: ConfigFile = match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            d.push(&span, e.message().trim_end().to_string());
            return Err(render(&d));
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { base.join(p) }
    };
    let dur_with = |parse: fn(&str) -> Result<u64, String>,
                    field: &Option<Spanned<String>>,
                    default: u64,
                    what: &str,
                    d: &mut Diags| match field {
        None => default,
        Some(s) => match parse(s.get_ref()) {
            Ok(v) => v,
            Err(e) => {
                d.push(&s.span(), format!("{what}: {e}"));
                default
            }
        },
    };
    let dur = |field: &Option<Spanned<String>>, default: u64, what: &str, d: &mut Diags| {
        dur_with(parse_duration_secs, field, default, what, d)
    };
    let mon = raw.monitor.map(Spanned::into_inner).unwrap_or_default();
    let flows = raw.flows.map(Spanned::into_inner).unwrap_or_default();
    let baseline_secs = dur(&mon.baseline, 7 * 86_400, "monitor.baseline", &mut d);
    let checkpoint_secs = dur(&mon.checkpoint, 60, "monitor.checkpoint", &mut d);
    let bucket_secs = dur(&mon.bucket, 300, "monitor.bucket", &mut d);
    let retention_secs = dur(&mon.retention, 90 * 86_400, "monitor.retention", &mut d);
    let commit_interval_ms = dur_with(
        parse_duration_ms,
        &mon.commit_interval,
        1000,
        "monitor.commit_interval",
        &mut d,
    );
    let silent_after_secs = dur(&mon.silent_after, 300, "monitor.silent_after", &mut d);
    let tcp_idle_secs = dur(&flows.tcp_idle, 300, "flows.tcp_idle", &mut d);
    let udp_idle_secs = dur(&flows.udp_idle, 60, "flows.udp_idle", &mut d);
    let active_secs = dur(&flows.active, 1800, "flows.active", &mut d);
    if let Some(c) = &mon.checkpoint
        && checkpoint_secs == 0
    {
        d.push(&c.span(), "monitor.checkpoint must be at least 1s".into());
    }
    if let Some(b) = &mon.bucket
        && bucket_secs == 0
    {
        d.push(&b.span(), "monitor.bucket must be at least 1s".into());
    }

    let mut sources = Vec::new();
    let mut names = std::collections::HashMap::<String, usize>::new();
    for (i, s) in raw.source.iter().enumerate() {
        let span = s.span();
        let s = s.get_ref();
        let at = line_of(text, span.start);
        let kind = s.kind.get_ref().as_str();
        let want = |field: &str, ok: bool, d: &mut Diags| {
            if !ok {
                d.push(
                    &span,
                    format!("[[source]] #{} ({kind}): `{field}` is required", i + 1),
                );
            }
        };
        let stray = |fields: &[(&str, bool)], d: &mut Diags| {
            for (f, present) in fields {
                if *present {
                    d.push(
                        &span,
                        format!(
                            "[[source]] #{} ({kind}): `{f}` does not apply to this type",
                            i + 1
                        ),
                    );
                }
            }
        };
        let setting = match kind {
            "pcap_live" => {
                want("interface", s.interface.is_some(), &mut d);
                stray(
                    &[
                        ("listen", s.listen.is_some()),
                        ("path", s.path.is_some()),
                        ("allow_exporters", !s.allow_exporters.is_empty()),
                    ],
                    &mut d,
                );
                let interface = s.interface.clone().unwrap_or_default();
                Some(SourceSettings::Live {
                    name: s
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("live:{interface}")),
                    interface,
                    filter: s.filter.clone(),
                    snaplen: s.snaplen.unwrap_or(262_144),
                    promiscuous: s.promiscuous.unwrap_or(true),
                })
            }
            "netflow" | "ipfix" | "sflow" => {
                let kind: &'static str = if kind == "sflow" { "sflow" } else { "netflow" };
                want("listen", s.listen.is_some(), &mut d);
                stray(
                    &[
                        ("interface", s.interface.is_some()),
                        ("path", s.path.is_some()),
                        ("filter", s.filter.is_some()),
                    ],
                    &mut d,
                );
                let listen = match &s.listen {
                    Some(l) => match listen_addr(l.get_ref()) {
                        Ok(a) => a,
                        Err(e) => {
                            d.push(&l.span(), format!("[[source]] #{} listen: {e}", i + 1));
                            SocketAddr::from(([127, 0, 0, 1], 0))
                        }
                    },
                    None => SocketAddr::from(([127, 0, 0, 1], 0)),
                };
                let mut allow = Vec::new();
                for a in &s.allow_exporters {
                    match ExporterRange::parse(a.get_ref()) {
                        Ok(r) => allow.push(r),
                        Err(e) => d.push(
                            &a.span(),
                            format!("[[source]] #{} allow_exporters: {e}", i + 1),
                        ),
                    }
                }
                Some(SourceSettings::Export {
                    name: s.name.clone().unwrap_or_else(|| format!("{kind}@{listen}")),
                    kind,
                    listen,
                    allow_exporters: allow,
                    allow_text: s
                        .allow_exporters
                        .iter()
                        .map(|a| a.get_ref().clone())
                        .collect(),
                    default_sampling: s.default_sampling.unwrap_or(1).max(1),
                })
            }
            "watch" => {
                want("path", s.path.is_some(), &mut d);
                stray(
                    &[
                        ("interface", s.interface.is_some()),
                        ("listen", s.listen.is_some()),
                        ("filter", s.filter.is_some()),
                    ],
                    &mut d,
                );
                let path = s
                    .path
                    .as_ref()
                    .map(|p| resolve(p.get_ref()))
                    .unwrap_or_default();
                let settle_ms = dur_with(
                    parse_duration_ms,
                    &s.settle,
                    1000,
                    &format!("[[source]] #{} settle", i + 1),
                    &mut d,
                );
                Some(SourceSettings::Watch {
                    name: s
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("watch:{}", path.display())),
                    path,
                    settle_ms,
                })
            }
            other => {
                d.push(
                    &s.kind.span(),
                    format!(
                        "[[source]] #{}: unknown type {other:?}: expected pcap_live, netflow, sflow or watch",
                        i + 1
                    ),
                );
                None
            }
        };
        if let Some(setting) = setting {
            if let Some(prev) = names.insert(setting.name().to_string(), at) {
                d.push(
                    &span,
                    format!(
                        "[[source]] #{}: the name {:?} is already used by the source at line {prev}; give one a `name`",
                        i + 1,
                        setting.name()
                    ),
                );
            }
            sources.push(setting);
        }
    }
    if sources.is_empty() {
        d.push(
            &(0..0),
            "no [[source]]: add at least one (pcap_live, netflow, sflow or watch)".into(),
        );
    }
    let metrics = match &raw.metrics {
        Some(m) => match listen_addr(m.get_ref().listen.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                d.push(&m.get_ref().listen.span(), format!("metrics.listen: {e}"));
                None
            }
        },
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9187))),
    };
    let dashboard = raw.dashboard.as_ref().map(|db| {
        let db = db.get_ref();
        (
            db.listen.as_ref().map(|l| l.get_ref().clone()),
            db.token_env.clone(),
        )
    });
    if !d.list.is_empty() {
        return Err(render(&d));
    }
    Ok(Settings {
        file: path.to_path_buf(),
        zones: resolve(raw.zones.get_ref()),
        store: resolve(
            raw.store
                .as_ref()
                .map(|s| s.get_ref().as_str())
                .unwrap_or("zonewatch.db"),
        ),
        baseline_secs,
        checkpoint_secs,
        bucket_secs,
        retention_secs,
        commit_interval_ms,
        silent_after_secs,
        one_way_min_flows: mon.one_way_min_flows.unwrap_or(20),
        tcp_idle_secs,
        udp_idle_secs,
        active_secs,
        max_flows: flows.max_flows.unwrap_or(2_000_000),
        sources,
        metrics,
        dashboard,
    })
}

/// What a key holds.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    StrList,
    Table(&'static [(&'static str, Kind)]),
    Tables(&'static [(&'static str, Kind)]),
}

const MONITOR_KEYS: &[(&str, Kind)] = &[
    ("baseline", Kind::Str),
    ("checkpoint", Kind::Str),
    ("bucket", Kind::Str),
    ("retention", Kind::Str),
    ("commit_interval", Kind::Str),
    ("silent_after", Kind::Str),
    ("one_way_min_flows", Kind::Int),
];
const FLOWS_KEYS: &[(&str, Kind)] = &[
    ("tcp_idle", Kind::Str),
    ("udp_idle", Kind::Str),
    ("active", Kind::Str),
    ("max_flows", Kind::Int),
];
const SOURCE_KEYS: &[(&str, Kind)] = &[
    ("type", Kind::Str),
    ("name", Kind::Str),
    ("interface", Kind::Str),
    ("filter", Kind::Str),
    ("snaplen", Kind::Int),
    ("promiscuous", Kind::Bool),
    ("listen", Kind::Str),
    ("allow_exporters", Kind::StrList),
    ("default_sampling", Kind::Int),
    ("path", Kind::Str),
    ("settle", Kind::Str),
];
const METRICS_KEYS: &[(&str, Kind)] = &[("listen", Kind::Str)];
const DASHBOARD_KEYS: &[(&str, Kind)] = &[("listen", Kind::Str), ("token_env", Kind::Str)];
const TOP_KEYS: &[(&str, Kind)] = &[
    ("zones", Kind::Str),
    ("store", Kind::Str),
    ("monitor", Kind::Table(MONITOR_KEYS)),
    ("flows", Kind::Table(FLOWS_KEYS)),
    ("source", Kind::Tables(SOURCE_KEYS)),
    ("metrics", Kind::Table(METRICS_KEYS)),
    ("dashboard", Kind::Table(DASHBOARD_KEYS)),
];

/// Every unknown key and every value of the wrong type, with its span.
/// TOML syntax errors come out here too (one, where parsing stopped).
fn schema_problems(text: &str) -> Vec<(Range<usize>, String)> {
    use toml::de::{DeTable, DeValue};
    let mut out = Vec::new();
    let table = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            out.push((e.span().unwrap_or(0..0), e.message().trim_end().to_string()));
            return out;
        }
    };
    fn walk(
        table: &DeTable<'_>,
        keys: &[(&str, Kind)],
        at: &str,
        out: &mut Vec<(Range<usize>, String)>,
    ) {
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let path = if at.is_empty() {
                name.to_string()
            } else {
                format!("{at}.{name}")
            };
            let Some((_, kind)) = keys.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = keys.iter().map(|(n, _)| *n).collect();
                out.push((
                    k.span(),
                    format!(
                        "unknown key `{path}`; expected one of: {}",
                        known.join(", ")
                    ),
                ));
                continue;
            };
            let wrong = |what: &str, out: &mut Vec<(Range<usize>, String)>| {
                out.push((v.span(), format!("`{path}` must be {what}")));
            };
            match (kind, v.get_ref()) {
                (Kind::Str, DeValue::String(_))
                | (Kind::Int, DeValue::Integer(_))
                | (Kind::Bool, DeValue::Boolean(_)) => {}
                (Kind::Str, _) => wrong("a string", out),
                (Kind::Int, _) => wrong("an integer", out),
                (Kind::Bool, _) => wrong("true or false", out),
                (Kind::StrList, DeValue::Array(a)) => {
                    for item in a.iter() {
                        if !matches!(item.get_ref(), DeValue::String(_)) {
                            out.push((item.span(), format!("`{path}` must hold strings")));
                        }
                    }
                }
                (Kind::StrList, _) => wrong("a list of strings", out),
                (Kind::Table(keys), DeValue::Table(t)) => walk(t, keys, &path, out),
                (Kind::Table(_), _) => wrong(&format!("a table ([{path}])"), out),
                (Kind::Tables(keys), DeValue::Array(a)) => {
                    for (i, item) in a.iter().enumerate() {
                        match item.get_ref() {
                            DeValue::Table(t) => {
                                walk(t, keys, &format!("{path}[{}]", i + 1), out);
                            }
                            _ => out.push((
                                item.span(),
                                format!("`{path}` must be tables ([[{path}]])"),
                            )),
                        }
                    }
                }
                (Kind::Tables(_), _) => wrong(&format!("tables ([[{path}]])"), out),
            }
        }
    }
    walk(table.get_ref(), TOP_KEYS, "", &mut out);
    if !table.get_ref().iter().any(|(k, _)| k.get_ref() == "zones") {
        out.push((
            0..0,
            "`zones` is required: the zones file to hold traffic against".into(),
        ));
    }
    out
}

fn render(d: &Diags<'_>) -> String {
    let mut list = d.list.clone();
    list.sort_by_key(|(line, _)| *line);
    list.iter()
        .map(|(line, m)| format!("{}:{line}: {m}", d.file))
        .collect::<Vec<_>>()
        .join("\n")
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Settings {
    /// The effective configuration as TOML (defaults filled in, paths resolved).
    pub fn to_toml(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# effective configuration of {}", self.file.display());
        let _ = writeln!(o, "zones = {}", quote(&self.zones.display().to_string()));
        let _ = writeln!(o, "store = {}", quote(&self.store.display().to_string()));
        let _ = writeln!(o, "\n[monitor]");
        let _ = writeln!(o, "baseline = \"{}\"", fmt_secs(self.baseline_secs));
        let _ = writeln!(o, "checkpoint = \"{}\"", fmt_secs(self.checkpoint_secs));
        let _ = writeln!(o, "bucket = \"{}\"", fmt_secs(self.bucket_secs));
        let _ = writeln!(o, "retention = \"{}\"", fmt_secs(self.retention_secs));
        let _ = writeln!(
            o,
            "commit_interval = \"{}\"",
            fmt_ms(self.commit_interval_ms)
        );
        let _ = writeln!(o, "silent_after = \"{}\"", fmt_secs(self.silent_after_secs));
        let _ = writeln!(o, "one_way_min_flows = {}", self.one_way_min_flows);
        let _ = writeln!(o, "\n[flows]");
        let _ = writeln!(o, "tcp_idle = \"{}\"", fmt_secs(self.tcp_idle_secs));
        let _ = writeln!(o, "udp_idle = \"{}\"", fmt_secs(self.udp_idle_secs));
        let _ = writeln!(o, "active = \"{}\"", fmt_secs(self.active_secs));
        let _ = writeln!(o, "max_flows = {}", self.max_flows);
        for s in &self.sources {
            let _ = writeln!(o, "\n[[source]]");
            match s {
                SourceSettings::Live {
                    name,
                    interface,
                    filter,
                    snaplen,
                    promiscuous,
                } => {
                    let _ = writeln!(o, "type = \"pcap_live\"\nname = {}", quote(name));
                    let _ = writeln!(o, "interface = {}", quote(interface));
                    if let Some(f) = filter {
                        let _ = writeln!(o, "filter = {}", quote(f));
                    }
                    let _ = writeln!(o, "snaplen = {snaplen}\npromiscuous = {promiscuous}");
                }
                SourceSettings::Export {
                    name,
                    kind,
                    listen,
                    allow_text,
                    default_sampling,
                    ..
                } => {
                    let _ = writeln!(o, "type = \"{kind}\"\nname = {}", quote(name));
                    let _ = writeln!(o, "listen = \"{listen}\"");
                    let list: Vec<String> = allow_text.iter().map(|a| quote(a)).collect();
                    let _ = writeln!(o, "allow_exporters = [{}]", list.join(", "));
                    let _ = writeln!(o, "default_sampling = {default_sampling}");
                }
                SourceSettings::Watch {
                    name,
                    path,
                    settle_ms,
                } => {
                    let _ = writeln!(o, "type = \"watch\"\nname = {}", quote(name));
                    let _ = writeln!(o, "path = {}", quote(&path.display().to_string()));
                    let _ = writeln!(o, "settle = \"{}\"", fmt_ms(*settle_ms));
                }
            }
        }
        if let Some(m) = self.metrics {
            let _ = writeln!(o, "\n[metrics]\nlisten = \"{m}\"");
        }
        if let Some((listen, token_env)) = &self.dashboard {
            let _ = writeln!(o, "\n[dashboard]");
            if let Some(l) = listen {
                let _ = writeln!(o, "listen = {}", quote(l));
            }
            if let Some(t) = token_env {
                let _ = writeln!(o, "token_env = {}", quote(t));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
zones = "zones.toml"
store = "state/zonewatch.db"

[monitor]
baseline = "1h"
checkpoint = "30s"

[[source]]
type = "netflow"
listen = "127.0.0.1:2055"
allow_exporters = ["192.0.2.0/24"]

[[source]]
type = "watch"
path = "/var/spool/zonewatch"

[metrics]
listen = "127.0.0.1:9187"
"#;

    #[test]
    fn defaults_fill_in_and_the_dump_reads_back_as_the_same_settings() {
        let s = parse(GOOD, Path::new("/etc/zonewatch/zonewatch.toml")).expect("valid");
        assert_eq!(s.zones, Path::new("/etc/zonewatch/zones.toml"));
        assert_eq!(s.store, Path::new("/etc/zonewatch/state/zonewatch.db"));
        assert_eq!(
            (s.baseline_secs, s.checkpoint_secs, s.bucket_secs),
            (3600, 30, 300)
        );
        assert_eq!(s.sources.len(), 2);
        assert_eq!(s.sources[0].name(), "netflow@127.0.0.1:2055");
        let dumped = s.to_toml();
        let again =
            parse(&dumped, Path::new("/etc/zonewatch/zonewatch.toml")).expect("dump reads back");
        assert_eq!(again, s);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"zones = "zones.toml"

[monitor]
baseline = "7 weeks"

[[source]]
type = "netflow"
listen = "127.0.0.1:99999"

[[source]]
type = "carrier-pigeon"

[[source]]
type = "watch"

[metrics]
listen = "localhost"
"#;
        let e = parse(text, Path::new("z.toml")).expect_err("invalid");
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 5, "{e}");
        assert!(lines[0].starts_with("z.toml:4: monitor.baseline"), "{e}");
        assert!(
            lines[1].starts_with("z.toml:8: [[source]] #1 listen"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("z.toml:11: [[source]] #2: unknown type"),
            "{e}"
        );
        assert!(
            lines[3].contains("z.toml:13: [[source]] #3 (watch): `path` is required"),
            "{e}"
        );
        assert!(lines[4].starts_with("z.toml:17: metrics.listen"), "{e}");
    }

    #[test]
    fn syntax_errors_and_unknown_keys_name_their_line() {
        let e = parse(
            "zones = \"z\"\n[[source]]\ntype = \"watch\"\npaht = \"x\"\n",
            Path::new("c.toml"),
        )
        .expect_err("unknown key");
        assert!(
            e.starts_with("c.toml:4: unknown key `source[1].paht`"),
            "{e}"
        );
    }

    #[test]
    fn every_unknown_key_and_wrong_type_is_reported_at_once() {
        let text = "zones = \"z.toml\"\nstroe = \"x.db\"\n[monitor]\ncheckpont = \"1m\"\nbucket = 5\n[[source]]\ntype = \"netflow\"\nlisten = \"2055\"\nallow_exporters = \"192.0.2.0/24\"\n[metrics]\nlisten = true\n";
        let e = parse(text, Path::new("c.toml")).expect_err("invalid");
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 5, "{e}");
        assert!(lines[0].starts_with("c.toml:2: unknown key `stroe`"), "{e}");
        assert!(
            lines[1].starts_with("c.toml:4: unknown key `monitor.checkpont`"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("c.toml:5: `monitor.bucket` must be a string"),
            "{e}"
        );
        assert!(
            lines[3].starts_with("c.toml:9: `source[1].allow_exporters` must be a list"),
            "{e}"
        );
        assert!(
            lines[4].starts_with("c.toml:11: `metrics.listen` must be a string"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("5m"), Ok(300));
        assert_eq!(parse_duration_secs("7d"), Ok(604_800));
        assert_eq!(parse_duration_secs("42"), Ok(42));
        assert!(parse_duration_secs("5 parsecs").is_err());
        assert!(parse_duration_secs("1500ms").is_err(), "whole seconds only");
        assert_eq!(parse_duration_secs("2000ms"), Ok(2));
        assert_eq!(parse_duration_ms("200ms"), Ok(200));
        assert_eq!(parse_duration_ms("2s"), Ok(2000));
        assert_eq!(parse_duration_ms("7"), Ok(7000));
        // A value whose milliseconds do not fit is an error, not a wrap.
        assert!(parse_duration_ms("18446744073709552").is_err());
        assert!(parse_duration_secs("18446744073709552").is_err());
        assert_eq!(fmt_ms(200), "200ms");
        assert_eq!(fmt_ms(60_000), "1m");
        assert_eq!(fmt_secs(604_800), "7d");
        assert_eq!(fmt_secs(90), "90s");
        assert_eq!(fmt_secs(0), "0s");
    }
}
