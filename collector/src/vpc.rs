//! AWS VPC Flow Logs: text lines to [`ExportRecord`]s.
//!
//! A flow log file holds one flow per line, fields separated by spaces, `-`
//! for an absent value. The default (version 2) format has 14 fields:
//!
//! ```text
//! version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
//! ```
//!
//! Files written to S3 start with a header line naming the fields; custom
//! formats name them too, in their own order and with later fields
//! (`vpc-id`, `tcp-flags`, `pkt-srcaddr`, `flow-direction`, ...), either
//! plainly or as `${field}`. [`VpcReader`] takes the column order from such a
//! header and falls back to the default format without one.
//!
//! Each line with `log-status` `OK` (or without that field) gives one
//! [`ExportRecord`]: protocol [`ExportProtocol::VpcFlowLog`], `exporter`
//! unspecified (0.0.0.0: the caller names the source), `domain` a stable
//! FNV-1a hash of `interface-id`, `sampling` 1, `first`/`last` from
//! `start`/`end` (epoch seconds), `action` from `ACCEPT`/`REJECT`. When the
//! packet-level addresses `pkt-srcaddr` / `pkt-dstaddr` are present they are
//! used instead of `srcaddr` / `dstaddr` (behind a NAT gateway or for pods
//! they name the hosts that really talked). `NODATA` and `SKIPDATA` lines
//! are counted in [`VpcStats`], not turned into records.
//!
//! # Contract
//!
//! The input is untrusted: a line that cannot be read (wrong number of
//! fields, a bad address or number, not UTF-8, longer than
//! [`MAX_LINE_BYTES`]) gives a [`VpcError`] naming the file, line and field,
//! is counted by reason, and the reader goes on with the next line. Memory
//! is bounded by the line limit. A read error (a corrupt gzip stream) ends
//! the stream after one error.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};

use crate::export::{ExportProtocol, ExportRecord, FlowAction};
use crate::time::Timestamp;

/// Longest line read; a longer one is a `line-too-long` error and skipped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The fields of the default (version 2) format, in order.
pub const DEFAULT_FIELDS: [&str; 14] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

/// The field names AWS documents for versions 3 to 8, beyond the default
/// ones: with [`DEFAULT_FIELDS`] they recognise a header line. Unknown names
/// in a header are accepted and ignored.
const LATER_FIELDS: [&str; 28] = [
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
    "reject-reason",
    "resource-id",
    "encryption-status",
];

/// The fields a record is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    InterfaceId,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    TcpFlags,
    PktSrcAddr,
    PktDstAddr,
}

const FIELD_COUNT: usize = 15;

