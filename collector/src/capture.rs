//! Streaming capture reader: pcap (µs/ns, both byte orders, the "modified"
//! variant), pcapng (multi-section, per-interface link type and time
//! resolution) and gzip-compressed files of either.
//!
//! [`CaptureReader`] pulls records from any [`Read`] through one reused buffer
//! (64 KiB at first, 128 KiB once the stream is larger than that, and more only
//! for a record that does not fit, up to the 64 MiB block limit), so memory
//! stays bounded whatever the file size. Each call to
//! [`CaptureReader::next_packet`] returns a [`CapturedPacket`] that borrows
//! the buffer until the next call.
//!
//! Contract (STYLE habit 2): file bytes are untrusted. Every record or block
//! header is read through a fixed-size array view taken after its length was
//! checked, so field accessors cannot panic; lengths are widened with `From`
//! or converted with `try_from`, never truncated with `as`.
//!
//! Oddities a reader can live with (sub-second fields out of range, a
//! captured length larger than the original one, pcapng packets of an
//! undeclared interface, malformed options) are counted in
//! [`CaptureWarnings`] and reading goes on. Damage that makes the rest of the
//! file unreadable (a file cut inside a record, an impossible record or
//! block length) ends the file with a [`CaptureError`] naming the record
//! number and byte offset, after every good record before it was returned;
//! later calls return `Ok(None)`.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::chunks::{self, ChunkFeed};
use crate::time::Timestamp;

/// Largest captured length accepted in a pcap record (4 × 256 KiB, above
/// any real snaplen). A larger one means the file is corrupt from there on.
pub const MAX_CAPLEN: u32 = 262_144 * 4;

/// Largest pcapng block accepted.
pub const MAX_BLOCK_LEN: u32 = 64 * 1024 * 1024;

/// Buffer size once a stream has shown it is larger than [`FIRST_BUFFER_LEN`]:
/// reads of a chunk's size, as the chunk feed makes (`cat` reads 128 KiB too).
const BUFFER_LEN: usize = chunks::CHUNK;
/// Buffer size at first, so that small files and pipes stay cheap.
const FIRST_BUFFER_LEN: usize = 64 * 1024;
/// Page size, for placing reads (see [`CaptureReader::compact`]).
const PAGE: usize = chunks::PAGE;
const PAGE_U64: u64 = chunks::PAGE as u64;
/// Move the unread bytes to the front when less than this is free at the end.
const MIN_READ: usize = 64 * 1024;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_OPB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
const PCAPNG_BYTE_ORDER: u32 = 0x1A2B_3C4D;

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapturedPacket<'a> {
    /// Capture time (UTC).
    pub ts: Timestamp,
    /// Captured length: `data.len()`.
    pub caplen: u32,
    /// Length of the frame on the wire (may exceed `caplen` when the snaplen cut it).
    pub wire_len: u32,
    /// Link type of the frame (`LINKTYPE_*`, low 16 bits).
    pub linktype: u32,
    /// pcapng interface id (0 for pcap).
    pub interface: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// The container format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap format.
    Pcap {
        /// Nanosecond timestamps (magic a1b23c4d) instead of microseconds.
        nanos: bool,
        /// The file was written big-endian.
        big_endian: bool,
    },
    /// pcapng (byte order may change from one section to the next).
    Pcapng,
}

/// Counters of recoverable oddities met while reading (STYLE habit 11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureWarnings {
    /// pcap records whose sub-second field was ≥ 1 s (carried over into the seconds).
    pub subsec_overflow: u64,
    /// Records whose captured length exceeds the original length (kept as captured).
    pub caplen_over_wire_len: u64,
    /// pcapng packet blocks whose captured length runs past the block (cut to the block).
    pub caplen_over_block: u64,
    /// pcapng packets naming an interface that no IDB declared (skipped).
    pub unknown_interface: u64,
    /// pcapng option lists running past their block (options ignored).
    pub bad_options: u64,
    /// pcapng blocks too short for their fixed fields (skipped).
    pub short_blocks: u64,
    /// pcapng blocks whose trailing length differs from the leading one.
    pub length_mismatch: u64,
    /// pcapng simple packet blocks, which carry no time: they get the time of
    /// the previous packet of the section (0 when there is none).
    pub no_timestamp: u64,
}

impl CaptureWarnings {
    /// Sum of all counters.
    pub fn total(&self) -> u64 {
        self.subsec_overflow
            + self.caplen_over_wire_len
            + self.caplen_over_block
            + self.unknown_interface
            + self.bad_options
            + self.short_blocks
            + self.length_mismatch
            + self.no_timestamp
    }
}

/// What went wrong in a [`CaptureError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureErrorKind {
    /// Reading the underlying file or stream failed (see the error's source).
    Read,
    /// The data starts with no pcap, pcapng or gzip magic number.
    NotCapture {
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// A pcap file header with a major version other than 2.
    UnsupportedPcapVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A pcapng section header with a major version other than 1.
    UnsupportedPcapngVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A pcapng section header whose byte-order magic is neither order of 0x1A2B3C4D.
    BadByteOrder {
        /// The value found, big-endian.
        magic: u32,
    },
    /// The data ends inside the pcap file header or the first pcapng section header.
    TruncatedFileHeader,
    /// The data ends inside a packet record (pcap record or pcapng packet block).
    TruncatedRecord,
    /// The data ends inside a pcapng block that is not a packet.
    TruncatedBlock {
        /// Block type (0 when the data ends before it).
        block_type: u32,
    },
    /// A pcap record with a captured length above [`MAX_CAPLEN`].
    CaplenTooLarge {
        /// The captured length found.
        caplen: u32,
    },
    /// A pcapng block length below 12, not a multiple of 4, above
    /// [`MAX_BLOCK_LEN`] or too short for a section header.
    BadBlockLength {
        /// Block type.
        block_type: u32,
        /// The total length found.
        length: u32,
    },
}

/// An error that ends the reading of a capture.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.kind, *.packet, *.offset))]
pub struct CaptureError {
    /// What went wrong.
    pub kind: CaptureErrorKind,
    /// The record being read when it happened (1-based; the number of records
    /// returned so far plus one).
    pub packet: u64,
    /// Byte offset in the (decompressed) capture where it happened.
    pub offset: u64,
    /// The I/O error, for [`CaptureErrorKind::Read`].
    #[source]
    pub source: Option<io::Error>,
}

fn describe(kind: &CaptureErrorKind, packet: u64, offset: u64) -> String {
    match *kind {
        CaptureErrorKind::Read => format!("cannot read the capture at byte offset {offset}"),
        CaptureErrorKind::NotCapture { magic } => {
            format!("not a pcap or pcapng file (magic 0x{magic:08x})")
        }
        CaptureErrorKind::UnsupportedPcapVersion { major, minor } => {
            format!("unsupported pcap version {major}.{minor}")
        }
        CaptureErrorKind::UnsupportedPcapngVersion { major, minor } => {
            format!("unsupported pcapng version {major}.{minor} (byte offset {offset})")
        }
        CaptureErrorKind::BadByteOrder { magic } => format!(
            "pcapng section header with an invalid byte-order magic 0x{magic:08x} (byte offset {offset})"
        ),
        CaptureErrorKind::TruncatedFileHeader => {
            format!("file ends inside the file header (byte offset {offset})")
        }
        CaptureErrorKind::TruncatedRecord => {
            format!("file ends inside packet record {packet} (byte offset {offset})")
        }
        CaptureErrorKind::TruncatedBlock { block_type } => format!(
            "file ends inside a pcapng block of type 0x{block_type:08x} before packet record {packet} (byte offset {offset})"
        ),
        CaptureErrorKind::CaplenTooLarge { caplen } => format!(
            "packet record {packet} has an impossible captured length {caplen} (byte offset {offset})"
        ),
        CaptureErrorKind::BadBlockLength { block_type, length } => format!(
            "pcapng block of type 0x{block_type:08x} has an invalid length {length} (byte offset {offset})"
        ),
    }
}

/// A reader that counts the bytes it hands out (for progress on compressed input).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        Ok(n)
    }
}

/// A pcapng interface, as declared by its IDB.
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

/// Per-format state.
#[derive(Debug)]
enum State {
    Pcap {
        big_endian: bool,
        nanos: bool,
        /// Kuznetzov's "modified" format: 24-byte record headers.
        modified: bool,
        linktype: u32,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
        /// Time of the last packet with a timestamp in this section.
        last_ts: Timestamp,
    },
}

