//! Data sets (v9 flowset id ≥ 256, IPFIX set id ≥ 256): decoded with their
//! template, held until it arrives, or replayed when it does.

use crate::export::ExportProtocol;
use crate::time::Timestamp;

use super::fields::{Acc, Clock, Origin};
use super::template::{Template, TemplateKey, VARLEN};
use super::{Decoder, NetflowError, Pending, reason};

/// What a data set needs from its datagram's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// 9 or 10.
    pub version: u16,
    /// Source id / observation domain.
    pub domain: u32,
    /// Export time and uptime.
    pub clock: Clock,
    /// When the datagram was received.
    pub received_at: Timestamp,
}

impl Header {
    fn protocol(&self) -> ExportProtocol {
        if self.version == 9 {
            ExportProtocol::NetflowV9
        } else {
            ExportProtocol::Ipfix
        }
    }

    fn name(&self) -> &'static str {
        if self.version == 9 { "v9" } else { "ipfix" }
    }
}

/// Counts of one data set.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SetCount {
    /// Data records in the set (flows and options data), when decoded.
    pub records: u32,
    /// Whether the set was held for want of its template.
    pub held: bool,
}

impl Decoder<'_> {
    /// A data set at byte `offset` (its records start there): decoded now if
    /// the template is known, else held.
    pub(super) fn data_set(
        &mut self,
        header: &Header,
        set_id: u16,
        offset: usize,
        body: &[u8],
    ) -> Result<SetCount, NetflowError> {
        let key = (header.version, header.domain, set_id);
        if self.state.template(key).is_some() {
            let records = self.records(header, key, offset, body)?;
            return Ok(SetCount {
                records,
                held: false,
            });
        }
        self.state.hold(
            Pending {
                header: *header,
                set_id,
                offset,
                bytes: body.into(),
            },
            self.cfg,
            self.stats,
        );
        Ok(SetCount {
            records: 0,
            held: true,
        })
    }

    /// After template `key` was learned: decodes the data sets held for it,
    /// oldest first. A held set that turns out malformed is counted, not returned.
    pub(super) fn replay(&mut self, key: TemplateKey) {
        if !self
            .state
            .pending
            .iter()
            .any(|p| (p.header.version, p.header.domain, p.set_id) == key)
        {
            return;
        }
        let mut held = std::mem::take(&mut self.state.pending);
        held.retain(|p| {
            if (p.header.version, p.header.domain, p.set_id) != key {
                return true;
            }
            self.stats.pending_decoded += 1;
            if let Err(e) = self.records(&p.header, key, p.offset, &p.bytes) {
                *self.stats.errors.entry(e.reason).or_insert(0) += 1;
            }
            false
        });
        self.state.pending = held;
        self.state.pending_bytes = self.state.pending.iter().map(|p| p.bytes.len()).sum();
    }

    /// Decodes the records of one data set with template `key` (which exists).
    fn records(
        &mut self,
        header: &Header,
        key: TemplateKey,
        offset: usize,
        body: &[u8],
    ) -> Result<u32, NetflowError> {
        let (Some(template), learned) = self.state.template_and_learned(key) else {
            return Ok(0);
        };
        let domain = learned
            .get_domain(header.version, header.domain)
            .copied()
            .unwrap_or_default();
        let origin = Origin {
            protocol: header.protocol(),
            exporter: self.exporter,
            domain: header.domain,
            template_id: key.2,
        };
        let mut rest = body;
        let mut count = 0u32;
        // Fewer bytes than the shortest record are padding.
        while rest.len() >= template.min_len {
            let at = offset + (body.len() - rest.len());
            let acc = match read_record(template, &mut rest) {
                Some(acc) => acc,
                None => {
                    return Err(NetflowError {
                        exporter: self.exporter,
                        reason: reason::BAD_RECORD,
                        offset: at,
                        detail: format!(
                            "{} data set {} at byte {at}: record runs past the set",
                            header.name(),
                            key.2
                        ),
                    });
                }
            };
            count += 1;
            if template.options {
                learn_options(&acc, header, learned, self.stats);
                continue;
            }
            let mut acc = acc;
            if !acc.fill_from_frame() {
                self.stats.records_without_addresses += 1;
                continue;
            }
            let sampling = acc
                .sampler_id
                .and_then(|id| learned.sampler(header.version, header.domain, id))
                .or_else(|| acc.own_sampling())
                .or(domain.sampling)
                .unwrap_or(self.default_sampling);
            if let Some(rec) = acc.finish(&origin, &header.clock, domain.system_init_ms, sampling) {
                self.out.push(rec);
            }
        }
        Ok(count)
    }
}

/// Reads one record's fields; `None` when a field runs past the set.
#[inline]
fn read_record<'a>(template: &Template, rest: &mut &'a [u8]) -> Option<Acc<'a>> {
    let mut acc = Acc::default();
    let mut data: &'a [u8] = rest;
    for f in template.fields.iter() {
        let len = if f.len == VARLEN {
            let (&first, tail) = data.split_first()?;
            if first == 255 {
                let (l, tail) = tail.split_first_chunk::<2>()?;
                data = tail;
                usize::from(u16::from_be_bytes(*l))
            } else {
                data = tail;
                usize::from(first)
            }
        } else {
            usize::from(f.len)
        };
        let (v, tail) = data.split_at_checked(len)?;
        data = tail;
        acc.set(f.kind, v);
    }
    *rest = data;
    Some(acc)
}

/// Options data: sampling per domain and sampler, system init time.
fn learn_options(
    acc: &Acc<'_>,
    header: &Header,
    learned: &mut super::template::Learned,
    stats: &mut super::ExporterStats,
) {
    if let Some(rate) = acc.own_sampling() {
        if let Some(id) = acc.sampler_id {
            learned.set_sampler(header.version, header.domain, id, rate);
        }
        learned.domain(header.version, header.domain).sampling = Some(rate);
        stats.sampling = Some(rate);
    }
    if let Some(init) = acc.system_init_ms {
        learned.domain(header.version, header.domain).system_init_ms = Some(init);
    }
}