impl Field {
    fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "interface-id" => Field::InterfaceId,
            "srcaddr" => Field::SrcAddr,
            "dstaddr" => Field::DstAddr,
            "srcport" => Field::SrcPort,
            "dstport" => Field::DstPort,
            "protocol" => Field::Protocol,
            "packets" => Field::Packets,
            "bytes" => Field::Bytes,
            "start" => Field::Start,
            "end" => Field::End,
            "action" => Field::Action,
            "log-status" => Field::LogStatus,
            "tcp-flags" => Field::TcpFlags,
            "pkt-srcaddr" => Field::PktSrcAddr,
            "pkt-dstaddr" => Field::PktDstAddr,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A header token without its `${...}` wrapping.
fn strip_braces(token: &str) -> &str {
    token
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(token)
}

/// A field name as written in a header: `${srcaddr}` or `srcaddr`,
/// Athena-style `account_id` normalised to `account-id`.
fn field_name(token: &str) -> String {
    strip_braces(token).replace('_', "-").to_ascii_lowercase()
}

/// Whether a header token names a documented field (no allocation: this
/// runs on every line).
fn is_known_field(token: &str) -> bool {
    let t = strip_braces(token).as_bytes();
    let norm = |b: u8| {
        if b == b'_' {
            b'-'
        } else {
            b.to_ascii_lowercase()
        }
    };
    DEFAULT_FIELDS
        .iter()
        .chain(&LATER_FIELDS)
        .any(|k| k.len() == t.len() && t.iter().zip(k.bytes()).all(|(&a, b)| norm(a) == b))
}

/// Whether a line is a header: most of its tokens, and at least two, are
/// documented field names.
fn is_header(line: &str) -> bool {
    let (mut tokens, mut known) = (0usize, 0usize);
    for t in line.split_ascii_whitespace() {
        tokens += 1;
        if is_known_field(t) {
            known += 1;
        }
    }
    known >= 2 && known * 2 > tokens
}

/// Whether `first_line` starts a VPC flow log: a header naming `srcaddr` and
/// `dstaddr` (default or custom format), or a default-format data line
/// (14 fields, version 2, addresses and a log status where expected).
pub fn looks_like_vpc_flow_log(first_line: &str) -> bool {
    if is_header(first_line) {
        let names: Vec<String> = first_line
            .split_ascii_whitespace()
            .map(field_name)
            .collect();
        return names.iter().any(|n| n == "srcaddr") && names.iter().any(|n| n == "dstaddr");
    }
    let f: Vec<&str> = first_line.split_ascii_whitespace().collect();
    let addr = |s: &&str| *s == "-" || s.parse::<IpAddr>().is_ok();
    f.len() == 14
        && f.first() == Some(&"2")
        && f.get(3).is_some_and(addr)
        && f.get(4).is_some_and(addr)
        && f.get(13)
            .is_some_and(|s| matches!(*s, "OK" | "NODATA" | "SKIPDATA"))
}

/// A line that could not be turned into a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {detail}")]
pub struct VpcError {
    /// The file (or stream) name given to [`VpcReader::new`].
    pub file: String,
    /// Line number, from 1.
    pub line: u64,
    /// Stable name for counters: `field-count`, `missing-address`,
    /// `bad-address`, `bad-port`, `bad-protocol`, `bad-number`, `bad-time`,
    /// `missing-time`, `bad-action`, `bad-log-status`, `bad-encoding`,
    /// `line-too-long`, `io`.
    pub reason: &'static str,
    /// What was wrong, naming the field and value.
    pub detail: String,
}

/// What a [`VpcReader`] has read so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpcStats {
    /// Lines read, headers and blank lines included.
    pub lines: u64,
    /// Header lines (field names).
    pub header_lines: u64,
    /// Empty lines, skipped.
    pub blank_lines: u64,
    /// Records returned.
    pub records: u64,
    /// `NODATA` lines: no traffic on the interface in the interval.
    pub no_data: u64,
    /// `SKIPDATA` lines: records AWS could not capture in the interval.
    pub skip_data: u64,
    /// Errors returned, by [`VpcError::reason`].
    pub errors: BTreeMap<&'static str, u64>,
}

/// The column of each [`Field`] in the current format.
#[derive(Debug, Clone)]
struct Columns {
    /// For each column, the field it holds (`None`: a field we do not use).
    fields: Vec<Option<Field>>,
}

impl Columns {
    fn from_names<'a>(names: impl Iterator<Item = &'a str>) -> Columns {
        Columns {
            fields: names.map(|n| Field::from_name(&field_name(n))).collect(),
        }
    }

    fn default_v2() -> Columns {
        Columns::from_names(DEFAULT_FIELDS.into_iter())
    }
}

/// The input, decompressed if it started with the gzip magic.
enum Input<R: BufRead> {
    Plain(R),
    Gzip(BufReader<flate2::bufread::MultiGzDecoder<R>>),
}

impl<R: BufRead> Input<R> {
    fn reader(&mut self) -> &mut dyn BufRead {
        match self {
            Input::Plain(r) => r,
            Input::Gzip(r) => r,
        }
    }
}

/// Reads VPC flow log records from a plain or gzip-compressed stream.
pub struct VpcReader<R: BufRead> {
    input: Input<R>,
    file: String,
    line: u64,
    columns: Option<Columns>,
    buf: Vec<u8>,
    stats: VpcStats,
    /// Set after a read error: the stream is over.
    done: bool,
    /// An error met in [`VpcReader::new`], returned first.
    pending: Option<io::Error>,
}

/// What one line turned into.
enum Line {
    Record(Box<ExportRecord>),
    Skipped,
}