/// Streaming reader of pcap and pcapng captures (see the module docs).
pub struct CaptureReader {
    src: Box<dyn Read + Send>,
    /// Set when the file is read through a [`ChunkFeed`] (then `src` is unused).
    feed: Option<Arc<ChunkFeed>>,
    consumed: Arc<AtomicU64>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Offset in the decompressed stream of `buf[0]`.
    base: u64,
    eof: bool,
    /// An error ended the file: only `Ok(None)` from now on.
    done: bool,
    format: Format,
    state: State,
    packet: u64,
    warnings: CaptureWarnings,
    name: String,
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("packet", &self.packet)
            .field("offset", &self.offset())
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Opens a capture file (pcap or pcapng, gzip-compressed or not: detected
    /// from the magic numbers, not the file name) and reads its header.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let file = File::open(path).map_err(|e| io_error(e, 0, 0))?;
        CaptureReader::from_reader(Box::new(file), &path.display().to_string())
    }

    /// Opens a capture file like [`CaptureReader::open`], read through a
    /// [`ChunkFeed`] when it is an uncompressed regular file, so that other
    /// threads can share the copying ([`CaptureReader::feed`]). The file is
    /// read up to the size it had when opened.
    pub fn open_shared(path: &Path) -> Result<CaptureReader, CaptureError> {
        CaptureReader::open_shared_chunked(path, chunks::CHUNK)
    }

    /// [`CaptureReader::open_shared`] with chunks of `chunk` bytes: tests and
    /// fuzzing use small ones, to cut records at every place.
    pub fn open_shared_chunked(path: &Path, chunk: usize) -> Result<CaptureReader, CaptureError> {
        let mut file = File::open(path).map_err(|e| io_error(e, 0, 0))?;
        let name = path.display().to_string();
        let meta = file.metadata().map_err(|e| io_error(e, 0, 0))?;
        let mut magic = [0u8; 2];
        let plain = meta.is_file()
            && file.read_exact(&mut magic).is_ok()
            && magic != [0x1F, 0x8B]
            && io::Seek::rewind(&mut file).is_ok();
        if !plain {
            return CaptureReader::open(path);
        }
        let feed = ChunkFeed::with_chunk_size(file, meta.len(), chunk);
        CaptureReader::start(
            Box::new(io::empty()),
            Some(Arc::new(feed)),
            Arc::new(AtomicU64::new(0)),
            Vec::new(),
            name,
        )
    }

    /// The chunk feed of a reader from [`CaptureReader::open_shared`]: a
    /// thread with time to spare calls [`ChunkFeed::copy_ahead`] on it.
    pub fn feed(&self) -> Option<Arc<ChunkFeed>> {
        self.feed.clone()
    }

