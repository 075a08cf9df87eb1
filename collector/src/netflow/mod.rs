//! The `netflow` input: NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX
//! (RFC 7011) export datagrams to [`ExportRecord`]s.
//!
//! One datagram per [`decode`] call. Template state lives in a
//! [`TemplateCache`] the caller keeps across datagrams: templates and options
//! templates are keyed by (exporter address, observation domain / source id,
//! template id) — never by source port — so two routers (or two line cards of
//! one router) that both use template 256 never decode each other's data.
//!
//! Contract (STYLE habit 2, as [`crate::packet`]): the decoder takes untrusted
//! bytes, never panics, never indexes unchecked and never narrows wire values
//! with `as`. Headers are read through fixed-size array views; variable
//! parts through `slice.get(..)` / `split_at_checked`. Every malformed
//! datagram is counted in its exporter's [`ExporterStats::errors`] under a
//! stable reason and returned as a [`NetflowError`]; the records decoded
//! before the bad set are kept in `out`, and the bad set ends the datagram.
//!
//! Memory is bounded per exporter: templates ([`TemplateCacheConfig::max_templates_per_exporter`],
//! oldest evicted and counted), data sets held while their template is
//! missing ([`TemplateCacheConfig::max_pending_per_exporter`], oldest dropped
//! and counted), observation domains and sampler ids (fixed caps), and the
//! number of exporters ([`TemplateCacheConfig::max_exporters`], least recently
//! heard evicted).
//!
//! ```
//! use std::net::IpAddr;
//! use zonewatch_collector::netflow::{decode, TemplateCache, TemplateCacheConfig};
//! use zonewatch_collector::time::Timestamp;
//!
//! // A NetFlow v5 datagram with one record 192.0.2.1:1234 -> 198.51.100.2:80.
//! let mut d = vec![0, 5, 0, 1, 0, 0, 0x03, 0xe8, 0x65, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0];
//! let mut r = [0u8; 48];
//! r[0..4].copy_from_slice(&[192, 0, 2, 1]);
//! r[4..8].copy_from_slice(&[198, 51, 100, 2]);
//! r[19] = 3; // packets
//! r[23] = 180; // bytes
//! r[32..36].copy_from_slice(&[0x04, 0xd2, 0, 80]);
//! r[38] = 6;
//! d.extend_from_slice(&r);
//! let mut cache = TemplateCache::new(TemplateCacheConfig::default());
//! let mut out = Vec::new();
//! let exporter: IpAddr = "192.0.2.200".parse().unwrap();
//! let summary = decode(exporter, Timestamp::default(), &d, &mut cache, 1, &mut out).unwrap();
//! assert_eq!(summary.records, 1);
//! assert_eq!((out[0].sport, out[0].dport, out[0].packets, out[0].bytes), (1234, 80, 3, 180));
//! ```

mod data;
mod fields;
mod ipfix;
mod template;
mod v5;
mod v9;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use hashbrown::HashMap;

use crate::export::ExportRecord;
use crate::time::Timestamp;

use template::ExporterState;

/// Stable reasons of [`NetflowError`] (counter label values).
pub mod reason {
    /// The datagram ends before its header does.
    pub const TRUNCATED_HEADER: &str = "truncated-header";
    /// The version field is not 5, 9 or 10.
    pub const BAD_VERSION: &str = "bad-version";
    /// A header length or count contradicts the datagram's size.
    pub const BAD_LENGTH: &str = "bad-length";
    /// A set / flowset header is shorter than 4 bytes or runs past the datagram.
    pub const BAD_SET: &str = "bad-set";
    /// A template or options template record is malformed.
    pub const BAD_TEMPLATE: &str = "bad-template";
    /// A data record runs past its set (variable-length field too long).
    pub const BAD_RECORD: &str = "bad-record";
}

/// Limits of a [`TemplateCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateCacheConfig {
    /// Templates plus options templates kept per exporter; beyond it the
    /// least recently (re)defined one is evicted and counted.
    pub max_templates_per_exporter: usize,
    /// Data sets held per exporter while their template is missing; beyond
    /// it the oldest is dropped and counted in `dropped_no_template`.
    pub max_pending_per_exporter: usize,
    /// Held data sets older than this (by receive time) are dropped and counted.
    pub pending_timeout_secs: u64,
    /// Exporters with state; beyond it the least recently heard exporter's
    /// templates and statistics are forgotten (counted in [`TemplateCache::evicted_exporters`]).
    pub max_exporters: usize,
}

impl Default for TemplateCacheConfig {
    fn default() -> Self {
        TemplateCacheConfig {
            max_templates_per_exporter: default_max_templates_per_exporter(),
            max_pending_per_exporter: default_max_pending_per_exporter(),
            pending_timeout_secs: default_pending_timeout_secs(),
            max_exporters: default_max_exporters(),
        }
    }
}

/// Default of [`TemplateCacheConfig::max_templates_per_exporter`].
pub fn default_max_templates_per_exporter() -> usize {
    4096
}

