//! Per-exporter state: templates (with the eviction cap), held data sets,
//! and what options data taught (sampling per domain and sampler, system
//! init time), plus sequence tracking per domain.

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::fields::FieldKind;
use super::{ExporterStats, Pending, PendingQueue, TemplateCacheConfig};
use crate::time::Timestamp;

/// Field length meaning "variable length" in IPFIX templates.
pub(super) const VARLEN: u16 = 65535;

/// Most fields one template may have (memory bound: a bogus template of
/// 16k fields per set is refused, real ones have well under a hundred).
pub(super) const MAX_FIELDS: usize = 512;

/// Bytes of data sets held per exporter (besides the count cap): a flood of
/// 64 KiB sets cannot pin more than this.
pub(super) const MAX_PENDING_BYTES_PER_EXPORTER: usize = 2 << 20;

/// Observation domains tracked per exporter (sequence, sampling, init time).
const MAX_DOMAINS_PER_EXPORTER: usize = 1024;

/// Sampler ids (v9 samplerId / IPFIX selectorId) remembered per exporter.
const MAX_SAMPLERS_PER_EXPORTER: usize = 4096;

/// One field of a template, resolved to what the decoder does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Field {
    /// What the value means (`Skip` for anything we do not map).
    pub kind: FieldKind,
    /// Length in bytes, or [`VARLEN`].
    pub len: u16,
}

/// A template or options template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    /// Fields in record order (scope fields first for options templates).
    pub fields: Box<[Field]>,
    /// Smallest record length (fixed fields plus one length byte per variable field).
    pub min_len: usize,
    /// Whether any field is variable-length.
    pub varlen: bool,
    /// Options template: its records teach sampling, they are not flows.
    pub options: bool,
}

impl Template {
    /// Builds a template; `None` when it could never hold a record (no bytes).
    pub fn new(fields: Vec<Field>, options: bool) -> Option<Template> {
        let mut min_len = 0usize;
        let mut varlen = false;
        for f in &fields {
            if f.len == VARLEN {
                varlen = true;
                min_len += 1;
            } else {
                min_len += usize::from(f.len);
            }
        }
        (min_len > 0).then(|| Template {
            fields: fields.into_boxed_slice(),
            min_len,
            varlen,
            options,
        })
    }
}

/// Templates are keyed by (version, observation domain, template id) inside
/// one exporter's state: v9 and IPFIX never share a template.
pub(super) type TemplateKey = (u16, u32, u16);

#[derive(Debug)]
struct Stored {
    template: Template,
    /// Insertion stamp, to find the oldest for eviction.
    stamp: u64,
}

/// What the decoder knows about one (version, domain).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct DomainState {
    /// The sequence number expected next, when known.
    pub next_sequence: Option<u32>,
    /// Sampling rate learned from options data.
    pub sampling: Option<u32>,
    /// systemInitTimeMilliseconds learned from options data.
    pub system_init_ms: Option<u64>,
}

/// Sampling and init times learned from options data.
#[derive(Debug, Default)]
pub(super) struct Learned {
    domains: HashMap<(u16, u32), DomainState>,
    samplers: HashMap<(u16, u32, u64), u32>,
}

impl Learned {
    /// The state of one domain, created if new (bounded: beyond the cap an
    /// arbitrary other domain is forgotten).
    pub fn domain(&mut self, version: u16, domain: u32) -> &mut DomainState {
        if self.domains.len() >= MAX_DOMAINS_PER_EXPORTER
            && !self.domains.contains_key(&(version, domain))
        {
            let victim = self.domains.keys().next().copied();
            if let Some(v) = victim {
                self.domains.remove(&v);
            }
        }
        self.domains.entry((version, domain)).or_default()
    }

    /// The domain's state if known.
    pub fn get_domain(&self, version: u16, domain: u32) -> Option<&DomainState> {
        self.domains.get(&(version, domain))
    }

    /// The rate of sampler `id` in a domain, if options data gave it.
    pub fn sampler(&self, version: u16, domain: u32, id: u64) -> Option<u32> {
        self.samplers.get(&(version, domain, id)).copied()
    }

    /// Remembers a sampler's rate (ignored when the per-exporter cap is reached).
    pub fn set_sampler(&mut self, version: u16, domain: u32, id: u64, rate: u32) {
        let key = (version, domain, id);
        if self.samplers.len() < MAX_SAMPLERS_PER_EXPORTER || self.samplers.contains_key(&key) {
            self.samplers.insert(key, rate);
        }
    }
}