    /// Reads a capture from any stream (stdin, a socket, a decompressor, ...);
    /// gzip is detected and decompressed here too. `name` is kept for
    /// messages ([`CaptureReader::name`]).
    pub fn from_reader(
        mut reader: Box<dyn Read + Send>,
        name: &str,
    ) -> Result<CaptureReader, CaptureError> {
        let consumed = Arc::new(AtomicU64::new(0));
        // Sniff the first bytes for gzip, then put them back in front.
        let mut prefix = [0u8; 2];
        let mut got = 0;
        while let Some(free) = prefix.get_mut(got..).filter(|f| !f.is_empty()) {
            match reader.read(free) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, 1, 0)),
            }
        }
        consumed.store(u64::try_from(got).unwrap_or(0), Ordering::Relaxed);
        let head = io::Cursor::new(prefix.get(..got).unwrap_or_default().to_vec());
        let counted = Counting {
            inner: reader,
            count: Arc::clone(&consumed),
        };
        let joined = head.chain(counted);
        let src: Box<dyn Read + Send> = if prefix == [0x1F, 0x8B] && got == 2 {
            Box::new(flate2::read::MultiGzDecoder::new(joined))
        } else {
            Box::new(joined)
        };
        CaptureReader::start(
            src,
            None,
            consumed,
            vec![0; FIRST_BUFFER_LEN],
            name.to_owned(),
        )
    }

    /// A reader over `src` (or `feed`) with an empty `buf`, its file
    /// header read.
    fn start(
        src: Box<dyn Read + Send>,
        feed: Option<Arc<ChunkFeed>>,
        consumed: Arc<AtomicU64>,
        buf: Vec<u8>,
        name: String,
    ) -> Result<CaptureReader, CaptureError> {
        let mut r = CaptureReader {
            src,
            feed,
            consumed,
            buf,
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            done: false,
            format: Format::Pcapng,
            state: State::Pcapng {
                big_endian: false,
                interfaces: Vec::new(),
                last_ts: Timestamp(0),
            },
            packet: 0,
            warnings: CaptureWarnings::default(),
            name,
        };
        r.read_file_header()?;
        Ok(r)
    }

    /// The container format (from the file header).
    pub fn format(&self) -> Format {
        self.format
    }

    /// The name given when opening (the path for [`CaptureReader::open`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// 1-based number of the last record returned (0 before the first).
    pub fn packet_number(&self) -> u64 {
        self.packet
    }

    /// Bytes read so far from the underlying reader (compressed bytes for
    /// gzip), for progress reporting.
    pub fn bytes_consumed(&self) -> u64 {
        if self.feed.is_some() {
            return self.offset();
        }
        self.consumed.load(Ordering::Relaxed)
    }

    /// Counters of recoverable oddities met so far.
    pub fn warnings(&self) -> &CaptureWarnings {
        &self.warnings
    }

    /// The next packet, `Ok(None)` at the end of the file (and after an error).
    // Inlined into the reading loops: returned through memory, the packet's
    // fields were stored piecewise and reloaded whole, and the loads waited
    // on the stores.
    #[inline(always)]
    pub fn next_packet(&mut self) -> Result<Option<CapturedPacket<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let result = match self.state {
            State::Pcap { .. } => self.next_pcap(),
            State::Pcapng { .. } => self.next_pcapng(),
        };
        match result {
            Ok(Some(loc)) => {
                self.packet += 1;
                let data = self
                    .buf
                    .get(loc.data_start..loc.data_start + loc.meta.caplen_usize())
                    .unwrap_or_default();
                Ok(Some(CapturedPacket {
                    ts: loc.meta.ts,
                    caplen: loc.meta.caplen,
                    wire_len: loc.meta.wire_len,
                    linktype: loc.meta.linktype,
                    interface: loc.meta.interface,
                    data,
                }))
            }
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// Offset in the decompressed stream of the next unread byte.
    fn offset(&self) -> u64 {
        // Wrapping: with a chunk feed, `base` is the offset of the chunk
        // minus its headroom, below 0 for the first chunk.
        self.base
            .wrapping_add(u64::try_from(self.start).unwrap_or(0))
    }

    /// Offset of the end of the data read so far (where a cut file ends).
    fn end_offset(&self) -> u64 {
        self.base.wrapping_add(u64::try_from(self.end).unwrap_or(0))
    }

    fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    fn error(&self, kind: CaptureErrorKind, offset: u64) -> CaptureError {
        CaptureError {
            kind,
            packet: self.packet + 1,
            offset,
            source: None,
        }
    }

    /// Makes at least `need` unread bytes available; `Ok(false)` when the
    /// stream ends first.
    #[inline(always)]
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        // The common case, inline: the record is already in the buffer.
        if self.end - self.start >= need {
            return Ok(true);
        }
        self.refill(need)
    }

    /// [`CaptureReader::fill`] when the buffer runs short: reads more.
    #[inline(never)]
    fn refill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if let Some(feed) = self.feed.clone() {
            return self.refill_from(&feed, need);
        }
        while self.end - self.start < need {
            if self.eof {
                return Ok(false);
            }
            if self.start + need > self.buf.len()
                || (self.start > 0 && self.buf.len() - self.end < MIN_READ)
            {
                self.compact(need);
            }
            let free = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.src.read(free) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e, self.packet + 1, self.end_offset())),
            }
        }
        Ok(true)
    }

    /// [`CaptureReader::refill`] from a chunk feed: the unread bytes move
    /// into the next chunk's headroom (or, for a record longer than that,
    /// into a buffer of its own that grows with it).
    fn refill_from(&mut self, feed: &ChunkFeed, need: usize) -> Result<bool, CaptureError> {
        while self.end - self.start < need {
            if self.eof {
                return Ok(false);
            }
            let chunk = match feed.take() {
                None => {
                    self.eof = true;
                    continue;
                }
                Some(Ok(c)) => c,
                Some(Err(e)) => return Err(io_error(e, self.packet + 1, self.end_offset())),
            };
            let at = chunk.start;
            let Some(data) = chunk.buf.get(at..at + chunk.len) else {
                continue;
            };
            if chunk.len == 0 {
                // The file shrank after it was opened.
                self.eof = true;
                feed.give_back(chunk.buf);
                continue;
            }
            let tail = self.end - self.start;
            if tail <= chunks::HEAD {
                let mut next = chunk.buf;
                if let (Some(dst), Some(src)) = (
                    next.get_mut(at - tail..at),
                    self.buf.get(self.start..self.end),
                ) {
                    dst.copy_from_slice(src);
                }
                feed.give_back(std::mem::replace(&mut self.buf, next));
                self.base = chunk.offset.wrapping_sub(u64::try_from(at).unwrap_or(0));
                self.start = at - tail;
                self.end = at + chunk.len;
            } else {
                // A record longer than the headroom: gather it on its own.
                // A feed's buffer goes back to it; one of our own keeps growing.
                let mut own = if self.buf.capacity() == feed.buffer_len() {
                    let own = self
                        .buf
                        .get(self.start..self.end)
                        .unwrap_or_default()
                        .to_vec();
                    feed.give_back(std::mem::take(&mut self.buf));
                    own
                } else {
                    let mut own = std::mem::take(&mut self.buf);
                    own.truncate(self.end);
                    own.drain(..self.start);
                    own
                };
                own.reserve(need.saturating_sub(tail));
                own.extend_from_slice(data);
                feed.give_back(chunk.buf);
                self.base = chunk.offset.wrapping_sub(u64::try_from(tail).unwrap_or(0));
                self.start = 0;
                self.end = own.len();
                self.buf = own;
            }
        }
        Ok(true)
    }

    /// Moves the unread bytes to the front, growing the buffer for `need` bytes.
    fn compact(&mut self, need: usize) {
        let live = self.end - self.start;
        let read_so_far = self.end_offset();
        let proven_large = read_so_far >= u64::try_from(self.buf.len()).unwrap_or(0);
        // A large stream's unread bytes move to where the next read lands at
        // the page offset it has in the file: a kernel copy to an address a
        // few bytes past the source's page offset runs 3-4x slower (see
        // `chunks::PAGE`). Small streams stay at the front.
        let first = self.offset();
        let place = |buf: &Vec<u8>| -> usize {
            if proven_large {
                usize::try_from(first % PAGE_U64)
                    .unwrap_or(0)
                    .wrapping_sub(buf.as_ptr() as usize % PAGE)
                    % PAGE
            } else {
                0
            }
        };
        let wanted = if proven_large {
            need.max(BUFFER_LEN) + PAGE
        } else {
            need
        };
        let mut at = place(&self.buf);
        if wanted > self.buf.len() || at + need > self.buf.len() {
            let mut bigger = vec![0; wanted.max(need + PAGE)];
            at = place(&bigger);
            if let (Some(dst), Some(src)) = (
                bigger.get_mut(at..at + live),
                self.buf.get(self.start..self.end),
            ) {
                dst.copy_from_slice(src);
            }
            self.buf = bigger;
        } else {
            self.buf.copy_within(self.start..self.end, at);
        }
        self.base = first.wrapping_sub(u64::try_from(at).unwrap_or(0));
        self.start = at;
        self.end = at + live;
    }

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(4)? {
            return Err(self.error(CaptureErrorKind::TruncatedFileHeader, self.end_offset()));
        }
        let magic_bytes = array::<4>(self.available()).copied().unwrap_or_default();
        let magic_le = u32::from_le_bytes(magic_bytes);
        let magic_be = u32::from_be_bytes(magic_bytes);
        if magic_le == PCAPNG_SHB {
            self.format = Format::Pcapng;
            // The first block must be a valid section header: read it now so
            // that a bad version is an open error.
            return self.pcapng_section_header();
        }
        let (big_endian, magic) = match (magic_le, magic_be) {
            (m @ (0xA1B2_C3D4 | 0xA1B2_3C4D | 0xA1B2_CD34), _) => (false, m),
            (_, m @ (0xA1B2_C3D4 | 0xA1B2_3C4D | 0xA1B2_CD34)) => (true, m),
            _ => {
                return Err(self.error(CaptureErrorKind::NotCapture { magic: magic_be }, 0));
            }
        };
        if !self.fill(24)? {
            return Err(self.error(CaptureErrorKind::TruncatedFileHeader, self.end_offset()));
        }
        let h = array::<24>(self.available()).copied().unwrap_or([0; 24]);
        let major = u16_at(&h, 4, big_endian);
        let minor = u16_at(&h, 6, big_endian);
        if major != 2 {
            return Err(self.error(CaptureErrorKind::UnsupportedPcapVersion { major, minor }, 4));
        }
        let nanos = magic == 0xA1B2_3C4D;
        self.format = Format::Pcap { nanos, big_endian };
        self.state = State::Pcap {
            big_endian,
            nanos,
            modified: magic == 0xA1B2_CD34,
            // Upper bits hold the FCS length and reserved bits.
            linktype: u32_at(&h, 20, big_endian) & 0xFFFF,
        };
        self.start += 24;
        Ok(())
    }

    // Inlined into next_packet (and so into the reading loops), the record's
    // fields stay in registers.
    #[inline(always)]
    fn next_pcap(&mut self) -> Result<Option<Located>, CaptureError> {
        let State::Pcap {
            big_endian,
            nanos,
            modified,
            linktype,
        } = self.state
        else {
            return Ok(None);
        };
        let hdr_len = if modified { 24 } else { 16 };
        if !self.fill(hdr_len)? {
            if self.start == self.end {
                return Ok(None);
            }
            return Err(self.error(CaptureErrorKind::TruncatedRecord, self.end_offset()));
        }
        let h = array::<16>(self.available()).copied().unwrap_or([0; 16]);
        let secs = u32_at(&h, 0, big_endian);
        let frac = u32_at(&h, 4, big_endian);
        let caplen = u32_at(&h, 8, big_endian);
        let wire_len = u32_at(&h, 12, big_endian);
        if caplen > MAX_CAPLEN {
            return Err(self.error(CaptureErrorKind::CaplenTooLarge { caplen }, self.offset()));
        }
        let caplen_usize = usize::try_from(caplen).unwrap_or(usize::MAX);
        if !self.fill(hdr_len + caplen_usize)? {
            return Err(self.error(CaptureErrorKind::TruncatedRecord, self.end_offset()));
        }
        let nanos_value = if nanos {
            if frac >= 1_000_000_000 {
                self.warnings.subsec_overflow += 1;
            }
            u64::from(frac)
        } else {
            if frac >= 1_000_000 {
                self.warnings.subsec_overflow += 1;
            }
            u64::from(frac) * 1000
        };
        if caplen > wire_len {
            self.warnings.caplen_over_wire_len += 1;
        }
        let data_start = self.start + hdr_len;
        self.start = data_start + caplen_usize;
        // The next record's header and the start of its packet: loading them
        // while this packet is decoded hides most of the wait for them (the
        // load of a record header was 60% of next_packet's samples, 8% of
        // the benchmark's; 3.4% with this. A third line ahead: no gain).
        let next = self.buf.as_ptr().wrapping_add(self.start);
        crate::prefetch(next);
        crate::prefetch(next.wrapping_add(64));
        Ok(Some(Located {
            data_start,
            meta: Meta {
                ts: Timestamp::from_secs_nanos(i64::from(secs), nanos_value),
                caplen,
                wire_len,
                linktype,
                interface: 0,
            },
        }))
    }

    /// Reads the section header block at the current position (the caller
    /// saw its block type), resetting the interface list.
    fn pcapng_section_header(&mut self) -> Result<(), CaptureError> {
        let at = self.offset();
        if !self.fill(12)? {
            return Err(self.truncated_block(PCAPNG_SHB));
        }
        let h = array::<12>(self.available()).copied().unwrap_or([0; 12]);
        let big_endian = match u32::from_le_bytes([h[8], h[9], h[10], h[11]]) {
            PCAPNG_BYTE_ORDER => false,
            0x4D3C_2B1A => true,
            _ => {
                let magic = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
                return Err(self.error(CaptureErrorKind::BadByteOrder { magic }, at + 8));
            }
        };
        let length = u32_at(&h, 4, big_endian);
        // SHB: 12 bytes of block framing + byte order, version, section length.
        if length < 28 || !length.is_multiple_of(4) || length > MAX_BLOCK_LEN {
            return Err(self.error(
                CaptureErrorKind::BadBlockLength {
                    block_type: PCAPNG_SHB,
                    length,
                },
                at,
            ));
        }
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        if !self.fill(len)? {
            return Err(self.truncated_block(PCAPNG_SHB));
        }
        let h = array::<16>(self.available()).copied().unwrap_or([0; 16]);
        let major = u16_at(&h, 12, big_endian);
        let minor = u16_at(&h, 14, big_endian);
        if major != 1 {
            return Err(self.error(
                CaptureErrorKind::UnsupportedPcapngVersion { major, minor },
                at + 12,
            ));
        }
        self.check_trailer(len, length, big_endian);
        self.state = State::Pcapng {
            big_endian,
            interfaces: Vec::new(),
            last_ts: Timestamp(0),
        };
        self.start += len;
        Ok(())
    }

    /// Error for data ending inside a block of `block_type`.
    fn truncated_block(&self, block_type: u32) -> CaptureError {
        let kind = match block_type {
            PCAPNG_EPB | PCAPNG_SPB | PCAPNG_OPB => CaptureErrorKind::TruncatedRecord,
            _ => CaptureErrorKind::TruncatedBlock { block_type },
        };
        self.error(kind, self.end_offset())
    }

    fn check_trailer(&mut self, len: usize, length: u32, big_endian: bool) {
        let trailer = self
            .available()
            .get(len.saturating_sub(4)..len)
            .and_then(array::<4>)
            .copied()
            .unwrap_or_default();
        let trailer = if big_endian {
            u32::from_be_bytes(trailer)
        } else {
            u32::from_le_bytes(trailer)
        };
        if trailer != length {
            self.warnings.length_mismatch += 1;
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<Located>, CaptureError> {
        loop {
            let State::Pcapng { big_endian, .. } = self.state else {
                return Ok(None);
            };
            if !self.fill(8)? {
                if self.start == self.end {
                    return Ok(None);
                }
                let block_type = match array::<4>(self.available()) {
                    Some(t) => u32_from(*t, big_endian),
                    None => 0,
                };
                return Err(self.truncated_block(block_type));
            }
            let h = array::<8>(self.available()).copied().unwrap_or([0; 8]);
            let block_type = u32_at(&h, 0, big_endian);
            if block_type == PCAPNG_SHB {
                self.pcapng_section_header()?;
                continue;
            }
            let length = u32_at(&h, 4, big_endian);
            if length < 12 || !length.is_multiple_of(4) || length > MAX_BLOCK_LEN {
                return Err(self.error(
                    CaptureErrorKind::BadBlockLength { block_type, length },
                    self.offset(),
                ));
            }
            let len = usize::try_from(length).unwrap_or(usize::MAX);
            if !self.fill(len)? {
                return Err(self.truncated_block(block_type));
            }
            self.check_trailer(len, length, big_endian);
            let block_start = self.start;
            self.start += len;
            let block = self
                .buf
                .get(block_start..block_start + len)
                .unwrap_or_default();
            match block_type {
                PCAPNG_IDB => {
                    let parsed = parse_idb(block, big_endian, &mut self.warnings);
                    if let (Some(iface), State::Pcapng { interfaces, .. }) =
                        (parsed, &mut self.state)
                    {
                        interfaces.push(iface);
                    }
                }
                PCAPNG_EPB | PCAPNG_OPB | PCAPNG_SPB => {
                    let State::Pcapng {
                        interfaces,
                        last_ts,
                        ..
                    } = &mut self.state
                    else {
                        return Ok(None);
                    };
                    if let Some((offset, mut meta, timed)) = parse_packet_block(
                        block_type,
                        block,
                        big_endian,
                        interfaces,
                        &mut self.warnings,
                    ) {
                        if timed {
                            *last_ts = meta.ts;
                        } else {
                            self.warnings.no_timestamp += 1;
                            meta.ts = *last_ts;
                        }
                        return Ok(Some(Located {
                            data_start: block_start + offset,
                            meta,
                        }));
                    }
                }
                _ => {} // name resolution, statistics, custom, ...: not needed
            }
        }
    }
}

/// Where a packet's bytes are in the buffer, and what is known about it.
struct Located {
    data_start: usize,
    meta: Meta,
}

struct Meta {
    ts: Timestamp,
    caplen: u32,
    wire_len: u32,
    linktype: u32,
    interface: u32,
}

impl Meta {
    fn caplen_usize(&self) -> usize {
        usize::try_from(self.caplen).unwrap_or(0)
    }
}

fn io_error(e: io::Error, packet: u64, offset: u64) -> CaptureError {
    CaptureError {
        kind: CaptureErrorKind::Read,
        packet,
        offset,
        source: Some(e),
    }
}

#[inline(always)]
fn array<const N: usize>(data: &[u8]) -> Option<&[u8; N]> {
    data.first_chunk::<N>()
}

#[inline(always)]
fn u32_from(b: [u8; 4], big_endian: bool) -> u32 {
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// u32 at `off` of a header view (0 past its end; callers take views of the right size).
#[inline(always)]
fn u32_at(h: &[u8], off: usize, big_endian: bool) -> u32 {
    match h.get(off..).and_then(array::<4>) {
        Some(b) => u32_from(*b, big_endian),
        None => 0,
    }
}

#[inline(always)]
fn u16_at(h: &[u8], off: usize, big_endian: bool) -> u16 {
    match h.get(off..).and_then(array::<2>) {
        Some(b) if big_endian => u16::from_be_bytes(*b),
        Some(b) => u16::from_le_bytes(*b),
        None => 0,
    }
}

/// Parses an interface description block (`block` is the whole block).
fn parse_idb(block: &[u8], big_endian: bool, warnings: &mut CaptureWarnings) -> Option<Interface> {
    let Some(h) = array::<20>(block) else {
        warnings.short_blocks += 1;
        return None;
    };
    let mut iface = Interface {
        linktype: u32::from(u16_at(h, 8, big_endian)),
        snaplen: u32_at(h, 12, big_endian),
        units_per_sec: 1_000_000,
        offset_secs: 0,
    };
    let options = block
        .get(16..block.len().saturating_sub(4))
        .unwrap_or_default();
    let (mut resol, mut offset) = (None, None);
    let mut rest = options;
    let valid = loop {
        let Some(o) = array::<4>(rest) else {
            // End of the list without opt_endofopt, or stray bytes.
            break rest.is_empty();
        };
        let code = u16_at(o, 0, big_endian);
        let len = usize::from(u16_at(o, 2, big_endian));
        if code == 0 {
            break true;
        }
        let Some(value) = rest.get(4..4 + len) else {
            break false;
        };
        match code {
            9 => resol = value.first().copied(),
            14 => {
                offset = array::<8>(value).map(|v| {
                    if big_endian {
                        i64::from_be_bytes(*v)
                    } else {
                        i64::from_le_bytes(*v)
                    }
                })
            }
            _ => {}
        }
        rest = rest.get(4 + len.next_multiple_of(4)..).unwrap_or_default();
    };
    if !valid {
        warnings.bad_options += 1;
        return Some(iface);
    }
    if let Some(r) = resol {
        let exp = u32::from(r & 0x7F);
        iface.units_per_sec = if r & 0x80 != 0 {
            2u64.checked_pow(exp)
        } else {
            10u64.checked_pow(exp)
        }
        .unwrap_or(u64::MAX);
    }
    if let Some(o) = offset {
        iface.offset_secs = o;
    }
    Some(iface)
}

/// Parses an EPB, OPB or SPB (`block` is the whole block): the data offset
/// within the block, the packet's metadata and whether it had a timestamp;
/// `None` to skip it.
fn parse_packet_block(
    block_type: u32,
    block: &[u8],
    big_endian: bool,
    interfaces: &[Interface],
    warnings: &mut CaptureWarnings,
) -> Option<(usize, Meta, bool)> {
    let space = |fixed: usize| u32::try_from(block.len().saturating_sub(fixed)).unwrap_or(0);
    if block_type == PCAPNG_SPB {
        let Some(h) = array::<12>(block) else {
            warnings.short_blocks += 1;
            return None;
        };
        let Some(iface) = interfaces.first() else {
            warnings.unknown_interface += 1;
            return None;
        };
        let wire_len = u32_at(h, 8, big_endian);
        let mut caplen = wire_len.min(space(16));
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen);
        }
        return Some((
            12,
            Meta {
                // A simple packet block has no timestamp.
                ts: Timestamp(0),
                caplen,
                wire_len,
                linktype: iface.linktype,
                interface: 0,
            },
            false,
        ));
    }
    let Some(h) = array::<28>(block).filter(|_| block.len() >= 32) else {
        warnings.short_blocks += 1;
        return None;
    };
    let interface = if block_type == PCAPNG_OPB {
        u32::from(u16_at(h, 8, big_endian))
    } else {
        u32_at(h, 8, big_endian)
    };
    let Some(iface) = usize::try_from(interface)
        .ok()
        .and_then(|i| interfaces.get(i))
    else {
        warnings.unknown_interface += 1;
        return None;
    };
    let units = (u64::from(u32_at(h, 12, big_endian)) << 32) | u64::from(u32_at(h, 16, big_endian));
    let mut caplen = u32_at(h, 20, big_endian);
    let wire_len = u32_at(h, 24, big_endian);
    let room = space(32);
    if caplen > room {
        warnings.caplen_over_block += 1;
        caplen = room;
    }
    if caplen > wire_len {
        warnings.caplen_over_wire_len += 1;
    }
    Some((
        28,
        Meta {
            ts: pcapng_time(units, iface),
            caplen,
            wire_len,
            linktype: iface.linktype,
            interface,
        },
        true,
    ))
}