impl<R: BufRead> VpcReader<R> {
    /// A reader over `reader` (gzip is detected from its first bytes);
    /// `name` is used in error messages.
    pub fn new(mut reader: R, name: &str) -> Self {
        let (gzip, pending) = match reader.fill_buf() {
            Ok(head) => (head.starts_with(&[0x1f, 0x8b]), None),
            Err(e) => (false, Some(e)),
        };
        let input = if gzip {
            Input::Gzip(BufReader::new(flate2::bufread::MultiGzDecoder::new(reader)))
        } else {
            Input::Plain(reader)
        };
        VpcReader {
            input,
            file: name.to_string(),
            line: 0,
            columns: None,
            buf: Vec::new(),
            stats: VpcStats::default(),
            done: false,
            pending,
        }
    }

    /// What was read so far.
    pub fn stats(&self) -> &VpcStats {
        &self.stats
    }

    /// The next record, an error for a bad line (the reader goes on after
    /// it), or `None` at the end of the stream.
    pub fn next_record(&mut self) -> Option<Result<ExportRecord, VpcError>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(e) = self.pending.take() {
                self.done = true;
                return Some(Err(self.error("io", format!("read failed: {e}"))));
            }
            let too_long = match read_line_bounded(self.input.reader(), &mut self.buf) {
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(too_long)) => too_long,
                Err(e) => {
                    self.done = true;
                    self.line += 1;
                    return Some(Err(self.error("io", format!("read failed: {e}"))));
                }
            };
            self.line += 1;
            self.stats.lines += 1;
            if too_long {
                return Some(Err(self.error(
                    "line-too-long",
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                )));
            }
            let buf = std::mem::take(&mut self.buf);
            let result = match std::str::from_utf8(&buf) {
                Ok(text) => self.parse_line(text),
                Err(e) => Err(("bad-encoding", format!("not UTF-8: {e}"))),
            };
            self.buf = buf;
            match result {
                Ok(Line::Record(rec)) => {
                    self.stats.records += 1;
                    return Some(Ok(*rec));
                }
                Ok(Line::Skipped) => {}
                Err((reason, detail)) => return Some(Err(self.error(reason, detail))),
            }
        }
    }

    fn error(&mut self, reason: &'static str, detail: String) -> VpcError {
        *self.stats.errors.entry(reason).or_insert(0) += 1;
        VpcError {
            file: self.file.clone(),
            line: self.line,
            reason,
            detail,
        }
    }

    fn parse_line(&mut self, text: &str) -> Result<Line, (&'static str, String)> {
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            self.stats.blank_lines += 1;
            return Ok(Line::Skipped);
        }
        // A header sets the format; files concatenated together repeat it.
        if is_header(text) {
            self.stats.header_lines += 1;
            self.columns = Some(Columns::from_names(text.split_ascii_whitespace()));
            return Ok(Line::Skipped);
        }
        let columns = self.columns.get_or_insert_with(Columns::default_v2);
        let mut values: [Option<&str>; FIELD_COUNT] = [None; FIELD_COUNT];
        let mut count = 0usize;
        for (i, token) in text.split_ascii_whitespace().enumerate() {
            count = i + 1;
            if let Some(Some(field)) = columns.fields.get(i)
                && let Some(slot) = values.get_mut(field.index())
                && token != "-"
            {
                *slot = Some(token);
            }
        }
        if count != columns.fields.len() {
            return Err((
                "field-count",
                format!("{count} fields, the format has {}", columns.fields.len()),
            ));
        }
        let get = |f: Field| values.get(f.index()).copied().flatten();
        match get(Field::LogStatus) {
            None | Some("OK") => {}
            Some("NODATA") => {
                self.stats.no_data += 1;
                return Ok(Line::Skipped);
            }
            Some("SKIPDATA") => {
                self.stats.skip_data += 1;
                return Ok(Line::Skipped);
            }
            Some(other) => {
                return Err((
                    "bad-log-status",
                    format!("log-status {other:?} is not OK, NODATA or SKIPDATA"),
                ));
            }
        }
        let addr = |f: Field, name: &str| -> Result<Option<IpAddr>, (&'static str, String)> {
            get(f)
                .map(|v| {
                    v.parse::<IpAddr>()
                        .map_err(|_| ("bad-address", format!("{name} {v:?} is not an IP address")))
                })
                .transpose()
        };
        let src = addr(Field::PktSrcAddr, "pkt-srcaddr")?.or(addr(Field::SrcAddr, "srcaddr")?);
        let dst = addr(Field::PktDstAddr, "pkt-dstaddr")?.or(addr(Field::DstAddr, "dstaddr")?);
        let (Some(src), Some(dst)) = (src, dst) else {
            return Err((
                "missing-address",
                "srcaddr or dstaddr is absent".to_string(),
            ));
        };
        let start = number::<i64>(get(Field::Start), "start", "bad-time")?;
        let end = number::<i64>(get(Field::End), "end", "bad-time")?;
        let (first, last) = match (start, end) {
            (Some(s), Some(e)) => (s, e),
            (Some(t), None) | (None, Some(t)) => (t, t),
            (None, None) => {
                return Err(("missing-time", "start and end are absent".to_string()));
            }
        };
        let action = match get(Field::Action) {
            None => None,
            Some("ACCEPT") => Some(FlowAction::Accept),
            Some("REJECT") => Some(FlowAction::Reject),
            Some(other) => {
                return Err((
                    "bad-action",
                    format!("action {other:?} is not ACCEPT or REJECT"),
                ));
            }
        };
        Ok(Line::Record(Box::new(ExportRecord {
            protocol: ExportProtocol::VpcFlowLog,
            exporter: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            domain: get(Field::InterfaceId).map_or(0, fnv1a32),
            template_id: None,
            first: Timestamp::from_secs_nanos(first, 0),
            last: Timestamp::from_secs_nanos(last, 0),
            src,
            dst,
            proto: number(get(Field::Protocol), "protocol", "bad-protocol")?.unwrap_or(0),
            sport: number(get(Field::SrcPort), "srcport", "bad-port")?.unwrap_or(0),
            dport: number(get(Field::DstPort), "dstport", "bad-port")?.unwrap_or(0),
            packets: number(get(Field::Packets), "packets", "bad-number")?.unwrap_or(0),
            bytes: number(get(Field::Bytes), "bytes", "bad-number")?.unwrap_or(0),
            tcp_flags: number(get(Field::TcpFlags), "tcp-flags", "bad-number")?.unwrap_or(0),
            sampling: 1,
            direction: None,
            reverse: None,
            vlan: None,
            input_if: None,
            output_if: None,
            action,
        })))
    }
}

