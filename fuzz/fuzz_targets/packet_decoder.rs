//! The packet decoder on arbitrary frames: the first byte picks the link type
//! among those `decode` supports, the rest is the captured frame. Whatever
//! `decode_plain` (the one-pass reader of ordinary packets) reads must be
//! what `decode` reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::packet::{Decoded, decode, decode_plain, linktype};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let supported = linktype::SUPPORTED;
    let Some(&lt) = supported.get(usize::from(pick) % supported.len()) else {
        return;
    };
    let decoded = decode(lt, frame);
    if let Some(p) = decode_plain(lt, frame) {
        match decoded {
            Decoded::Ip(info) => assert!(p.agrees_with(&info, frame), "{p:?}\n{info:?}"),
            other => panic!("decode_plain read {p:?}, decode {other:?}"),
        }
    }
});
