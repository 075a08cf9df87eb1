//! zonewatch-collector: every input of zonewatch, and the flow table.
//!
//! Bytes come in as captured frames ([`capture::CaptureReader`] yields
//! [`capture::CapturedPacket`]s from pcap, pcapng or gzip files and pipes),
//! [`packet::decode`] slices each frame down to a [`packet::PacketInfo`]
//! (addresses, ports, flags, IP length), and the [`table::FlowTable`] folds
//! packets into oriented biflows, emitting a [`record::FlowRecord`] when a
//! flow ends. A `FlowRecord` is the one normalised record every input
//! produces; it knows nothing about zones.
//!
//! Frames also come from a network interface ([`live::LiveCapture`], with the
//! cargo feature `live`), and files from a spool folder: a
//! [`watch::FolderWatcher`] reports each complete file once, and a
//! [`watch::FileWatcher`] tells when the zones file changes.
//!
//! ```
//! use zonewatch_collector::packet::{decode, Decoded};
//! use zonewatch_collector::table::{FlowTable, TableConfig};
//! use zonewatch_collector::time::Timestamp;
//!
//! // A raw IPv4 UDP packet 192.0.2.1:5000 -> 198.51.100.2:53 (link type 101).
//! let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2];
//! ip.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
//! let Decoded::Ip(pkt) = decode(101, &ip) else { panic!("not decoded") };
//! let mut table = FlowTable::new(TableConfig::default());
//! let source = table.add_source("example.pcap");
//! let mut out = Vec::new();
//! table.ingest(source, Timestamp::from_secs_nanos(1_700_000_000, 0), &pkt, &mut out);
//! table.flush(&mut out);
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].dport, 53);
//! assert_eq!(out[0].bytes, 28);
//! ```
#![deny(missing_docs)]

pub mod capture;
pub mod chunks;
pub mod community_id;
pub mod export;
pub mod exports;
mod flowmap;
pub mod ingest;
pub mod json;
#[cfg(feature = "live")]
pub mod live;
pub mod netflow;
pub mod packet;
pub mod pcap_writer;
pub mod record;
pub mod services;
pub mod sflow;
pub mod stitch;
pub mod table;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
pub mod vpc;
pub mod watch;

pub use record::{FlowRecord, FlowState, OrientedBy, Proto};

/// A hint to the CPU to start loading the cache line of `p`.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address, and has no
    // architectural effect (it only warms the cache). `_mm_prefetch` is an
    // `unsafe fn` only because it is an SSE intrinsic, and SSE is part of the
    // x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
