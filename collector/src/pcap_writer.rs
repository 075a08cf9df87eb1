//! A minimal classic pcap writer (nanosecond resolution), for evidence files.

use std::io::{self, Write};

use crate::time::Timestamp;

/// Writes packets of one link type into a nanosecond pcap stream.
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut w: W, linktype: u32, snaplen: u32) -> io::Result<PcapWriter<W>> {
        w.write_all(&0xa1b2_3c4d_u32.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&0i32.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&snaplen.to_le_bytes())?;
        w.write_all(&linktype.to_le_bytes())?;
        Ok(PcapWriter { w })
    }

    /// Writes one record; `wire_len` is the original length on the wire.
    pub fn write_packet(&mut self, ts: Timestamp, wire_len: u32, data: &[u8]) -> io::Result<()> {
        let secs = u32::try_from(ts.secs()).unwrap_or(0);
        let caplen = u32::try_from(data.len()).map_err(io::Error::other)?;
        self.w.write_all(&secs.to_le_bytes())?;
        self.w.write_all(&ts.subsec_nanos().to_le_bytes())?;
        self.w.write_all(&caplen.to_le_bytes())?;
        self.w.write_all(&wire_len.max(caplen).to_le_bytes())?;
        self.w.write_all(data)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}