/// Parses an optional decimal field into `T`, naming the field on error.
fn number<T: std::str::FromStr>(
    value: Option<&str>,
    name: &str,
    reason: &'static str,
) -> Result<Option<T>, (&'static str, String)> {
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| (reason, format!("{name} {v:?} is not a valid number")))
        })
        .transpose()
}

/// FNV-1a, 32 bits: a hash that stays the same across runs and versions.
fn fnv1a32(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Reads one line (without its newline) into `buf`, keeping at most
/// [`MAX_LINE_BYTES`]. `Ok(None)` at the end of the stream, `Ok(Some(true))`
/// when the line was longer than the limit (the rest was skipped).
fn read_line_bounded(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let (mut any, mut too_long) = (false, false);
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(too_long));
        }
        any = true;
        let (part, used, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (chunk.get(..i).unwrap_or_default(), i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        if part.len() > room {
            too_long = true;
        }
        if !too_long {
            buf.extend_from_slice(part);
        }
        r.consume(used);
        if end {
            return Ok(Some(too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    const ACCEPT: &str = "2 123456789010 eni-1235b8ca123456789 198.51.100.7 10.2.0.10 51514 5432 6 20 4249 1418530010 1418530070 ACCEPT OK";
    const REJECT: &str = "2 123456789010 eni-1235b8ca123456789 203.0.113.12 10.2.0.10 0 0 1 4 336 1432917027 1432917142 REJECT OK";
    const NODATA: &str =
        "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA";

    fn read(text: &str) -> (Vec<Result<ExportRecord, VpcError>>, VpcStats) {
        let mut r = VpcReader::new(text.as_bytes(), "flows.log");
        let items = std::iter::from_fn(|| r.next_record()).collect();
        (items, r.stats().clone())
    }

    fn ok(items: &[Result<ExportRecord, VpcError>]) -> Vec<&ExportRecord> {
        items.iter().filter_map(|i| i.as_ref().ok()).collect()
    }

    fn errors(items: &[Result<ExportRecord, VpcError>]) -> Vec<&VpcError> {
        items.iter().filter_map(|i| i.as_ref().err()).collect()
    }

    #[test]
    fn default_format_with_header() {
        let (items, stats) = read(&format!("{HEADER}\n{ACCEPT}\n{REJECT}\n{NODATA}\n"));
        let recs = ok(&items);
        assert_eq!(recs.len(), 2);
        assert!(errors(&items).is_empty());
        let r = recs[0];
        assert_eq!(r.protocol, ExportProtocol::VpcFlowLog);
        assert_eq!(r.exporter, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(r.src, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(r.dst, "10.2.0.10".parse::<IpAddr>().unwrap());
        assert_eq!((r.proto, r.sport, r.dport), (6, 51514, 5432));
        assert_eq!((r.packets, r.bytes, r.sampling), (20, 4249, 1));
        assert_eq!(r.first, Timestamp::from_secs_nanos(1_418_530_010, 0));
        assert_eq!(r.last, Timestamp::from_secs_nanos(1_418_530_070, 0));
        assert_eq!(r.action, Some(FlowAction::Accept));
        assert_eq!(r.domain, fnv1a32("eni-1235b8ca123456789"));
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        assert_eq!(recs[1].action, Some(FlowAction::Reject));
        assert_eq!(recs[1].proto, 1);
        assert_eq!(
            (
                stats.lines,
                stats.header_lines,
                stats.records,
                stats.no_data
            ),
            (4, 1, 2, 1)
        );
    }

    #[test]
    fn default_format_without_header_and_crlf() {
        let (items, stats) = read(&format!("{ACCEPT}\r\n\r\n{REJECT}"));
        assert_eq!(ok(&items).len(), 2);
        assert_eq!((stats.blank_lines, stats.header_lines), (1, 0));
        assert!(looks_like_vpc_flow_log(ACCEPT));
        assert!(looks_like_vpc_flow_log(HEADER));
        assert!(looks_like_vpc_flow_log(NODATA));
        assert!(!looks_like_vpc_flow_log("hello world"));
        assert!(!looks_like_vpc_flow_log("version account-id interface-id"));
        assert!(!looks_like_vpc_flow_log(""));
    }

    #[test]
    fn custom_format_with_v5_fields() {
        let header = "${version} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${account-id} ${type} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr} ${pkt-dstaddr} ${protocol} ${bytes} ${packets} ${start} ${end} ${action} ${tcp-flags} ${log-status} ${region} ${az-id} ${sublocation-type} ${sublocation-id} ${pkt-src-aws-service} ${pkt-dst-aws-service} ${flow-direction} ${traffic-path}";
        assert!(looks_like_vpc_flow_log(header));
        let nat = "5 vpc-7f3a subnet-aa01 i-01234567890123456 eni-1111 123456789010 IPv4 10.40.1.175 10.40.2.236 39812 80 10.40.1.175 203.0.113.5 6 3188 16 1618280000 1618280060 ACCEPT 19 OK us-east-1 use1-az4 - - - AMAZON egress 8";
        let v6 = "5 vpc-7f3a subnet-aa01 - eni-2222 123456789010 IPv6 2001:db8::1 2001:db8::2 443 50000 - - 6 1200 3 1618280001 1618280002 REJECT 2 OK us-east-1 use1-az4 - - - - ingress -";
        let (items, _) = read(&format!("{header}\n{nat}\n{v6}\n"));
        assert!(errors(&items).is_empty(), "{:?}", errors(&items));
        let recs = ok(&items);
        // Packet-level addresses win over the interface's.
        assert_eq!(recs[0].src, "10.40.1.175".parse::<IpAddr>().unwrap());
        assert_eq!(recs[0].dst, "203.0.113.5".parse::<IpAddr>().unwrap());
        assert_eq!(
            (recs[0].bytes, recs[0].packets, recs[0].tcp_flags),
            (3188, 16, 19)
        );
        assert_eq!(recs[1].src, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!((recs[1].sport, recs[1].dport), (443, 50000));
        assert_eq!(recs[1].action, Some(FlowAction::Reject));
        // Plain names and Athena's underscores work too.
        let plain = "account_id action srcaddr dstaddr start end";
        let (items, _) = read(&format!("{plain}\n1 ACCEPT 192.0.2.1 192.0.2.2 10 20\n"));
        assert_eq!(ok(&items)[0].last, Timestamp::from_secs_nanos(20, 0));
    }

    #[test]
    fn skipdata_is_counted() {
        let skip = "2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - SKIPDATA";
        let (items, stats) = read(&format!("{skip}\n{ACCEPT}\n"));
        assert_eq!(ok(&items).len(), 1);
        assert_eq!(stats.skip_data, 1);
    }

    #[test]
    fn bad_lines_are_errors_with_line_numbers_and_reading_goes_on() {
        let text = [
            HEADER,
            ACCEPT,
            "2 123456789010 eni-1 198.51.100.7 10.2.0.10 1 2 6 20",
            "2 123456789010 eni-1 198.51.100.300 10.2.0.10 1 2 6 20 4249 1418530010 1418530070 ACCEPT OK",
            "2 123456789010 eni-1 198.51.100.7 10.2.0.10 1 2 6 twenty 4249 1418530010 1418530070 ACCEPT OK",
            "2 123456789010 eni-1 198.51.100.7 10.2.0.10 1 70000 6 20 4249 1418530010 1418530070 ACCEPT OK",
            "2 123456789010 eni-1 198.51.100.7 10.2.0.10 1 2 6 20 4249 1418530010 1418530070 DROP OK",
            "2 123456789010 eni-1 - 10.2.0.10 1 2 6 20 4249 1418530010 1418530070 ACCEPT OK",
            REJECT,
        ]
        .join("\n");
        let (items, stats) = read(&text);
        assert_eq!(ok(&items).len(), 2);
        let errs = errors(&items);
        let got: Vec<(u64, &str)> = errs.iter().map(|e| (e.line, e.reason)).collect();
        assert_eq!(
            got,
            [
                (3, "field-count"),
                (4, "bad-address"),
                (5, "bad-number"),
                (6, "bad-port"),
                (7, "bad-action"),
                (8, "missing-address")
            ]
        );
        assert_eq!(
            errs[1].to_string(),
            "flows.log:4: srcaddr \"198.51.100.300\" is not an IP address"
        );
        assert_eq!(
            errs[0].to_string(),
            "flows.log:3: 9 fields, the format has 14"
        );
        assert_eq!(stats.errors.get("bad-port"), Some(&1));
        assert_eq!(stats.errors.values().sum::<u64>(), 6);
    }

    #[test]
    fn long_and_non_utf8_lines() {
        let mut text = vec![b'2'; MAX_LINE_BYTES + 10];
        text.push(b'\n');
        text.extend_from_slice(b"\xff\xfe\n");
        text.extend_from_slice(ACCEPT.as_bytes());
        let mut r = VpcReader::new(&text[..], "x.log");
        assert_eq!(
            r.next_record().unwrap().unwrap_err().reason,
            "line-too-long"
        );
        assert_eq!(r.next_record().unwrap().unwrap_err().reason, "bad-encoding");
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!(rec.dport, 5432);
        assert!(r.next_record().is_none());
        assert_eq!(r.stats().lines, 3);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn never_panics_on_arbitrary_lines(
            lines in proptest::collection::vec("[ -~\\t]{0,120}", 0..6),
            header in proptest::bool::ANY,
        ) {
            let mut text = if header { format!("{HEADER}\n") } else { String::new() };
            text.push_str(&lines.join("\n"));
            let (items, stats) = read(&text);
            proptest::prop_assert_eq!(stats.records + stats.errors.values().sum::<u64>(), items.len() as u64);
            for l in &lines {
                let _ = looks_like_vpc_flow_log(l);
            }
        }
    }

    #[test]
    fn gzip_input() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        writeln!(gz, "{HEADER}\n{ACCEPT}\n{REJECT}").unwrap();
        let bytes = gz.finish().unwrap();
        let mut r = VpcReader::new(&bytes[..], "flows.log.gz");
        let recs: Vec<_> = std::iter::from_fn(|| r.next_record()).collect();
        assert_eq!(recs.len(), 2);
        assert!(recs.iter().all(Result::is_ok));
        // A corrupt gzip stream: one io error, then the end.
        let mut bad = bytes.clone();
        bad.truncate(bytes.len() / 2);
        let mut r = VpcReader::new(&bad[..], "cut.gz");
        let items: Vec<_> = std::iter::from_fn(|| r.next_record()).collect();
        assert_eq!(items.last().unwrap().as_ref().unwrap_err().reason, "io");
        assert!(r.next_record().is_none());
    }
}
