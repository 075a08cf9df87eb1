//! The capture reader on arbitrary files (pcap, pcapng, gzip), decoding every
//! packet it returns. Reading must end with `Ok(None)` or one error.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use zonewatch_collector::capture::CaptureReader;
use zonewatch_collector::packet::decode;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_reader(Box::new(Cursor::new(data.to_vec())), "fuzz")
    else {
        return;
    };
    loop {
        match reader.next_packet() {
            Ok(Some(packet)) => {
                assert_eq!(Ok(packet.data.len()), usize::try_from(packet.caplen));
                let _ = decode(packet.linktype, packet.data);
            }
            Ok(None) => break,
            Err(_) => {
                // An error ends the file.
                assert!(matches!(reader.next_packet(), Ok(None)));
                break;
            }
        }
    }
});
