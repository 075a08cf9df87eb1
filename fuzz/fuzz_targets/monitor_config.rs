//! The monitor's config loader (`src/config.rs`, compiled in from the
//! binary's source) on arbitrary text: errors are fine, panics are not, and a
//! config that loads prints (`--dump-config`) as text that loads to the same.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/etc/zonewatch/zonewatch.toml");
    if let Ok(settings) = config::parse(&text, path) {
        let dumped = settings.to_toml();
        let again = config::parse(&dumped, path)
            .unwrap_or_else(|e| panic!("the dump does not load: {e}\n{dumped}"));
        assert_eq!(again, settings, "the dump loads differently:\n{dumped}");
    }
});
