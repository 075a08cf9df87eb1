//! The packet decoder on arbitrary frames: the first byte picks the link type
//! among those `decode` supports, the rest is the captured frame. Whatever
//! `decode_plain` (the one-pass reader of ordinary packets) reads must be
//! what `decode` reads, and be keyed as the decoded packet is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::packet::{Decoded, decode, decode_plain, linktype};
use zonewatch_collector::table::{FlowTable, TableConfig};
use zonewatch_collector::time::Timestamp;

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
        let Decoded::Ip(info) = decoded else {
            panic!("decode_plain read {p:?}, decode {decoded:?}");
        };
        assert!(p.agrees_with(&info, frame), "{p:?}\n{info:?}");
        let mut table = FlowTable::new(TableConfig::default());
        let source = table.add_source("fuzz");
        let keyer = table.keyer(source);
        let ts = Timestamp(1);
        assert_eq!(Some(keyer.key_plain(ts, &p)), keyer.key(ts, &info));
    }
});