/// Converts a pcapng timestamp in the interface's units to UTC.
#[inline]
fn pcapng_time(units: u64, iface: &Interface) -> Timestamp {
    let ups = iface.units_per_sec.max(1);
    let (secs, frac) = (units / ups, units % ups);
    let nanos = match ups {
        1_000_000 => frac * 1000,
        1_000_000_000 => frac,
        _ => u64::try_from(u128::from(frac) * 1_000_000_000 / u128::from(ups)).unwrap_or(0),
    };
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    Timestamp::from_secs_nanos(secs.saturating_add(iface.offset_secs), nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::path::PathBuf;

    const FRAME: [u8; 6] = [1, 2, 3, 4, 5, 6];

    fn reader(bytes: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        CaptureReader::from_reader(Box::new(Cursor::new(bytes)), "test")
    }

    fn put32(v: &mut Vec<u8>, x: u32, be: bool) {
        v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
    }

    fn put16(v: &mut Vec<u8>, x: u16, be: bool) {
        v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
    }

    fn pcap_header(magic: u32, be: bool, major: u16, minor: u16, linktype: u32) -> Vec<u8> {
        let mut v = Vec::new();
        put32(&mut v, magic, be);
        put16(&mut v, major, be);
        put16(&mut v, minor, be);
        put32(&mut v, 0, be);
        put32(&mut v, 0, be);
        put32(&mut v, 65535, be);
        put32(&mut v, linktype, be);
        v
    }

    fn pcap_record(v: &mut Vec<u8>, be: bool, secs: u32, frac: u32, data: &[u8], wire: u32) {
        put32(v, secs, be);
        put32(v, frac, be);
        put32(v, u32::try_from(data.len()).unwrap(), be);
        put32(v, wire, be);
        v.extend_from_slice(data);
    }

    use crate::testkit::read_records;

    #[test]
    fn pcap_all_magics_and_byte_orders() {
        for be in [false, true] {
            for (magic, nanos, frac, want_ns) in [
                (0xA1B2_C3D4, false, 250_000, 250_000_000),
                (0xA1B2_3C4D, true, 250_000, 250_000),
            ] {
                let mut f = pcap_header(magic, be, 2, 4, 1);
                pcap_record(&mut f, be, 1_300_000_000, frac, &FRAME, 60);
                pcap_record(&mut f, be, 1_300_000_001, 0, &FRAME[..2], 2);
                let mut r = reader(f).unwrap();
                assert_eq!(
                    r.format(),
                    Format::Pcap {
                        nanos,
                        big_endian: be
                    }
                );
                let (recs, err) = read_records(&mut r);
                assert!(err.is_none());
                assert_eq!(recs.len(), 2);
                assert_eq!(
                    recs[0],
                    (
                        1_300_000_000 * 1_000_000_000 + want_ns,
                        6,
                        60,
                        1,
                        0,
                        FRAME.to_vec()
                    )
                );
                assert_eq!(recs[1].1, 2);
                assert_eq!(r.packet_number(), 2);
                assert_eq!(r.warnings().total(), 0);
            }
        }
    }

    #[test]
    fn pcap_modified_format_has_longer_record_headers() {
        let mut f = pcap_header(0xA1B2_CD34, false, 2, 4, 1);
        pcap_record(&mut f, false, 10, 5, &[], 6);
        // The 8 extra header bytes (ifindex, protocol, pkt_type, pad) come before the data.
        let caplen_at = f.len() - 8;
        f[caplen_at..caplen_at + 4].copy_from_slice(&6u32.to_le_bytes());
        f.extend_from_slice(&[0, 0, 0, 2, 0x08, 0x00, 0, 0]);
        f.extend_from_slice(&FRAME);
        let (recs, err) = read_records(&mut reader(f).unwrap());
        assert!(err.is_none());
        assert_eq!(recs, vec![(10_000_005_000, 6, 6, 1, 0, FRAME.to_vec())]);
    }

    #[test]
    fn pcap_versions() {
        let mut f = pcap_header(0xA1B2_C3D4, true, 2, 1, 1);
        pcap_record(&mut f, true, 1, 0, &FRAME, 6);
        assert_eq!(read_records(&mut reader(f).unwrap()).0.len(), 1);
        let e = reader(pcap_header(0xA1B2_C3D4, false, 1, 4, 1)).unwrap_err();
        assert_eq!(
            e.kind,
            CaptureErrorKind::UnsupportedPcapVersion { major: 1, minor: 4 }
        );
        assert_eq!(e.to_string(), "unsupported pcap version 1.4");
    }

    #[test]
    fn pcap_linktype_upper_bits_are_masked() {
        let mut f = pcap_header(0xA1B2_C3D4, false, 2, 4, 0x1400_0071);
        pcap_record(&mut f, false, 1, 0, &FRAME, 6);
        assert_eq!(read_records(&mut reader(f).unwrap()).0[0].3, 113);
    }

    #[test]
    fn pcap_odd_times_and_lengths_are_counted() {
        let mut f = pcap_header(0xA1B2_C3D4, false, 2, 4, 1);
        pcap_record(&mut f, false, 5, 1_500_000, &FRAME, 6); // 1.5 s of microseconds
        pcap_record(&mut f, false, 0xFFFF_FFF0, 0, &FRAME, 2); // 2106, caplen > wire
        let mut r = reader(f).unwrap();
        let (recs, err) = read_records(&mut r);
        assert!(err.is_none());
        assert_eq!(recs[0].0, 6_500_000_000);
        assert_eq!(recs[1].0, 0xFFFF_FFF0 * 1_000_000_000);
        assert_eq!(recs[1].1, 6);
        assert_eq!(r.warnings().subsec_overflow, 1);
        assert_eq!(r.warnings().caplen_over_wire_len, 1);
    }

    #[test]
    fn pcap_cut_in_a_record_returns_records_then_an_error() {
        let mut f = pcap_header(0xA1B2_C3D4, false, 2, 4, 1);
        pcap_record(&mut f, false, 1, 0, &FRAME, 6);
        pcap_record(&mut f, false, 2, 0, &FRAME, 6);
        let full = f.len();
        for cut in [full - 3, full - 6, full - 20] {
            let (recs, err) = read_records(&mut reader(f[..cut].to_vec()).unwrap());
            assert_eq!(recs.len(), 1);
            let e = err.unwrap();
            assert_eq!(e.kind, CaptureErrorKind::TruncatedRecord);
            assert_eq!(
                e.to_string(),
                format!("file ends inside packet record 2 (byte offset {cut})")
            );
        }
        // A cut at a record boundary is a clean end.
        let (recs, err) = read_records(&mut reader(f[..full - 22].to_vec()).unwrap());
        assert_eq!((recs.len(), err.is_none()), (1, true));
    }

    #[test]
    fn pcap_bogus_caplen_ends_the_file() {
        let mut f = pcap_header(0xA1B2_C3D4, false, 2, 4, 1);
        pcap_record(&mut f, false, 1, 0, &FRAME, 6);
        let at = f.len();
        pcap_record(&mut f, false, 2, 0, &FRAME, 6);
        f[at + 8..at + 12].copy_from_slice(&(MAX_CAPLEN + 1).to_le_bytes());
        let (recs, err) = read_records(&mut reader(f).unwrap());
        assert_eq!(recs.len(), 1);
        let e = err.unwrap();
        assert_eq!(
            e.kind,
            CaptureErrorKind::CaplenTooLarge {
                caplen: MAX_CAPLEN + 1
            }
        );
        assert_eq!((e.packet, e.offset), (2, u64::try_from(at).unwrap()));
    }

    #[test]
    fn not_a_capture_and_short_headers() {
        let e = reader(b"GIF89a..........................".to_vec()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a pcap or pcapng file (magic 0x47494638)"
        );
        let e = reader(Vec::new()).unwrap_err();
        assert_eq!(e.kind, CaptureErrorKind::TruncatedFileHeader);
        let e = reader(pcap_header(0xA1B2_C3D4, false, 2, 4, 1)[..16].to_vec()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "file ends inside the file header (byte offset 16)"
        );
    }

    // ---- pcapng ----

    fn block(be: bool, block_type: u32, body: &[u8]) -> Vec<u8> {
        let padded = body.len().next_multiple_of(4);
        let total = u32::try_from(12 + padded).unwrap();
        let mut v = Vec::new();
        put32(&mut v, block_type, be);
        put32(&mut v, total, be);
        v.extend_from_slice(body);
        v.resize(8 + padded, 0);
        put32(&mut v, total, be);
        v
    }

    fn shb(be: bool, major: u16) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, PCAPNG_BYTE_ORDER, be);
        put16(&mut body, major, be);
        put16(&mut body, 0, be);
        body.extend_from_slice(&[0xFF; 8]);
        block(be, PCAPNG_SHB, &body)
    }

    fn options(be: bool, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (code, value) in opts {
            put16(&mut v, *code, be);
            put16(&mut v, u16::try_from(value.len()).unwrap(), be);
            v.extend_from_slice(value);
            v.resize(v.len().next_multiple_of(4), 0);
        }
        v.extend_from_slice(&[0; 4]);
        v
    }

    fn idb(be: bool, linktype: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        put16(&mut body, linktype, be);
        put16(&mut body, 0, be);
        put32(&mut body, snaplen, be);
        body.extend_from_slice(&options(be, opts));
        block(be, PCAPNG_IDB, &body)
    }

    fn epb(be: bool, iface: u32, units: u64, data: &[u8], wire: u32) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, iface, be);
        put32(&mut body, u32::try_from(units >> 32).unwrap(), be);
        put32(&mut body, u32::try_from(units & 0xFFFF_FFFF).unwrap(), be);
        put32(&mut body, u32::try_from(data.len()).unwrap(), be);
        put32(&mut body, wire, be);
        body.extend_from_slice(data);
        body.resize(body.len().next_multiple_of(4), 0);
        body.extend_from_slice(&options(be, &[(1, b"comment")]));
        block(be, PCAPNG_EPB, &body)
    }

    #[test]
    fn pcapng_both_byte_orders_with_resolutions_and_offsets() {
        for be in [false, true] {
            let mut f = shb(be, 1);
            f.extend(idb(be, 1, 0, &[])); // 0: microseconds
            f.extend(idb(be, 113, 96, &[(9, &[9]), (2, b"eth0")])); // 1: nanoseconds
            let offset = if be {
                100i64.to_be_bytes()
            } else {
                100i64.to_le_bytes()
            };
            f.extend(idb(be, 101, 0, &[(9, &[0x80 | 10]), (14, &offset)])); // 2: 2^-10 s, +100 s
            f.extend(block(be, 0x0000_0BAD, &[1, 2, 3])); // unknown: skipped
            f.extend(epb(be, 0, 1_500_000_250_001, &FRAME, 60));
            f.extend(epb(be, 1, 1_500_000_000_123_456_789, &FRAME[..5], 5));
            f.extend(epb(be, 2, 3 * 1024 + 512, &FRAME[..1], 1));
            f.extend(epb(be, 7, 0, &FRAME, 6)); // unknown interface: skipped
            let mut r = reader(f).unwrap();
            assert_eq!(r.format(), Format::Pcapng);
            let (recs, err) = read_records(&mut r);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(
                recs,
                vec![
                    (1_500_000_250_001_000, 6, 60, 1, 0, FRAME.to_vec()),
                    (1_500_000_000_123_456_789, 5, 5, 113, 1, FRAME[..5].to_vec()),
                    (103_500_000_000, 1, 1, 101, 2, FRAME[..1].to_vec()),
                ]
            );
            assert_eq!(r.warnings().unknown_interface, 1);
            assert_eq!(r.warnings().total(), 1);
        }
    }

    #[test]
    fn pcapng_simple_and_obsolete_packet_blocks() {
        let be = false;
        let mut f = shb(be, 1);
        f.extend(idb(be, 1, 4, &[]));
        let mut spb = Vec::new();
        put32(&mut spb, 6, be);
        spb.extend_from_slice(&FRAME);
        f.extend(block(be, PCAPNG_SPB, &spb));
        let mut opb = Vec::new();
        put16(&mut opb, 0, be);
        put16(&mut opb, 0, be);
        put32(&mut opb, 0, be);
        put32(&mut opb, 2_000_000, be);
        put32(&mut opb, 6, be);
        put32(&mut opb, 6, be);
        opb.extend_from_slice(&FRAME);
        f.extend(block(be, PCAPNG_OPB, &opb));
        f.extend(block(be, PCAPNG_SPB, &spb));
        let mut r = reader(f).unwrap();
        let (recs, err) = read_records(&mut r);
        assert!(err.is_none());
        // SPB: cut to the snaplen (4), no time yet; OPB: interface 0, µs;
        // SPB again: the time of the packet before.
        assert_eq!(recs[0], (0, 4, 6, 1, 0, FRAME[..4].to_vec()));
        assert_eq!(recs[1], (2_000_000_000, 6, 6, 1, 0, FRAME.to_vec()));
        assert_eq!(recs[2], (2_000_000_000, 4, 6, 1, 0, FRAME[..4].to_vec()));
        assert_eq!(r.warnings().no_timestamp, 2);
    }

    #[test]
    fn pcapng_new_section_resets_interfaces() {
        let mut f = shb(false, 1);
        f.extend(idb(false, 1, 0, &[]));
        f.extend(epb(false, 0, 1, &FRAME, 6));
        f.extend(shb(true, 1)); // big-endian section without interfaces
        f.extend(epb(true, 0, 2, &FRAME, 6));
        f.extend(idb(true, 228, 0, &[]));
        f.extend(epb(true, 0, 3, &FRAME, 6));
        let mut r = reader(f).unwrap();
        let (recs, err) = read_records(&mut r);
        assert!(err.is_none());
        assert_eq!(
            recs.iter().map(|r| (r.0, r.3)).collect::<Vec<_>>(),
            vec![(1000, 1), (3000, 228)]
        );
        assert_eq!(r.warnings().unknown_interface, 1);
    }

    #[test]
    fn pcapng_bad_options_are_ignored_and_counted() {
        let mut body = Vec::new();
        put16(&mut body, 1, false);
        put16(&mut body, 0, false);
        put32(&mut body, 0, false);
        body.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]); // if_tsresol = 9 ...
        body.extend_from_slice(&[2, 0, 200, 0, b'x', 0, 0, 0]); // ... then an option past the block
        let mut f = shb(false, 1);
        f.extend(block(false, PCAPNG_IDB, &body));
        f.extend(epb(false, 0, 7_000_000, &FRAME, 6));
        let mut r = reader(f).unwrap();
        let (recs, _) = read_records(&mut r);
        assert_eq!(
            recs[0].0, 7_000_000_000,
            "default resolution: options ignored"
        );
        assert_eq!(r.warnings().bad_options, 1);
    }

    #[test]
    fn pcapng_errors() {
        let e = reader(shb(false, 2)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported pcapng version 2.0 (byte offset 12)"
        );
        let mut bad_bom = shb(false, 1);
        bad_bom[8] = 0;
        let e = reader(bad_bom).unwrap_err();
        assert!(matches!(e.kind, CaptureErrorKind::BadByteOrder { .. }));
        for length in [8u32, 14, MAX_BLOCK_LEN + 4] {
            let mut f = shb(false, 1);
            f.extend(idb(false, 1, 0, &[]));
            f.extend(epb(false, 0, 1, &FRAME, 6));
            let at = f.len();
            f.extend(epb(false, 0, 1, &FRAME, 6));
            f[at + 4..at + 8].copy_from_slice(&length.to_le_bytes());
            let (recs, err) = read_records(&mut reader(f).unwrap());
            assert_eq!(recs.len(), 1);
            let e = err.unwrap();
            assert_eq!(
                e.kind,
                CaptureErrorKind::BadBlockLength {
                    block_type: 6,
                    length
                }
            );
            assert_eq!(e.offset, u64::try_from(at).unwrap());
        }
        // Cut inside a packet block, then inside an IDB.
        let mut f = shb(false, 1);
        f.extend(idb(false, 1, 0, &[]));
        f.extend(epb(false, 0, 1, &FRAME, 6));
        let e = read_records(&mut reader(f[..f.len() - 5].to_vec()).unwrap())
            .1
            .unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "file ends inside packet record 1 (byte offset {})",
                f.len() - 5
            )
        );
        let e = read_records(&mut reader(f[..40].to_vec()).unwrap())
            .1
            .unwrap();
        assert_eq!(e.kind, CaptureErrorKind::TruncatedBlock { block_type: 1 });
    }

    #[test]
    fn block_larger_than_the_buffer() {
        let big: Vec<u8> = (0..BUFFER_LEN * 2 + 3)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let mut f = shb(false, 1);
        f.extend(idb(false, 1, 0, &[]));
        f.extend(epb(false, 0, 1, &FRAME, 6));
        f.extend(epb(false, 0, 2, &big, 1));
        f.extend(epb(false, 0, 3, &FRAME, 6));
        let (recs, err) = read_records(&mut reader(f).unwrap());
        assert!(err.is_none());
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].5, big);
    }

    /// A file read through a chunk feed gives the records, counters and
    /// error of a plain stream: records cut by chunk boundaries, records
    /// longer than the headroom and than a chunk, a file cut inside a record,
    /// with and without another thread copying ahead.
    #[test]
    fn chunk_feed_gives_the_records_of_a_stream() {
        let sizes = [
            60,
            1514,
            crate::chunks::HEAD + 5,
            crate::chunks::CHUNK + 77,
            3 * crate::chunks::CHUNK,
            9000,
        ];
        let mut f = shb(false, 1);
        f.extend(idb(false, 1, 0, &[]));
        for i in 0..400u64 {
            let n = sizes[usize::try_from(i).unwrap() % sizes.len()] + usize::try_from(i).unwrap();
            let data: Vec<u8> = (0..n)
                .map(|j| u8::try_from((j + n) % 251).unwrap())
                .collect();
            f.extend(epb(false, 0, i, &data, u32::try_from(n).unwrap()));
        }
        for cut in [f.len(), f.len() - 1000] {
            let bytes = f.get(..cut).unwrap().to_vec();
            let mut stream = reader(bytes.clone()).unwrap();
            let want = read_records(&mut stream);
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &bytes).unwrap();
            for helper in [false, true] {
                let mut r = CaptureReader::open_shared(file.path()).unwrap();
                let feed = r.feed().expect("a regular file is read through a feed");
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let copier = helper.then(|| {
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            feed.copy_ahead();
                        }
                    })
                });
                let got = read_records(&mut r);
                stop.store(true, Ordering::Relaxed);
                if let Some(c) = copier {
                    c.join().unwrap();
                }
                assert_eq!(got.0.len(), want.0.len(), "cut at {cut}, helper {helper}");
                assert!(
                    got.0 == want.0,
                    "records differ (cut at {cut}, helper {helper})"
                );
                assert_eq!(
                    got.1.map(|e| e.to_string()),
                    want.1.as_ref().map(|e| e.to_string())
                );
                if cut == f.len() {
                    assert_eq!(r.bytes_consumed(), u64::try_from(cut).unwrap());
                }
            }
        }
    }

    /// Small chunks cut records at every place, the headroom and the path
    /// for records longer than it included: same records as a stream.
    #[test]
    fn small_chunks_give_the_records_of_a_stream() {
        let mut f = shb(false, 1);
        f.extend(idb(false, 1, 0, &[]));
        for i in 0..120u64 {
            let n = if i == 60 {
                crate::chunks::HEAD + 3000
            } else {
                60 + usize::try_from(i * 17 % 1500).unwrap()
            };
            let data: Vec<u8> = (0..n)
                .map(|j| u8::try_from((j + n) % 251).unwrap())
                .collect();
            f.extend(epb(false, 0, i, &data, u32::try_from(n).unwrap()));
        }
        let want = read_records(&mut reader(f.clone()).unwrap());
        let cut = &f[..f.len() - 10];
        let want_cut = read_records(&mut reader(cut.to_vec()).unwrap());
        for (bytes, want) in [(&f[..], &want), (cut, &want_cut)] {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), bytes).unwrap();
            for chunk in [1, 7, 100, 1000, 5000] {
                let mut r = CaptureReader::open_shared_chunked(file.path(), chunk).unwrap();
                let got = read_records(&mut r);
                assert!(got.0 == want.0, "records differ with {chunk}-byte chunks");
                assert_eq!(
                    got.1.map(|e| e.to_string()),
                    want.1.as_ref().map(|e| e.to_string()),
                    "{chunk}-byte chunks"
                );
            }
        }
    }

    /// A large stream's reads land at the page offset they have in the
    /// stream (else the kernel's copy runs 3-4x slower), and the records
    /// are those of the stream.
    #[test]
    fn large_stream_reads_keep_the_page_offset() {
        let mut f = shb(false, 1);
        f.extend(idb(false, 1, 0, &[]));
        for i in 0..3000u64 {
            let n = 100 + usize::try_from(i % 1400).unwrap();
            let data: Vec<u8> = (0..n).map(|j| u8::try_from(j % 251).unwrap()).collect();
            f.extend(epb(false, 0, i, &data, u32::try_from(n).unwrap()));
        }
        assert!(f.len() > 4 * BUFFER_LEN);
        let mut r = reader(f.clone()).unwrap();
        let mut checked = 0;
        let mut records = 0;
        while let Some(p) = r.next_packet().unwrap() {
            assert_eq!(p.interface, 0);
            records += 1;
            if r.end_offset() > u64::try_from(2 * BUFFER_LEN).unwrap() {
                let at = (r.buf.as_ptr() as usize + r.end) % PAGE;
                assert_eq!(u64::try_from(at).unwrap(), r.end_offset() % PAGE_U64);
                checked += 1;
            }
        }
        assert_eq!(records, 3000);
        assert!(checked > 1000, "{checked}");
    }

    /// Returns at most 3 bytes per read, to exercise refilling.
    struct Dribble(Cursor<Vec<u8>>);

    impl Read for Dribble {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn tiny_reads_give_the_same_records() {
        let mut f = shb(false, 1);
        f.extend(idb(false, 1, 0, &[]));
        for i in 0..50 {
            f.extend(epb(
                false,
                0,
                i,
                &FRAME[..usize::try_from(i % 7).unwrap().min(6)],
                6,
            ));
        }
        let want = read_records(&mut reader(f.clone()).unwrap()).0;
        let mut r =
            CaptureReader::from_reader(Box::new(Dribble(Cursor::new(f.clone()))), "dribble")
                .unwrap();
        assert_eq!(read_records(&mut r).0, want);
        assert_eq!(r.bytes_consumed(), u64::try_from(f.len()).unwrap());
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut enc, bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_is_detected_by_magic() {
        let mut f = pcap_header(0xA1B2_C3D4, false, 2, 4, 1);
        for i in 0..100 {
            pcap_record(&mut f, false, i, 0, &FRAME, 6);
        }
        // Two gzip members, as `cat a.gz b.gz` makes.
        let split = 24 + 22 * 40;
        let mut gz = gzip(&f[..split]);
        gz.extend(gzip(&f[split..]));
        let gz_len = gz.len();
        let mut r = reader(gz).unwrap();
        let (recs, err) = read_records(&mut r);
        assert!(err.is_none());
        assert_eq!(recs.len(), 100);
        assert_eq!(r.bytes_consumed(), u64::try_from(gz_len).unwrap());
    }

    #[test]
    fn reader_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<CaptureReader>();
        assert_send::<CaptureError>();
    }

    #[test]
    fn missing_file_is_a_read_error_with_its_cause() {
        let e = CaptureReader::open(Path::new("/nonexistent/zonewatch.pcap")).unwrap_err();
        assert_eq!(e.kind, CaptureErrorKind::Read);
        let cause = std::error::Error::source(&e).map(|c| c.to_string());
        assert!(cause.is_some_and(|c| c.contains("No such file")));
    }

    // ---- corpus ----

    fn corpus() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        if dir.join("expected/summary.tsv").is_file() {
            Some(dir)
        } else {
            eprintln!("skipped: capture corpus not found at {}", dir.display());
            None
        }
    }

    /// "1300475167.096535000" as nanoseconds.
    fn parse_epoch(s: &str) -> i64 {
        let (secs, frac) = s.split_once('.').unwrap();
        secs.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap()
    }

    struct Summary {
        file: String,
        packets: u64,
        cap_bytes: u64,
        first: Option<i64>,
        last: Option<i64>,
    }

    fn summary(dir: &Path) -> Vec<Summary> {
        let text = std::fs::read_to_string(dir.join("expected/summary.tsv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (file, packets, cap, first, last) = (
            col("file"),
            col("packets"),
            col("cap_bytes"),
            col("first_ts"),
            col("last_ts"),
        );
        lines
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let ts = |s: &str| (!s.is_empty()).then(|| parse_epoch(s));
                Summary {
                    file: f[file].to_owned(),
                    packets: f[packets].parse().unwrap(),
                    cap_bytes: f[cap].parse().unwrap(),
                    first: ts(f[first]),
                    last: ts(f[last]),
                }
            })
            .collect()
    }

    #[test]
    fn corpus_captures_match_the_summary() {
        let Some(dir) = corpus() else { return };
        let mut checked = 0;
        for s in summary(&dir) {
            if !(s.file.starts_with("pcap/") || s.file.starts_with("netflow/")) {
                continue;
            }
            let mut r = CaptureReader::open(&dir.join(&s.file))
                .unwrap_or_else(|e| panic!("{}: {e}", s.file));
            let (mut n, mut bytes, mut first, mut last) = (0u64, 0u64, None, None);
            let mut untimed = 0;
            loop {
                match r.next_packet() {
                    Ok(Some(p)) => {
                        n += 1;
                        bytes += u64::from(p.caplen);
                        let ts = p.ts.0;
                        // tshark shows no time for packets without one (pcapng SPB).
                        if r.warnings().no_timestamp == untimed {
                            first.get_or_insert(ts);
                            last = Some(ts);
                        }
                        untimed = r.warnings().no_timestamp;
                    }
                    Ok(None) => break,
                    Err(e) => panic!("{}: {e}", s.file),
                }
            }
            assert_eq!(n, s.packets, "{}: packets", s.file);
            assert_eq!(bytes, s.cap_bytes, "{}: cap_bytes", s.file);
            assert_eq!(first, s.first, "{}: first_ts", s.file);
            assert_eq!(last, s.last, "{}: last_ts", s.file);
            checked += 1;
        }
        assert!(checked > 100, "only {checked} corpus files checked");
    }

    #[test]
    fn corpus_malformed_files_never_panic() {
        let Some(dir) = corpus() else { return };
        let mut entries: Vec<_> = std::fs::read_dir(dir.join("malformed"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        assert!(entries.len() > 30);
        for path in entries {
            let mut r = match CaptureReader::open(&path) {
                Ok(r) => r,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    continue;
                }
            };
            let (recs, _err) = read_records(&mut r);
            for rec in &recs {
                let _ = crate::packet::decode(rec.3, &rec.5);
            }
        }
    }

    #[test]
    fn corpus_cut_file_reports_the_record_and_offset() {
        let Some(dir) = corpus() else { return };
        let mut r = CaptureReader::open(&dir.join("malformed/cut-zeek-wikipedia.pcap")).unwrap();
        let (recs, err) = read_records(&mut r);
        assert_eq!(recs.len(), 58);
        assert_eq!(
            err.unwrap().to_string(),
            "file ends inside packet record 59 (byte offset 10000)"
        );
        let mut r =
            CaptureReader::open(&dir.join("malformed/cut-zeek-pcapng-multi-interface.pcapng"))
                .unwrap();
        let (recs, err) = read_records(&mut r);
        assert_eq!(
            (recs.len(), err.map(|e| e.kind)),
            (5, Some(CaptureErrorKind::TruncatedRecord))
        );
    }

    #[test]
    fn corpus_gzip_file() {
        let Some(dir) = corpus() else { return };
        let path = dir.join("pcap/zeek-ldap-modify-request.pcapng");
        let raw = std::fs::read(&path).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let gz_path = tmp.path().join("capture.bin");
        std::fs::write(&gz_path, gzip(&raw)).unwrap();
        let mut plain = CaptureReader::open(&path).unwrap();
        let mut packed = CaptureReader::open(&gz_path).unwrap();
        let (a, b) = (read_records(&mut plain), read_records(&mut packed));
        assert!(a.1.is_none() && b.1.is_none());
        assert_eq!(a.0.len(), 17);
        assert!(a.0.iter().all(|r| r.4 == 48), "all on interface 48");
        assert_eq!(a.0, b.0);
        assert_eq!(
            packed.bytes_consumed(),
            std::fs::metadata(&gz_path).unwrap().len()
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn sample() -> Vec<u8> {
            let mut f = shb(false, 1);
            f.extend(idb(false, 1, 0, &[(9, &[6])]));
            f.extend(epb(false, 0, 1, &FRAME, 6));
            f.extend(shb(true, 1));
            f.extend(idb(true, 101, 0, &[]));
            f.extend(epb(true, 0, 2, &FRAME, 6));
            f
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn never_panics_on_arbitrary_bytes(
                data in proptest::collection::vec(any::<u8>(), 0..300),
                prefix in 0usize..4,
            ) {
                // Start with a valid magic most of the time to get past the header.
                let magics: [&[u8]; 4] = [
                    &[],
                    &[0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0],
                    &[0x0A, 0x0D, 0x0D, 0x0A],
                    &[0xA1, 0xB2, 0xCD, 0x34, 0, 2, 0, 4],
                ];
                let bytes = [magics[prefix], &data].concat();
                if let Ok(mut r) = reader(bytes) {
                    let _ = read_records(&mut r);
                }
            }

            #[test]
            fn never_panics_on_mutated_pcapng(
                flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..6),
                cut in 0usize..200,
            ) {
                let mut f = sample();
                for (at, v) in flips {
                    if let Some(b) = f.get_mut(at) {
                        *b = v;
                    }
                }
                f.truncate(cut);
                if let Ok(mut r) = reader(f) {
                    let _ = read_records(&mut r);
                }
            }
        }
    }

    /// Run with
    /// `cargo test --release -p zonewatch-collector read_speed -- --ignored --nocapture`
    /// (`ZW_BENCH_RECORDS` sets the number of records, 2 million by default).
    #[test]
    #[ignore = "benchmark: run with --release"]
    fn read_speed() {
        let n: u32 = std::env::var("ZW_BENCH_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000_000);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bench.pcap");
        {
            let mut out = io::BufWriter::new(File::create(&path).unwrap());
            let mut frame = vec![0u8; 1514];
            frame[12..14].copy_from_slice(&[0x08, 0x00]);
            frame[14..34].copy_from_slice(&[
                0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2,
            ]);
            frame[46] = 0x50;
            io::Write::write_all(&mut out, &pcap_header(0xA1B2_C3D4, false, 2, 4, 1)).unwrap();
            for i in 0..n {
                // A mix of sizes averaging ~350 bytes, as on a real link.
                let len: usize =
                    [64, 66, 120, 590, 1514, 66, 80, 300][usize::try_from(i % 8).unwrap()];
                let ip_len = u16::try_from(len - 14).unwrap();
                frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
                frame[34..36].copy_from_slice(&u16::try_from(i % 60000).unwrap().to_be_bytes());
                let mut rec = Vec::with_capacity(16);
                pcap_record(&mut rec, false, i, 0, &[], 0);
                rec[8..12].copy_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
                rec[12..16].copy_from_slice(&u32::try_from(len).unwrap().to_le_bytes());
                io::Write::write_all(&mut out, &rec).unwrap();
                io::Write::write_all(&mut out, &frame[..len]).unwrap();
            }
        }
        let size = std::fs::metadata(&path).unwrap().len();
        // The floor: plain reads of the same file into one buffer, as `cat` does.
        for _ in 0..2 {
            let start = std::time::Instant::now();
            let mut file = File::open(&path).unwrap();
            let mut chunk = vec![0u8; BUFFER_LEN];
            while file.read(&mut chunk).unwrap() > 0 {}
            println!("plain read: {:.3} s", start.elapsed().as_secs_f64());
        }
        for decode in [false, true, false, true] {
            let start = std::time::Instant::now();
            let mut r = CaptureReader::open(&path).unwrap();
            let (mut count, mut sum) = (0u64, 0u64);
            while let Some(p) = r.next_packet().unwrap() {
                count += 1;
                if decode {
                    if let crate::packet::Decoded::Ip(info) =
                        crate::packet::decode(p.linktype, p.data)
                    {
                        sum += u64::from(info.sport);
                    }
                } else {
                    sum += u64::from(p.caplen);
                }
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "read{}: {count} records, {size} bytes in {secs:.3} s = {:.1} M records/s ({:.0} MB/s) [{sum}]",
                if decode { "+decode" } else { "" },
                count as f64 / secs / 1e6,
                size as f64 / secs / 1e6
            );
        }
    }
}
