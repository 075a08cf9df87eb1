//! The zones file loader on arbitrary text: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = zonewatch_zones::Policy::parse(&text, "fuzz.toml");
});
