//! Reading a capture file in fixed chunks that any thread can copy.
//!
//! Copying a file out of the page cache costs about as much as decoding its
//! packets. With [`ChunkFeed`], the reading thread takes chunk after chunk in
//! file order, and a thread that would otherwise wait (the flow table, when
//! it is ahead) copies the next chunks for it with positioned reads, so the
//! copy is shared by whichever core has time. Memory stays bounded: at most
//! [`SLOTS`] chunk buffers exist.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Bytes of the file per chunk (one positioned read: 128 KiB reads keep the
/// kernel's copy in cache, see [`crate::capture`]).
pub const CHUNK: usize = 128 * 1024;
/// Room before a chunk's bytes for the unread end of the previous chunk (a
/// record cut by the chunk boundary); longer records take a slower path.
pub const HEAD: usize = 16 * 1024;
/// Chunk data starts at a page boundary of its buffer, as the file's chunks
/// do in the page cache: when the kernel copies to an address a few bytes
/// past the source's page offset, loads wait on stores that seem to alias
/// them (4 KiB aliasing), and reads run 3-4x slower (measured: 0.69 s instead
/// of 0.18 s for the 1.2 GB benchmark capture).
pub(crate) const PAGE: usize = 4096;
/// Chunk buffers in all: the one being decoded, the previous one not yet
/// handed back, and those copied ahead.
const SLOTS: usize = 6;

/// One chunk: `buf[start..start + len]` holds the file's bytes at `offset`.
pub struct Chunk {
    /// The buffer, `HEAD + chunk size + PAGE` bytes.
    pub buf: Vec<u8>,
    /// Where the file's bytes start in `buf` (page-aligned, at least [`HEAD`]).
    pub start: usize,
    /// Bytes of the file in it (less than the chunk size at the end of the file).
    pub len: usize,
    /// File offset of `buf[start]`.
    pub offset: u64,
}

/// A capture file read chunk by chunk, the copies shared between threads.
pub struct ChunkFeed {
    file: File,
    /// Bytes per chunk ([`CHUNK`] but in tests).
    chunk: usize,
    /// File size when opened: chunks are read up to there.
    len: u64,
    state: Mutex<State>,
    copied: Condvar,
}

struct State {
    /// Chunk number of `ahead[0]`: the next one the reader takes.
    taken: u64,
    /// The chunks from `taken` on that a helper has claimed or copied (and
    /// those between, still unclaimed).
    ahead: VecDeque<Slot>,
    /// Buffers handed back.
    free: Vec<Vec<u8>>,
    /// Buffers allocated so far.
    allocated: usize,
}

enum Slot {
    Unclaimed,
    Copying,
    Ready(io::Result<Chunk>),
}

impl ChunkFeed {
    /// A feed over `file`, whose size is `len`.
    pub fn new(file: File, len: u64) -> ChunkFeed {
        ChunkFeed::with_chunk_size(file, len, CHUNK)
    }