/// Default of [`TemplateCacheConfig::max_pending_per_exporter`].
pub fn default_max_pending_per_exporter() -> usize {
    256
}

/// Default of [`TemplateCacheConfig::pending_timeout_secs`].
pub fn default_pending_timeout_secs() -> u64 {
    60
}

/// Default of [`TemplateCacheConfig::max_exporters`].
pub fn default_max_exporters() -> usize {
    4096
}

/// Counters of one exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExporterStats {
    /// Datagrams received (decoded or not).
    pub datagrams: u64,
    /// Flow records decoded into [`ExportRecord`]s.
    pub records: u64,
    /// Templates learned (new or redefined; a refresh counts too).
    pub templates: u64,
    /// Options templates learned.
    pub options_templates: u64,
    /// Template withdrawals (IPFIX; one per withdrawn template).
    pub template_withdrawals: u64,
    /// Held data sets decoded once their template arrived.
    pub pending_decoded: u64,
    /// Data sets dropped because their template never came (pending cap or timeout).
    pub dropped_no_template: u64,
    /// Templates evicted by the per-exporter cap.
    pub evicted_templates: u64,
    /// Sequence discontinuities seen, per (domain): v5 counts flows, v9
    /// datagrams, IPFIX data records.
    pub sequence_gaps: u64,
    /// Data records that carried no source/destination address (nor a
    /// decodable data-link frame section): not flows, skipped.
    pub records_without_addresses: u64,
    /// Malformed datagrams by reason (see [`reason`]).
    pub errors: BTreeMap<&'static str, u64>,
    /// The last sampling rate learned from this exporter (v5 header or
    /// options data), if any.
    pub sampling: Option<u32>,
    /// Export versions seen (5, 9, 10).
    pub versions: BTreeSet<u16>,
}

/// Templates, held data sets, learned sampling and counters, per exporter.
#[derive(Debug)]
pub struct TemplateCache {
    cfg: TemplateCacheConfig,
    exporters: HashMap<IpAddr, ExporterState>,
    stats: BTreeMap<IpAddr, ExporterStats>,
    evicted_exporters: u64,
}

impl TemplateCache {
    /// An empty cache (no side effects).
    pub fn new(cfg: TemplateCacheConfig) -> Self {
        TemplateCache {
            cfg,
            exporters: HashMap::new(),
            stats: BTreeMap::new(),
            evicted_exporters: 0,
        }
    }

    /// Templates and options templates held, over all exporters.
    pub fn len(&self) -> usize {
        self.exporters
            .values()
            .map(ExporterState::template_count)
            .sum()
    }

    /// Whether no template is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Templates held for one exporter (for `zonewatch_template_cache_entries{exporter}`).
    pub fn exporter_len(&self, exporter: IpAddr) -> usize {
        self.exporters
            .get(&exporter)
            .map_or(0, ExporterState::template_count)
    }

    /// Data sets held for want of a template from one exporter.
    pub fn exporter_pending(&self, exporter: IpAddr) -> usize {
        self.exporters.get(&exporter).map_or(0, |e| e.pending.len())
    }

    /// Data sets currently held for want of a template, over all exporters.
    pub fn pending_len(&self) -> usize {
        self.exporters.values().map(|e| e.pending.len()).sum()
    }

    /// Counters per exporter.
    pub fn stats(&self) -> &BTreeMap<IpAddr, ExporterStats> {
        &self.stats
    }

    /// Exporters forgotten because of [`TemplateCacheConfig::max_exporters`].
    pub fn evicted_exporters(&self) -> u64 {
        self.evicted_exporters
    }

    /// The state and counters of `exporter`, created if new (evicting the
    /// least recently heard exporter beyond the cap).
    fn exporter(
        &mut self,
        exporter: IpAddr,
        now: Timestamp,
    ) -> (&mut ExporterState, &mut ExporterStats, &TemplateCacheConfig) {
        if !self.exporters.contains_key(&exporter)
            && self.exporters.len() >= self.cfg.max_exporters.max(1)
        {
            let oldest = self
                .exporters
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(a, _)| *a);
            if let Some(old) = oldest {
                self.exporters.remove(&old);
                self.stats.remove(&old);
                self.evicted_exporters += 1;
            }
        }
        let state = self.exporters.entry(exporter).or_default();
        state.last_seen = state.last_seen.max(now);
        let stats = self.stats.entry(exporter).or_default();
        (state, stats, &self.cfg)
    }
}

/// What one datagram held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramSummary {
    /// Export version: 5, 9 or 10 (IPFIX).
    pub version: u16,
    /// Flow records appended to `out` (held data sets unlocked by this
    /// datagram's templates included).
    pub records: usize,
    /// Templates and options templates learned (withdrawals not counted).
    pub templates: usize,
    /// The header's sequence number.
    pub sequence: u32,
    /// Observation domain (IPFIX), source id (v9), engine type<<8 | engine id (v5).
    pub domain: u32,
}

