//! The sFlow v5 decoder on arbitrary datagrams: it must return records or an
//! error, never panic, and its summary and error offsets must be consistent.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::sflow::{decode, looks_like_sflow};
use zonewatch_collector::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_sflow(data);
    let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut out = Vec::new();
    match decode(exporter, Timestamp(0), data, &mut out) {
        Ok(summary) => {
            assert_eq!(summary.records, out.len());
            assert!(summary.records <= summary.flow_samples);
        }
        Err(e) => assert!(e.offset <= data.len()),
    }
});
