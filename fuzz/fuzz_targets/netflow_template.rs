//! Template state across datagrams: the input is a sequence of datagrams,
//! each framed as `[exporter: u8][length: u16 BE][bytes]`, all decoded
//! through ONE template cache (small caps, so eviction, pending overflow and
//! replay are reached). Exporter byte bit 0 picks one of two exporters and
//! the next bits advance the receive time (for pending timeouts).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::netflow::{TemplateCache, TemplateCacheConfig, decode};
use zonewatch_collector::time::Timestamp;

const MAX_TEMPLATES: usize = 16;
const MAX_PENDING: usize = 4;

fuzz_target!(|data: &[u8]| {
    let mut cache = TemplateCache::new(TemplateCacheConfig {
        max_templates_per_exporter: MAX_TEMPLATES,
        max_pending_per_exporter: MAX_PENDING,
        pending_timeout_secs: 60,
        max_exporters: 2,
    });
    let mut out = Vec::new();
    let mut rest = data;
    let mut secs = 1_700_000_000i64;
    while let Some((&[sel, hi, lo], tail)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(tail.len());
        let (datagram, tail) = tail.split_at(len);
        rest = tail;
        secs += i64::from(sel >> 1);
        let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + (sel & 1)));
        let before = out.len();
        if let Ok(summary) = decode(
            exporter,
            Timestamp::from_secs_nanos(secs, 0),
            datagram,
            &mut cache,
            1,
            &mut out,
        ) {
            assert_eq!(summary.records, out.len() - before);
        }
        assert!(cache.len() <= 2 * MAX_TEMPLATES);
        assert!(cache.pending_len() <= 2 * MAX_PENDING);
        for r in &out[before..] {
            assert_eq!(r.exporter, exporter);
        }
        out.clear();
    }
});