/// A malformed datagram.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("exporter {exporter}: {detail}")]
pub struct NetflowError {
    /// The exporter that sent it.
    pub exporter: IpAddr,
    /// Stable counter name (see [`reason`]).
    pub reason: &'static str,
    /// Byte offset in the datagram where the problem is.
    pub offset: usize,
    /// What was wrong, lowercase (`ipfix set at byte 40: length 2 is shorter than a set header`).
    pub detail: String,
}

/// Whether `data` looks like a NetFlow v5/v9/IPFIX datagram (version and
/// header length/count checks), to recognise exports on any UDP port.
pub fn looks_like_netflow(data: &[u8]) -> bool {
    let Some(version) = data.first_chunk::<2>().map(|v| u16::from_be_bytes(*v)) else {
        return false;
    };
    match version {
        5 => v5::looks_like(data),
        9 => v9::looks_like(data),
        10 => ipfix::looks_like(data),
        _ => false,
    }
}

/// Decodes one datagram from `exporter`, received at `received_at`.
///
/// Flow records (and those of earlier held data sets that this datagram's
/// templates unlock) are appended to `out`; records whose sampling rate is
/// unknown get `default_sampling`. On error the records decoded before the
/// bad set stay in `out` and the error is counted under its reason.
pub fn decode(
    exporter: IpAddr,
    received_at: Timestamp,
    data: &[u8],
    cache: &mut TemplateCache,
    default_sampling: u32,
    out: &mut Vec<ExportRecord>,
) -> Result<DatagramSummary, NetflowError> {
    let start = out.len();
    let (state, stats, cfg) = cache.exporter(exporter, received_at);
    stats.datagrams += 1;
    state.expire_pending(received_at, cfg, stats);
    let mut ctx = Decoder {
        exporter,
        received_at,
        default_sampling,
        cfg,
        state,
        stats,
        out,
        templates: 0,
    };
    let version = data.first_chunk::<2>().map(|v| u16::from_be_bytes(*v));
    let result = match version {
        Some(5) => v5::decode(&mut ctx, data),
        Some(9) => v9::decode(&mut ctx, data),
        Some(10) => ipfix::decode(&mut ctx, data),
        Some(v) => Err(ctx.error(
            reason::BAD_VERSION,
            0,
            format_args!("header at byte 0: version {v} is not 5, 9 or 10"),
        )),
        None => Err(ctx.error(
            reason::TRUNCATED_HEADER,
            0,
            format_args!("header at byte 0: {} bytes, too short", data.len()),
        )),
    };
    let templates = ctx.templates;
    let records = out.len() - start;
    let stats = cache.stats.entry(exporter).or_default();
    stats.records += u64::try_from(records).unwrap_or(u64::MAX);
    match result {
        Ok((version, sequence, domain)) => {
            stats.versions.insert(version);
            Ok(DatagramSummary {
                version,
                records,
                templates,
                sequence,
                domain,
            })
        }
        Err(e) => {
            *stats.errors.entry(e.reason).or_insert(0) += 1;
            Err(e)
        }
    }
}

/// Everything one `decode` call works with.
struct Decoder<'a> {
    exporter: IpAddr,
    received_at: Timestamp,
    default_sampling: u32,
    cfg: &'a TemplateCacheConfig,
    state: &'a mut ExporterState,
    stats: &'a mut ExporterStats,
    out: &'a mut Vec<ExportRecord>,
    /// Templates learned in this datagram.
    templates: usize,
}

impl Decoder<'_> {
    fn error(
        &self,
        reason: &'static str,
        offset: usize,
        what: std::fmt::Arguments,
    ) -> NetflowError {
        NetflowError {
            exporter: self.exporter,
            reason,
            offset,
            detail: what.to_string(),
        }
    }

    /// Stores a template learned from this datagram and decodes the data
    /// sets that were held for it.
    fn learn(&mut self, key: template::TemplateKey, template: template::Template) {
        if template.options {
            self.stats.options_templates += 1;
        } else {
            self.stats.templates += 1;
        }
        self.templates += 1;
        self.state.insert(key, template, self.cfg, self.stats);
        self.replay(key);
    }

    /// Per-(version, domain) sequence tracking: counts a gap when `sequence`
    /// is not the one expected, then expects `next` (None: unknown).
    fn sequence(&mut self, version: u16, domain: u32, sequence: u32, next: Option<u32>) {
        let d = self.state.domain(version, domain);
        if let Some(expected) = d.next_sequence
            && expected != sequence
        {
            self.stats.sequence_gaps += 1;
        }
        d.next_sequence = next;
    }
}

/// A held data set: its bytes and the header context needed to decode it later.
#[derive(Debug)]
struct Pending {
    header: data::Header,
    set_id: u16,
    /// Where the set's records started in its datagram (for error offsets).
    offset: usize,
    bytes: Box<[u8]>,
}

/// Held data sets of one exporter, oldest first.
type PendingQueue = VecDeque<Pending>;
