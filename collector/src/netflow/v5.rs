//! NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records.

use std::net::{IpAddr, Ipv4Addr};

use crate::export::{ExportProtocol, ExportRecord};
use crate::time::Timestamp;

use super::fields::Clock;
use super::{Decoder, NetflowError, reason};

const HEADER_LEN: usize = 24;
const RECORD_LEN: usize = 48;
/// Cisco's maximum; a larger count is not v5.
const MAX_COUNT: usize = 30;

/// Whether `data` has a v5 header whose count fits its length.
pub(super) fn looks_like(data: &[u8]) -> bool {
    let Some(h) = data.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    let count = usize::from(u16::from_be_bytes([h[2], h[3]]));
    u16::from_be_bytes([h[0], h[1]]) == 5
        && (1..=MAX_COUNT).contains(&count)
        && data.len() >= HEADER_LEN + count * RECORD_LEN
}

/// Decodes a v5 datagram; returns (version, sequence, domain).
pub(super) fn decode(d: &mut Decoder<'_>, data: &[u8]) -> Result<(u16, u32, u32), NetflowError> {
    let Some(h) = data.first_chunk::<HEADER_LEN>() else {
        return Err(d.error(
            reason::TRUNCATED_HEADER,
            0,
            format_args!(
                "v5 header at byte 0: {} bytes, expected {HEADER_LEN}",
                data.len()
            ),
        ));
    };
    let count = u16::from_be_bytes([h[2], h[3]]);
    let sys_uptime = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let unix_secs = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    let unix_nsecs = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
    let sequence = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
    let domain = u32::from(h[20]) << 8 | u32::from(h[21]);
    let interval = u16::from_be_bytes([h[22], h[23]]) & 0x3fff;
    let sampling = if interval == 0 {
        d.default_sampling
    } else {
        d.stats.sampling = Some(u32::from(interval));
        u32::from(interval)
    };
    let clock = Clock {
        export: Timestamp::from_secs_nanos(i64::from(unix_secs), u64::from(unix_nsecs)),
        sys_uptime_ms: Some(sys_uptime),
    };
    d.sequence(
        5,
        domain,
        sequence,
        Some(sequence.wrapping_add(u32::from(count))),
    );

    let body = data.get(HEADER_LEN..).unwrap_or_default();
    let (records, _) = body.as_chunks::<RECORD_LEN>();
    let whole = usize::from(count);
    for r in records.iter().take(whole) {
        d.out.push(record(d.exporter, domain, &clock, sampling, r));
    }
    if records.len() < whole {
        return Err(d.error(
            reason::BAD_LENGTH,
            HEADER_LEN + records.len() * RECORD_LEN,
            format_args!(
                "v5 header at byte 0: count {count} needs {} bytes, datagram has {}",
                HEADER_LEN + whole * RECORD_LEN,
                data.len()
            ),
        ));
    }
    Ok((5, sequence, domain))
}

fn record(
    exporter: IpAddr,
    domain: u32,
    clock: &Clock,
    sampling: u32,
    r: &[u8; RECORD_LEN],
) -> ExportRecord {
    let be16 = |i: usize| u16::from_be_bytes([r[i], r[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    ExportRecord {
        protocol: ExportProtocol::NetflowV5,
        exporter,
        domain,
        template_id: None,
        first: clock.uptime(be32(24), None),
        last: clock.uptime(be32(28), None),
        src: IpAddr::V4(Ipv4Addr::new(r[0], r[1], r[2], r[3])),
        dst: IpAddr::V4(Ipv4Addr::new(r[4], r[5], r[6], r[7])),
        proto: r[38],
        sport: be16(32),
        dport: be16(34),
        packets: u64::from(be32(16)),
        bytes: u64::from(be32(20)),
        tcp_flags: r[37],
        sampling,
        direction: None,
        reverse: None,
        vlan: None,
        input_if: Some(u32::from(be16(12))),
        output_if: Some(u32::from(be16(14))),
        action: None,
    }
}