    /// A feed with chunks of `chunk` bytes (at least 1): tests and fuzzing
    /// use small ones to cut records at every place.
    pub fn with_chunk_size(file: File, len: u64, chunk: usize) -> ChunkFeed {
        ChunkFeed {
            file,
            chunk: chunk.max(1),
            len,
            state: Mutex::new(State {
                taken: 0,
                ahead: VecDeque::new(),
                free: Vec::new(),
                allocated: 0,
            }),
            copied: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters (each
        // update is one statement): go on with them.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Chunks in the file.
    fn chunks(&self) -> u64 {
        self.len
            .div_ceil(u64::try_from(self.chunk).unwrap_or(u64::MAX))
    }

    /// A buffer for a chunk; `bounded`: none beyond [`SLOTS`] (the reader's
    /// own copy may go beyond, its buffers come back).
    fn buffer(&self, st: &mut State, bounded: bool) -> Option<Vec<u8>> {
        match st.free.pop() {
            Some(b) => Some(b),
            None if st.allocated < SLOTS || !bounded => {
                st.allocated += 1;
                Some(vec![0; self.buffer_len()])
            }
            None => None,
        }
    }

    /// Bytes of a chunk buffer.
    pub fn buffer_len(&self) -> usize {
        HEAD + self.chunk + PAGE
    }

    /// Copies chunk `index` into `buf`.
    fn copy(&self, index: u64, mut buf: Vec<u8>) -> io::Result<Chunk> {
        let offset = index * u64::try_from(self.chunk).unwrap_or(u64::MAX);
        let want = usize::try_from(self.len.saturating_sub(offset))
            .unwrap_or(self.chunk)
            .min(self.chunk);
        let mut len = 0;
        buf.resize(self.buffer_len(), 0);
        let misaligned = (buf.as_ptr() as usize + HEAD) % PAGE;
        let start = HEAD + (PAGE - misaligned) % PAGE;
        while len < want {
            let Some(dst) = buf.get_mut(start + len..start + want) else {
                break;
            };
            match read_at(&self.file, dst, offset + u64::try_from(len).unwrap_or(0)) {
                // The file shrank since it was opened: the chunk ends here.
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Chunk {
            buf,
            start,
            len,
            offset,
        })
    }

    /// Copies a chunk ahead of the reader, if one is due and a buffer is
    /// free; `false` when there is nothing to do. For a thread with time to
    /// spare. It never takes the chunk the reader needs next (the reader
    /// would wait for it instead of copying it), only those after.
    pub fn copy_ahead(&self) -> bool {
        let (index, buf) = {
            let mut st = self.lock();
            let chunks = self.chunks();
            let Some(pos) = (1..SLOTS - 2).find(|&p| {
                st.taken + (p as u64) < chunks
                    && st.ahead.get(p).is_none_or(|s| matches!(s, Slot::Unclaimed))
            }) else {
                return false;
            };
            let Some(buf) = self.buffer(&mut st, true) else {
                return false;
            };
            while st.ahead.len() <= pos {
                st.ahead.push_back(Slot::Unclaimed);
            }
            if let Some(slot) = st.ahead.get_mut(pos) {
                *slot = Slot::Copying;
            }
            (st.taken + pos as u64, buf)
        };
        let chunk = self.copy(index, buf);
        let mut st = self.lock();
        // The reader waits at a chunk being copied, so it is still ahead.
        let pos = usize::try_from(index - st.taken).unwrap_or(usize::MAX);
        if let Some(slot) = st.ahead.get_mut(pos) {
            *slot = Slot::Ready(chunk);
        }
        drop(st);
        self.copied.notify_all();
        true
    }

    /// The next chunk in file order (copied here unless a helper has started
    /// it, then waited for); `None` after the last.
    pub fn take(&self) -> Option<io::Result<Chunk>> {
        let mut st = self.lock();
        loop {
            if st.taken >= self.chunks() {
                return None;
            }
            match st.ahead.front() {
                Some(Slot::Copying) => {
                    st = self
                        .copied
                        .wait(st)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                Some(Slot::Ready(_)) => {
                    st.taken += 1;
                    if let Some(Slot::Ready(chunk)) = st.ahead.pop_front() {
                        return Some(chunk);
                    }
                }
                Some(Slot::Unclaimed) | None => {
                    st.ahead.pop_front();
                    let index = st.taken;
                    st.taken += 1;
                    let buf = self.buffer(&mut st, false).unwrap_or_default();
                    drop(st);
                    return Some(self.copy(index, buf));
                }
            }
        }
    }

    /// Returns a chunk buffer for reuse (others are dropped).
    pub fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() == self.buffer_len() {
            let mut st = self.lock();
            if st.free.len() < SLOTS {
                st.free.push(buf);
            }
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn feed(bytes: &[u8]) -> ChunkFeed {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        ChunkFeed::new(f, u64::try_from(bytes.len()).unwrap())
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| u8::try_from(i * 7 % 251).unwrap()).collect()
    }

    /// Chunks in order, whoever copied them, give back the file.
    fn drain(f: &ChunkFeed) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(c) = f.take() {
            let c = c.unwrap();
            if c.len == 0 {
                // The file shrank: the reader stops at an empty chunk.
                break;
            }
            assert_eq!(c.offset, u64::try_from(all.len()).unwrap());
            assert_eq!(c.buf[c.start..].as_ptr() as usize % PAGE, 0, "page-aligned");
            assert!(c.start >= HEAD);
            all.extend_from_slice(&c.buf[c.start..c.start + c.len]);
            f.give_back(c.buf);
        }
        all
    }

    #[test]
    fn chunks_in_order_reassemble_the_file() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17] {
            let bytes = data(n);
            assert_eq!(drain(&feed(&bytes)), bytes, "{n} bytes");
        }
    }

    #[test]
    fn chunks_copied_ahead_come_in_order_and_memory_stays_bounded() {
        let bytes = data(20 * CHUNK + 5);
        let f = feed(&bytes);
        let mut copied = 0;
        while f.copy_ahead() {
            copied += 1;
        }
        assert_eq!(copied, SLOTS - 3, "copies ahead stop three chunks ahead");
        assert_eq!(drain(&f), bytes);

        // A reader holding four chunks leaves two buffers for copies ahead.
        let f = feed(&bytes);
        let held: Vec<Chunk> = (0..4).map(|_| f.take().unwrap().unwrap()).collect();
        let mut copied = 0;
        while f.copy_ahead() {
            copied += 1;
        }
        assert_eq!(copied, 2, "no buffer beyond {SLOTS}");
        assert_eq!(f.lock().allocated, SLOTS);
        let mut all: Vec<u8> = Vec::new();
        for c in held {
            all.extend_from_slice(&c.buf[c.start..c.start + c.len]);
            f.give_back(c.buf);
        }
        while let Some(c) = f.take() {
            let c = c.unwrap();
            all.extend_from_slice(&c.buf[c.start..c.start + c.len]);
            f.give_back(c.buf);
        }
        assert_eq!(all, bytes);
        assert_eq!(f.lock().allocated, SLOTS, "buffers are reused");
    }

    #[test]
    fn a_second_thread_copying_ahead_changes_nothing() {
        let bytes = data(64 * CHUNK + 99);
        let f = Arc::new(feed(&bytes));
        let (ready, started) = std::sync::mpsc::channel();
        let helper = {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                let mut n = 0;
                // Copies ahead as far as allowed before the reader starts ...
                while f.copy_ahead() {
                    n += 1;
                }
                ready.send(()).unwrap();
                // ... then alongside it.
                for _ in 0..100_000 {
                    if f.copy_ahead() {
                        n += 1;
                    }
                }
                n
            })
        };
        started.recv().unwrap();
        assert_eq!(drain(&f), bytes);
        let helped = helper.join().unwrap();
        // Never chunk 0 (the reader's next): at most the 64 others.
        assert!((SLOTS - 3..=64).contains(&helped), "{helped}");
    }

    #[test]
    fn a_file_shrunk_after_opening_ends_early() {
        let bytes = data(3 * CHUNK);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let f = ChunkFeed::new(file.try_clone().unwrap(), 3 * CHUNK as u64);
        file.set_len(CHUNK as u64 + 10).unwrap();
        assert_eq!(drain(&f), bytes[..CHUNK + 10]);
    }
}
