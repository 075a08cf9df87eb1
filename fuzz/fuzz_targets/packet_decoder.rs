//! The packet decoder on arbitrary frames: the first byte picks the link type
//! among those `decode` supports, the rest is the captured frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::packet::{decode, linktype};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let supported = linktype::SUPPORTED;
    let Some(&lt) = supported.get(usize::from(pick) % supported.len()) else {
        return;
    };
    let _ = decode(lt, frame);
});
