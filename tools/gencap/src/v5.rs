//! `v5`: a capture of synthetic NetFlow v5 export datagrams (exporter
//! 192.0.2.1 → collector 192.0.2.2:2055), for the monitor's load benchmark:
//! replayed by `replay`, every record counts 1 packet of 100 bytes, so what
//! was sent is known exactly (records = packets).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

use crate::packet::{IpHeader, Transport, build};
use crate::pcap::PcapWriter;

/// Records per datagram (v5 allows 30).
pub const RECORDS: u16 = 30;

/// What was written.
pub struct Written {
    pub datagrams: u64,
    pub records: u64,
}

/// Writes `datagrams` datagrams of [`RECORDS`] records; record tuples cycle
/// over `flows` distinct source ports/addresses (app 10.1/16 → db 10.2.0.10:5432).
pub fn write<W: Write>(
    out: W,
    datagrams: u64,
    flows: u64,
    start_secs: u32,
) -> std::io::Result<Written> {
    let mut w = PcapWriter::new(out)?;
    let ip = IpHeader {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        ttl: 64,
        ip_id: 0,
        flow_label: 0,
        dont_fragment: true,
    };
    let flows = flows.max(1);
    let mut frame = Vec::with_capacity(1500);
    let mut payload = Vec::with_capacity(24 + 48 * usize::from(RECORDS));
    let mut k: u64 = 0;
    for seq in 0..datagrams {
        payload.clear();
        let uptime: u32 = 1_000_000 + u32::try_from(seq % 1_000_000).unwrap_or(0);
        payload.extend_from_slice(&5u16.to_be_bytes());
        payload.extend_from_slice(&RECORDS.to_be_bytes());
        payload.extend_from_slice(&uptime.to_be_bytes());
        payload.extend_from_slice(&start_secs.to_be_bytes());
        payload.extend_from_slice(&0u32.to_be_bytes());
        payload.extend_from_slice(
            &u32::try_from((seq * u64::from(RECORDS)) & 0xffff_ffff)
                .unwrap_or(0)
                .to_be_bytes(),
        );
        payload.extend_from_slice(&[0, 0, 0, 0]);
        for _ in 0..RECORDS {
            let f = k % flows;
            k += 1;
            let host = u32::try_from(f / 40_000).unwrap_or(0);
            let port = 20_000 + u16::try_from(f % 40_000).unwrap_or(0);
            payload.extend_from_slice(&[10, 1, (host >> 8) as u8, host as u8]);
            payload.extend_from_slice(&[10, 2, 0, 10]);
            payload.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 2]);
            payload.extend_from_slice(&1u32.to_be_bytes());
            payload.extend_from_slice(&100u32.to_be_bytes());
            payload.extend_from_slice(&(uptime - 1000).to_be_bytes());
            payload.extend_from_slice(&(uptime - 500).to_be_bytes());
            payload.extend_from_slice(&port.to_be_bytes());
            payload.extend_from_slice(&5432u16.to_be_bytes());
            payload.extend_from_slice(&[0, 0x18, 6, 0, 0, 0, 0, 0, 24, 16, 0, 0]);
        }
        frame.clear();
        build(
            &mut frame,
            &IpHeader {
                ip_id: u16::try_from(seq & 0xffff).unwrap_or(0),
                ..ip
            },
            &Transport::Udp {
                sport: 40_000,
                dport: 2055,
                payload: &payload,
            },
        );
        w.write(u64::from(start_secs) * 1_000_000 + seq * 1000, &frame)?;
    }
    w.finish()?;
    Ok(Written {
        datagrams,
        records: datagrams * u64::from(RECORDS),
    })
}
