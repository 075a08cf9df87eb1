//! IPFIX (RFC 7011): a 16-byte message header, then sets: 2 templates,
//! 3 options templates, ≥ 256 data. Enterprise-specific fields carry a
//! 4-byte enterprise number; variable-length fields a 1- or 3-byte length;
//! a template record with no fields withdraws a template (id 2 / 3: all
//! templates / options templates of the domain).

use crate::time::Timestamp;

use super::data::Header;
use super::fields::{self, Clock};
use super::template::{Field, MAX_FIELDS, Template};
use super::{Decoder, NetflowError, reason};

const HEADER_LEN: usize = 16;

/// Whether `data` is exactly one IPFIX message with a plausible first set.
pub(super) fn looks_like(data: &[u8]) -> bool {
    let Some(h) = data.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if u16::from_be_bytes([h[0], h[1]]) != 10 || len != data.len() {
        return false;
    }
    let Some(set) = data.get(HEADER_LEN..).and_then(|b| b.first_chunk::<4>()) else {
        return false;
    };
    let id = u16::from_be_bytes([set[0], set[1]]);
    let set_len = usize::from(u16::from_be_bytes([set[2], set[3]]));
    (id == 2 || id == 3 || id >= 256) && set_len >= 4 && HEADER_LEN + set_len <= len
}

/// Decodes an IPFIX message; returns (version, sequence, domain).
pub(super) fn decode(d: &mut Decoder<'_>, data: &[u8]) -> Result<(u16, u32, u32), NetflowError> {
    let Some(h) = data.first_chunk::<HEADER_LEN>() else {
        return Err(d.error(
            reason::TRUNCATED_HEADER,
            0,
            format_args!(
                "ipfix header at byte 0: {} bytes, expected {HEADER_LEN}",
                data.len()
            ),
        ));
    };
    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let export_time = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let sequence = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    let domain = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let Some(message) = data.get(..len).filter(|_| len >= HEADER_LEN) else {
        return Err(d.error(
            reason::BAD_LENGTH,
            2,
            format_args!(
                "ipfix header at byte 0: message length {len}, datagram has {}",
                data.len()
            ),
        ));
    };
    let header = Header {
        version: 10,
        domain,
        clock: Clock {
            export: Timestamp::from_secs_nanos(i64::from(export_time), 0),
            sys_uptime_ms: None,
        },
        received_at: d.received_at,
    };

    let mut off = HEADER_LEN;
    let mut data_records = 0u32;
    let mut held = false;
    let mut result = Ok(());
    while let Some(set) = message.get(off..).and_then(|b| b.first_chunk::<4>()) {
        let id = u16::from_be_bytes([set[0], set[1]]);
        let set_len = usize::from(u16::from_be_bytes([set[2], set[3]]));
        let Some(body) = message.get(off + 4..off + set_len).filter(|_| set_len >= 4) else {
            result = Err(d.error(
                reason::BAD_SET,
                off,
                format_args!(
                    "ipfix set at byte {off}: length {set_len} does not fit the {} bytes left",
                    message.len() - off
                ),
            ));
            break;
        };
        let step = match id {
            2 => templates(d, domain, off + 4, body, false),
            3 => templates(d, domain, off + 4, body, true),
            0..=255 => Ok(()),
            _ => d.data_set(&header, id, off + 4, body).map(|c| {
                data_records = data_records.wrapping_add(c.records);
                held |= c.held;
            }),
        };
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        off += set_len;
    }
    // IPFIX sequence numbers count data records; unknown when a set was held.
    let next = (!held && result.is_ok()).then(|| sequence.wrapping_add(data_records));
    d.sequence(10, domain, sequence, next);
    result.map(|()| (10, sequence, domain))
}

/// A template set (2) or options template set (3) at byte `at`.
fn templates(
    d: &mut Decoder<'_>,
    domain: u32,
    at: usize,
    body: &[u8],
    options: bool,
) -> Result<(), NetflowError> {
    let mut rest = body;
    // Fewer than 4 bytes left is padding.
    while let Some((h, tail)) = rest.split_first_chunk::<4>() {
        let pos = at + (body.len() - rest.len());
        let id = u16::from_be_bytes([h[0], h[1]]);
        let count = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if id == 0 && count == 0 {
            break; // padding
        }
        if count == 0 {
            withdraw(d, domain, id, options);
            rest = tail;
            continue;
        }
        if id < 256 {
            return Err(bad_template(d, pos, id, "template id below 256"));
        }
        if count > MAX_FIELDS {
            return Err(bad_template(d, pos, id, "too many fields"));
        }
        let mut specs = tail;
        if options {
            let Some((s, t)) = specs.split_first_chunk::<2>() else {
                return Err(bad_template(
                    d,
                    pos,
                    id,
                    "options template header runs past the set",
                ));
            };
            let scope = usize::from(u16::from_be_bytes(*s));
            if scope == 0 || scope > count {
                return Err(bad_template(d, pos, id, "scope field count out of range"));
            }
            specs = t;
        }
        // IPFIX scope fields are IEs (samplerId, ...): mapped like the others.
        let mut list = Vec::with_capacity(count);
        for _ in 0..count {
            let Some((f, t)) = specs.split_first_chunk::<4>() else {
                return Err(bad_template(d, pos, id, "fields run past the set"));
            };
            let raw_id = u16::from_be_bytes([f[0], f[1]]);
            let len = u16::from_be_bytes([f[2], f[3]]);
            specs = t;
            let mut enterprise = 0;
            if raw_id & 0x8000 != 0 {
                let Some((pen, t)) = specs.split_first_chunk::<4>() else {
                    return Err(bad_template(
                        d,
                        pos,
                        id,
                        "enterprise number runs past the set",
                    ));
                };
                enterprise = u32::from_be_bytes(*pen);
                specs = t;
            }
            list.push(Field {
                kind: fields::kind(enterprise, raw_id & 0x7fff, len),
                len,
            });
        }
        let Some(template) = Template::new(list, options) else {
            return Err(bad_template(d, pos, id, "records would be empty"));
        };
        d.learn((10, domain, id), template);
        rest = specs;
    }
    Ok(())
}

/// A template withdrawal: one template, or all (options) templates of the
/// domain for id 2 (3).
fn withdraw(d: &mut Decoder<'_>, domain: u32, id: u16, options: bool) {
    let n = if (id == 2 && !options) || (id == 3 && options) {
        d.state.withdraw_all(10, domain, options)
    } else {
        usize::from(d.state.withdraw((10, domain, id)))
    };
    d.stats.template_withdrawals += u64::try_from(n).unwrap_or(u64::MAX);
}

fn bad_template(d: &Decoder<'_>, pos: usize, id: u16, what: &str) -> NetflowError {
    d.error(
        reason::BAD_TEMPLATE,
        pos,
        format_args!("ipfix template {id} at byte {pos}: {what}"),
    )
}
