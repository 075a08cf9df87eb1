//! The packet decoder on arbitrary frames: the first byte picks the link type
//! among those `decode` supports, the rest is the captured frame. Whatever
//! `decode_plain` (the one-pass reader of ordinary packets) reads must be
//! what `decode` reads, and be keyed as the decoded packet is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::packet::{decode, linktype};
use zonewatch_collector::testkit::check_plain;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let supported = linktype::SUPPORTED;
    let Some(&lt) = supported.get(usize::from(pick) % supported.len()) else {
        return;
    };
    if !check_plain(lt, frame) {
        let _ = decode(lt, frame);
    }
});
