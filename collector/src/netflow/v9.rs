//! NetFlow v9 (RFC 3954): a 20-byte header, then flowsets: 0 templates,
//! 1 options templates, ≥ 256 data. Padding at the end of a flowset is ignored.

use crate::time::Timestamp;

use super::data::Header;
use super::fields::{self, Clock};
use super::template::{Field, MAX_FIELDS, Template};
use super::{Decoder, NetflowError, reason};

const HEADER_LEN: usize = 20;

/// Whether `data` has a v9 header followed by a plausible first flowset.
pub(super) fn looks_like(data: &[u8]) -> bool {
    let Some(h) = data.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    if u16::from_be_bytes([h[0], h[1]]) != 9 {
        return false;
    }
    let Some(set) = data.get(HEADER_LEN..).and_then(|b| b.first_chunk::<4>()) else {
        return false;
    };
    let id = u16::from_be_bytes([set[0], set[1]]);
    let len = usize::from(u16::from_be_bytes([set[2], set[3]]));
    (id <= 1 || id >= 256) && len >= 4 && HEADER_LEN + len <= data.len()
}

/// Decodes a v9 datagram; returns (version, sequence, domain).
pub(super) fn decode(d: &mut Decoder<'_>, data: &[u8]) -> Result<(u16, u32, u32), NetflowError> {
    let Some(h) = data.first_chunk::<HEADER_LEN>() else {
        return Err(d.error(
            reason::TRUNCATED_HEADER,
            0,
            format_args!(
                "v9 header at byte 0: {} bytes, expected {HEADER_LEN}",
                data.len()
            ),
        ));
    };
    let sys_uptime = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let unix_secs = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    let sequence = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let domain = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    let header = Header {
        version: 9,
        domain,
        clock: Clock {
            export: Timestamp::from_secs_nanos(i64::from(unix_secs), 0),
            sys_uptime_ms: Some(sys_uptime),
        },
        received_at: d.received_at,
    };
    // v9 sequence numbers count export packets.
    d.sequence(9, domain, sequence, Some(sequence.wrapping_add(1)));

    let mut off = HEADER_LEN;
    // Fewer than 4 trailing bytes cannot be a flowset: padding.
    while let Some(set) = data.get(off..).and_then(|b| b.first_chunk::<4>()) {
        let id = u16::from_be_bytes([set[0], set[1]]);
        let len = usize::from(u16::from_be_bytes([set[2], set[3]]));
        let Some(body) = data.get(off + 4..off + len).filter(|_| len >= 4) else {
            return Err(d.error(
                reason::BAD_SET,
                off,
                format_args!(
                    "v9 flowset at byte {off}: length {len} does not fit the {} bytes left",
                    data.len() - off
                ),
            ));
        };
        match id {
            0 => templates(d, domain, off + 4, body, false)?,
            1 => templates(d, domain, off + 4, body, true)?,
            2..=255 => {}
            _ => {
                d.data_set(&header, id, off + 4, body)?;
            }
        }
        off += len;
    }
    Ok((9, sequence, domain))
}

/// A template flowset (0) or options template flowset (1) at byte `at`.
fn templates(
    d: &mut Decoder<'_>,
    domain: u32,
    at: usize,
    body: &[u8],
    options: bool,
) -> Result<(), NetflowError> {
    let mut rest = body;
    loop {
        let pos = at + (body.len() - rest.len());
        let (id, specs, tail) = if options {
            // template id, scope length (bytes), option length (bytes).
            let Some((h, tail)) = rest.split_first_chunk::<6>() else {
                break;
            };
            let id = u16::from_be_bytes([h[0], h[1]]);
            let scope_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let option_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if id == 0 && scope_len == 0 && option_len == 0 {
                break; // padding
            }
            if id < 256 || scope_len % 4 != 0 || option_len % 4 != 0 || option_len + scope_len == 0
            {
                return Err(bad_template(d, pos, id, "bad options template header"));
            }
            (
                id,
                Specs {
                    scope: scope_len / 4,
                    total: (scope_len + option_len) / 4,
                },
                tail,
            )
        } else {
            let Some((h, tail)) = rest.split_first_chunk::<4>() else {
                break;
            };
            let id = u16::from_be_bytes([h[0], h[1]]);
            let count = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if id == 0 && count == 0 {
                break; // padding
            }
            if id < 256 || count == 0 {
                return Err(bad_template(d, pos, id, "bad template header"));
            }
            (
                id,
                Specs {
                    scope: 0,
                    total: count,
                },
                tail,
            )
        };
        if specs.total > MAX_FIELDS {
            return Err(bad_template(d, pos, id, "too many fields"));
        }
        let Some((raw, tail)) = tail.split_at_checked(specs.total * 4) else {
            return Err(bad_template(d, pos, id, "fields run past the flowset"));
        };
        let (pairs, _) = raw.as_chunks::<4>();
        if pairs.iter().any(|p| p[2] == 0xff && p[3] == 0xff) {
            return Err(bad_template(d, pos, id, "field length 65535"));
        }
        let fields = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let ty = u16::from_be_bytes([p[0], p[1]]);
                let len = u16::from_be_bytes([p[2], p[3]]);
                // v9 scope field types (system, interface, ...) are not IEs.
                let kind = if i < specs.scope {
                    fields::FieldKind::Skip
                } else {
                    fields::kind(0, ty, len)
                };
                // v9 has no variable-length fields: 65535 is a length.
                Field { kind, len }
            })
            .collect();
        let Some(template) = Template::new(fields, options) else {
            return Err(bad_template(d, pos, id, "records would be empty"));
        };
        d.learn((9, domain, id), template);
        rest = tail;
    }
    Ok(())
}

struct Specs {
    scope: usize,
    total: usize,
}

fn bad_template(d: &Decoder<'_>, pos: usize, id: u16, what: &str) -> NetflowError {
    d.error(
        reason::BAD_TEMPLATE,
        pos,
        format_args!("v9 template {id} at byte {pos}: {what}"),
    )
}
