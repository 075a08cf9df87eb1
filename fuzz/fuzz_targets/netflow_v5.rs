//! The NetFlow v5 / v9 / IPFIX decoder on one arbitrary datagram with a
//! fresh template cache: never panics, returns records or one error, and
//! what it holds stays within its caps.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::netflow::{
    TemplateCache, TemplateCacheConfig, decode, looks_like_netflow,
};
use zonewatch_collector::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_netflow(data);
    let cfg = TemplateCacheConfig::default();
    let (max_templates, max_pending) =
        (cfg.max_templates_per_exporter, cfg.max_pending_per_exporter);
    let mut cache = TemplateCache::new(cfg);
    let mut out = Vec::new();
    let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    match decode(exporter, Timestamp(0), data, &mut cache, 1, &mut out) {
        Ok(summary) => assert_eq!(summary.records, out.len()),
        Err(e) => {
            assert_eq!(e.exporter, exporter);
            // At least once: a held set replayed by this datagram may fail too.
            assert!(cache.stats()[&exporter].errors[e.reason] >= 1);
        }
    }
    assert!(cache.len() <= max_templates);
    assert!(cache.pending_len() <= max_pending);
});