/// Everything kept about one exporter.
#[derive(Debug, Default)]
pub(super) struct ExporterState {
    templates: HashMap<TemplateKey, Stored>,
    /// Insertion order for eviction; entries whose stamp no longer matches
    /// the stored template are stale and skipped.
    order: VecDeque<(TemplateKey, u64)>,
    next_stamp: u64,
    /// Sampling, init times and sequences per domain.
    pub learned: Learned,
    /// Data sets waiting for their template, oldest first.
    pub pending: PendingQueue,
    /// Bytes held in `pending`.
    pub pending_bytes: usize,
    /// Latest receive time seen (for exporter eviction).
    pub last_seen: Timestamp,
}

impl ExporterState {
    /// Templates and options templates held.
    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// The template for a key.
    pub fn template(&self, key: TemplateKey) -> Option<&Template> {
        self.templates.get(&key).map(|s| &s.template)
    }

    /// The template for a key and the learned state, borrowed together.
    pub fn template_and_learned(&mut self, key: TemplateKey) -> (Option<&Template>, &mut Learned) {
        (
            self.templates.get(&key).map(|s| &s.template),
            &mut self.learned,
        )
    }

    /// The domain state (sequence, sampling, init time).
    pub fn domain(&mut self, version: u16, domain: u32) -> &mut DomainState {
        self.learned.domain(version, domain)
    }

    /// Stores (or refreshes) a template, evicting the oldest beyond the cap.
    pub fn insert(
        &mut self,
        key: TemplateKey,
        template: Template,
        cfg: &TemplateCacheConfig,
        stats: &mut ExporterStats,
    ) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.templates.insert(key, Stored { template, stamp });
        self.order.push_back((key, stamp));
        let cap = cfg.max_templates_per_exporter.max(1);
        while self.templates.len() > cap {
            let Some((old, old_stamp)) = self.order.pop_front() else {
                break;
            };
            if self
                .templates
                .get(&old)
                .is_some_and(|s| s.stamp == old_stamp)
            {
                self.templates.remove(&old);
                stats.evicted_templates += 1;
            }
        }
        if self.order.len() > 2 * cap + 64 {
            let templates = &self.templates;
            self.order
                .retain(|(k, s)| templates.get(k).is_some_and(|t| t.stamp == *s));
        }
    }

    /// Removes one template; whether it was there.
    pub fn withdraw(&mut self, key: TemplateKey) -> bool {
        self.templates.remove(&key).is_some()
    }

    /// Removes every template (or every options template) of a domain;
    /// returns how many.
    pub fn withdraw_all(&mut self, version: u16, domain: u32, options: bool) -> usize {
        let before = self.templates.len();
        self.templates.retain(|&(v, d, _), s| {
            !(v == version && d == domain && s.template.options == options)
        });
        before - self.templates.len()
    }

    /// Holds a data set whose template is missing; the oldest held sets are
    /// dropped (counted) to stay within the count and byte caps.
    pub fn hold(&mut self, set: Pending, cfg: &TemplateCacheConfig, stats: &mut ExporterStats) {
        if cfg.max_pending_per_exporter == 0 || set.bytes.len() > MAX_PENDING_BYTES_PER_EXPORTER {
            stats.dropped_no_template += 1;
            return;
        }
        while self.pending.len() >= cfg.max_pending_per_exporter
            || self.pending_bytes + set.bytes.len() > MAX_PENDING_BYTES_PER_EXPORTER
        {
            let Some(old) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes = self.pending_bytes.saturating_sub(old.bytes.len());
            stats.dropped_no_template += 1;
        }
        self.pending_bytes += set.bytes.len();
        self.pending.push_back(set);
    }

    /// Drops held data sets older than the timeout (counted).
    pub fn expire_pending(
        &mut self,
        now: Timestamp,
        cfg: &TemplateCacheConfig,
        stats: &mut ExporterStats,
    ) {
        while let Some(p) = self.pending.front() {
            if p.header.received_at.plus_secs(cfg.pending_timeout_secs) >= now {
                break;
            }
            if let Some(old) = self.pending.pop_front() {
                self.pending_bytes = self.pending_bytes.saturating_sub(old.bytes.len());
            }
            stats.dropped_no_template += 1;
        }
    }
}
