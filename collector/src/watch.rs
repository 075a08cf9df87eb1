//! Watched folders (rotated captures and flow logs dropped into a spool
//! folder) and watched files (the zones file, for hot reload).
//!
//! [`FolderWatcher`] reports each complete file of one folder once, as a
//! [`WatchEvent::Ready`] carrying its size and SHA-256, on a channel:
//!
//! - At start, the files already there, oldest modification time first
//!   (then by name); then new files as they land.
//! - Only the folder itself is watched, not its subfolders.
//! - Names that [`is_candidate`] rejects (starting with `.`, ending in
//!   `.tmp`, `.part` or `.partial`) are ignored until renamed to a candidate
//!   name.
//! - A file is complete once its size and modification time have stayed the
//!   same for [`WatchConfig::settle`]; a file still growing is not reported.
//!   This holds for files renamed into place and files present at start too,
//!   so each is reported `settle` after it was last seen changing.
//! - A (path, size, modification time) is reported once per process: a file
//!   rewritten later is reported again. What is known about a path is
//!   forgotten when the file disappears, which keeps the memory bounded on a
//!   spool folder whose files are removed after ingestion. Recognising the
//!   same content under another name or across restarts is up to the caller,
//!   by the SHA-256.
//!
//! [`FileWatcher`] calls back once per burst of changes to one file: written
//! in place, replaced by a rename (as editors save), deleted or recreated.
//!
//! Both start two threads: notify's own (inotify on Linux) and one of ours
//! that does the timing, the hashing (streamed, 64 KiB at a time) and, for
//! [`FileWatcher`], runs the callback. Dropping a watcher stops watching and
//! joins our thread; notify's thread ends right after.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{EventKind, ModifyKind};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use crate::ingest::is_candidate;

/// Default [`WatchConfig::settle`].
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(1);

/// Filesystem events queued between notify's thread and ours; beyond this
/// they are dropped and the folder is listed again instead.
const EVENT_QUEUE: usize = 4096;
/// Bytes read at a time when hashing.
const HASH_CHUNK: usize = 64 * 1024;
/// The longest our threads sleep without looking at their stop flag.
const IDLE_WAKEUP: Duration = Duration::from_millis(500);

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// The folder.
    pub path: PathBuf,
    /// How long a file's size and modification time must stay unchanged
    /// before it counts as complete.
    pub settle: Duration,
}

impl WatchConfig {
    /// Watches `path` with the default settle time (1 s).
    pub fn new(path: impl Into<PathBuf>) -> WatchConfig {
        WatchConfig {
            path: path.into(),
            settle: DEFAULT_SETTLE,
        }
    }
}

/// A complete file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyFile {
    /// The folder as configured, joined with the file name.
    pub path: PathBuf,
    /// Size in bytes (the bytes hashed).
    pub size: u64,
    /// Modification time.
    pub modified: SystemTime,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

/// What a [`FolderWatcher`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A file is complete.
    Ready(ReadyFile),
    /// A file (or the folder) could not be read or watched; watching goes on.
    Error {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The folder does not exist.
    #[error("folder {} does not exist: create it first", path.display())]
    MissingFolder {
        /// The folder.
        path: PathBuf,
    },
    /// The path is not a folder.
    #[error("{} is not a folder", path.display())]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// The path names no file (it ends in `..` or `/`).
    #[error("{} does not name a file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The folder could not be read.
    #[error("cannot read folder {}", path.display())]
    Read {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The operating system refused the watch (on Linux, often the inotify
    /// limits: `fs.inotify.max_user_watches`, `max_user_instances`).
    #[error("cannot watch {}", path.display())]
    Notify {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: notify::Error,
    },
    /// The watch thread could not be started.
    #[error("cannot start the thread watching {}", path.display())]
    Thread {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A message to one of our watch threads.
enum Msg {
    Fs(notify::Result<Event>),
    Stop,
}

/// The plumbing both watchers share: notify's watcher feeding a bounded
/// queue, our thread, and how to stop them.
struct Running {
    watcher: Option<RecommendedWatcher>,
    wake: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Watches `dir` (not recursively); events go to the returned receiver.
    /// `overflow` is set when events were dropped because the queue was full.
    fn watch(
        dir: &Path,
        overflow: &Arc<AtomicBool>,
    ) -> Result<(RecommendedWatcher, SyncSender<Msg>, Receiver<Msg>), WatchError> {
        let (tx, rx) = mpsc::sync_channel(EVENT_QUEUE);
        let events = tx.clone();
        let overflow = Arc::clone(overflow);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            if events.try_send(Msg::Fs(res)).is_err() {
                overflow.store(true, Ordering::Relaxed);
            }
        })
        .map_err(|source| WatchError::Notify {
            path: dir.to_path_buf(),
            source,
        })?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Notify {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok((watcher, tx, rx))
    }
}

/// Stops the events and the watcher's thread (dropping a watcher stops it).
impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Stop the events first, then wake our thread (if the queue is
        // full, the thread is awake anyway and sees the flag).
        drop(self.watcher.take());
        let _ = self.wake.try_send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks that `dir` is an existing folder.
fn check_folder(dir: &Path) -> Result<(), WatchError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(WatchError::NotAFolder {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(WatchError::MissingFolder {
            path: dir.to_path_buf(),
        }),
        Err(source) => Err(WatchError::Read {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Watches one folder and reports its complete files (see the module docs).
pub struct FolderWatcher {
    path: PathBuf,
    /// Held for its drop, which stops the watching.
    _running: Running,
}

impl fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FolderWatcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FolderWatcher {
    /// Starts watching `cfg.path`; complete files are sent on `tx`. The
    /// files already there are listed before this returns and reported once
    /// they have settled. Watching stops when the returned value is dropped
    /// or when `tx`'s receiver is gone.
    pub fn start(cfg: WatchConfig, tx: Sender<WatchEvent>) -> Result<FolderWatcher, WatchError> {
        let dir = cfg.path;
        check_folder(&dir)?;
        let overflow = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        // Watch before listing, so nothing that lands in between is missed.
        let (watcher, wake, rx) = Running::watch(&dir, &overflow)?;
        let mut folder = Folder {
            dir: dir.clone(),
            settle: cfg.settle,
            tx,
            stop: Arc::clone(&stop),
            pending: HashMap::new(),
            done: HashMap::new(),
        };
        folder.rescan().map_err(|source| WatchError::Read {
            path: dir.clone(),
            source,
        })?;
        let thread = thread::Builder::new()
            .name("zonewatch-watch".into())
            .spawn(move || folder.run(&rx, &overflow))
            .map_err(|source| WatchError::Thread {
                path: dir.clone(),
                source,
            })?;
        Ok(FolderWatcher {
            path: dir,
            _running: Running {
                watcher: Some(watcher),
                wake,
                stop,
                thread: Some(thread),
            },
        })
    }

    /// The folder watched.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A version of a file: what must stay unchanged for it to settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    size: u64,
    modified: SystemTime,
}

/// A file waiting to settle.
#[derive(Debug, Clone, Copy)]
struct Pending {
    version: Version,
    /// When this version was first seen.
    since: Instant,
}

/// The state of our folder thread.
struct Folder {
    dir: PathBuf,
    settle: Duration,
    tx: Sender<WatchEvent>,
    stop: Arc<AtomicBool>,
    /// Candidates not yet settled, by path.
    pending: HashMap<PathBuf, Pending>,
    /// The version last reported (or that failed to read), by path.
    done: HashMap<PathBuf, Version>,
}

/// The outcome of looking at a path.
enum Look {
    Gone,
    Ignored,
    File(Version),
}

impl Folder {
    /// How often pending files are looked at again.
    fn tick(&self) -> Duration {
        (self.settle / 4).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    fn run(mut self, rx: &Receiver<Msg>, overflow: &AtomicBool) {
        let tick = self.tick();
        let mut next_check = Instant::now();
        loop {
            let wait = if self.pending.is_empty() {
                IDLE_WAKEUP
            } else {
                next_check.saturating_duration_since(Instant::now())
            };
            let mut msg = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Take what is queued before looking at files again (a bounded
            // number, so a folder that never rests still gets looked at).
            let mut taken = 0;
            while let Some(m) = msg {
                match m {
                    Msg::Stop => return,
                    Msg::Fs(res) => {
                        if !self.on_event(res) {
                            return;
                        }
                    }
                }
                taken += 1;
                msg = if taken < EVENT_QUEUE {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if overflow.swap(false, Ordering::Relaxed)
                && let Err(e) = self.rescan()
                && !self.send_error(self.dir.clone(), format!("cannot list the folder: {e}"))
            {
                return;
            }
            let now = Instant::now();
            if now >= next_check {
                if !self.check_pending() {
                    return;
                }
                next_check = Instant::now() + tick;
            }
        }
    }

    /// Handles one filesystem event; false when the receiver is gone.
    fn on_event(&mut self, res: notify::Result<Event>) -> bool {
        let event = match res {
            Ok(e) => e,
            Err(e) => {
                let path = e.paths.first().cloned().unwrap_or_else(|| self.dir.clone());
                return self.send_error(path, e.to_string());
            }
        };
        if event.need_rescan() {
            if let Err(e) = self.rescan() {
                return self.send_error(self.dir.clone(), format!("cannot list the folder: {e}"));
            }
            return true;
        }
        if matches!(event.kind, EventKind::Access(_)) {
            return true;
        }
        for path in &event.paths {
            if *path == self.dir {
                // The folder itself.
                if matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                ) && !self.send_error(
                    self.dir.clone(),
                    "the watched folder was removed or renamed; no new files will be seen".into(),
                ) {
                    return false;
                }
                continue;
            }
            if let Some(name) = path.file_name() {
                self.consider(self.dir.join(name), Instant::now());
            }
        }
        true
    }

    /// Looks at one path of the folder.
    fn look(path: &Path) -> io::Result<Look> {
        let Some(name) = path.file_name() else {
            return Ok(Look::Ignored);
        };
        if !is_candidate(&name.to_string_lossy()) {
            return Ok(Look::Ignored);
        }
        // Symbolic links are not followed, as when a folder is read once.
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => Ok(Look::File(Version {
                size: m.len(),
                modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })),
            Ok(_) => Ok(Look::Ignored),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Look::Gone),
            Err(e) => Err(e),
        }
    }

    /// Notes what a path holds now: a new or changed candidate becomes pending.
    fn consider(&mut self, path: PathBuf, now: Instant) {
        match Self::look(&path) {
            Ok(Look::File(version)) => {
                if self.done.get(&path) == Some(&version) {
                    self.pending.remove(&path);
                    return;
                }
                let p = self.pending.entry(path).or_insert(Pending {
                    version,
                    since: now,
                });
                if p.version != version {
                    *p = Pending {
                        version,
                        since: now,
                    };
                }
            }
            Ok(Look::Gone) => {
                self.pending.remove(&path);
                self.done.remove(&path);
            }
            Ok(Look::Ignored) => {
                self.pending.remove(&path);
            }
            Err(e) => {
                // Looked at again on the next event for it, or the next listing.
                self.pending.remove(&path);
                let _ = self.send_error(path, format!("cannot read the file's metadata: {e}"));
            }
        }
    }

    /// Lists the folder and considers every entry; forgets paths now gone.
    fn rescan(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let mut seen = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            seen.push(self.dir.join(entry?.file_name()));
        }
        for path in &seen {
            self.consider(path.clone(), now);
        }
        let present: std::collections::HashSet<&PathBuf> = seen.iter().collect();
        self.done.retain(|p, _| present.contains(p));
        self.pending.retain(|p, _| present.contains(p));
        Ok(())
    }

    /// Reports the pending files that have settled, oldest modification
    /// time first; false when the receiver is gone or we are stopping.
    fn check_pending(&mut self) -> bool {
        let now = Instant::now();
        let mut settled = Vec::new();
        let paths: Vec<PathBuf> = self.pending.keys().cloned().collect();
        for path in paths {
            match Self::look(&path) {
                Ok(Look::File(version)) => {
                    let Some(p) = self.pending.get_mut(&path) else {
                        continue;
                    };
                    if p.version != version {
                        *p = Pending {
                            version,
                            since: now,
                        };
                    } else if now.saturating_duration_since(p.since) >= self.settle {
                        settled.push((version, path));
                    }
                }
                _ => self.consider(path, now),
            }
        }
        settled
            .sort_by(|a, b| (a.0.modified, a.1.file_name()).cmp(&(b.0.modified, b.1.file_name())));
        for (version, path) in settled {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let hashed = hash_file(&path, &self.stop);
            let after = Self::look(&path);
            match (hashed, after) {
                (Ok(None), _) => return false,
                (Ok(Some((sha256, size))), Ok(Look::File(v)))
                    if v == version && size == version.size =>
                {
                    self.pending.remove(&path);
                    self.done.insert(path.clone(), version);
                    let ready = ReadyFile {
                        path,
                        size,
                        modified: version.modified,
                        sha256,
                    };
                    if self.tx.send(WatchEvent::Ready(ready)).is_err() {
                        return false;
                    }
                }
                (Err(e), Ok(Look::File(v))) if v == version => {
                    // Not retried until the file changes.
                    self.pending.remove(&path);
                    self.done.insert(path.clone(), version);
                    if !self.send_error(path, format!("cannot read the file: {e}")) {
                        return false;
                    }
                }
                // Changed or gone meanwhile: look again.
                _ => self.consider(path, Instant::now()),
            }
        }
        true
    }

    /// Sends an error event; false when the receiver is gone.
    fn send_error(&self, path: PathBuf, message: String) -> bool {
        self.tx.send(WatchEvent::Error { path, message }).is_ok()
    }
}

/// SHA-256 (lowercase hex) and length of a file's content, read in chunks;
/// `None` when `stop` was set meanwhile.
fn hash_file(path: &Path, stop: &AtomicBool) -> io::Result<Option<(String, u64)>> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut len = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        len += u64::try_from(n).unwrap_or(u64::MAX);
    }
    Ok(Some((format!("{:x}", hasher.finalize()), len)))
}

/// Watches one file (the zones file) and calls back when it changes.
pub struct FileWatcher {
    path: PathBuf,
    /// Held for its drop, which stops the watching.
    _running: Running,
}

impl fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWatcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileWatcher {
    /// Starts watching `path`. The folder that holds it is watched (editors
    /// replace a file by renaming a new one over it), and `on_change` is
    /// called on our thread once `debounce` has passed without further
    /// changes to that file: written in place, replaced by a rename,
    /// deleted, or created. A change to where a symbolic link at `path`
    /// points (as Kubernetes updates mounted config maps) counts too. The
    /// file need not exist yet; its folder must.
    pub fn start(
        path: &Path,
        debounce: Duration,
        on_change: Box<dyn Fn() + Send>,
    ) -> Result<FileWatcher, WatchError> {
        let Some(name) = path.file_name().map(|n| n.to_os_string()) else {
            return Err(WatchError::NotAFile {
                path: path.to_path_buf(),
            });
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        check_folder(&dir)?;
        let overflow = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (watcher, wake, rx) = Running::watch(&dir, &overflow)?;
        let file = WatchedFile {
            path: path.to_path_buf(),
            name,
            debounce,
            stop: Arc::clone(&stop),
            last: fingerprint(path),
            on_change,
        };
        let thread = thread::Builder::new()
            .name("zonewatch-watch-file".into())
            .spawn(move || file.run(&rx, &overflow))
            .map_err(|source| WatchError::Thread {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(FileWatcher {
            path: path.to_path_buf(),
            _running: Running {
                watcher: Some(watcher),
                wake,
                stop,
                thread: Some(thread),
            },
        })
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What identifies a file's current content cheaply: inode, size and
/// modification time, following symbolic links (`None` when it is missing).
type Fingerprint = Option<(u64, u64, SystemTime)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let m = fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((ino, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// The state of our file thread.
struct WatchedFile {
    path: PathBuf,
    name: std::ffi::OsString,
    debounce: Duration,
    stop: Arc<AtomicBool>,
    /// The file as of the last call.
    last: Fingerprint,
    on_change: Box<dyn Fn() + Send>,
}

impl WatchedFile {
    /// Whether an event may have changed the file.
    fn concerns(&self, event: &Event) -> bool {
        if event.need_rescan() {
            return true;
        }
        // Reading the file (as the callback does) is no change.
        if !matches!(event.kind, EventKind::Access(_))
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(self.name.as_os_str()))
        {
            return true;
        }
        // Another entry of the folder changed: maybe a link target under it.
        fingerprint(&self.path) != self.last
    }

    fn run(mut self, rx: &Receiver<Msg>, overflow: &AtomicBool) {
        // When to call back, once no further change came.
        let mut due: Option<Instant> = None;
        loop {
            let wait = due.map_or(IDLE_WAKEUP, |d| d.saturating_duration_since(Instant::now()));
            match rx.recv_timeout(wait) {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Msg::Fs(Ok(event))) => {
                    if self.concerns(&event) {
                        due = Some(Instant::now() + self.debounce);
                    }
                }
                // Errors cannot be acted on here; the file is looked at on
                // the next event.
                Ok(Msg::Fs(Err(_))) | Err(RecvTimeoutError::Timeout) => {}
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if overflow.swap(false, Ordering::Relaxed) {
                due = Some(Instant::now() + self.debounce);
            }
            if due.is_some_and(|d| Instant::now() >= d) {
                due = None;
                self.last = fingerprint(&self.path);
                (self.on_change)();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Generous: the machine running the tests may be busy.
    const WAIT: Duration = Duration::from_secs(10);

    fn sha256_hex(bytes: &[u8]) -> String {
        format!("{:x}", Sha256::digest(bytes))
    }

    fn ready(rx: &Receiver<WatchEvent>) -> ReadyFile {
        match rx.recv_timeout(WAIT) {
            Ok(WatchEvent::Ready(f)) => f,
            Ok(WatchEvent::Error { path, message }) => {
                panic!("error event for {}: {message}", path.display())
            }
            Err(e) => panic!("no event within {WAIT:?}: {e}"),
        }
    }

    fn name(f: &ReadyFile) -> String {
        f.path.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn start(dir: &Path, settle: Duration) -> (FolderWatcher, Receiver<WatchEvent>) {
        let (tx, rx) = mpsc::channel();
        let cfg = WatchConfig {
            path: dir.to_path_buf(),
            settle,
        };
        (FolderWatcher::start(cfg, tx).unwrap(), rx)
    }

    #[test]
    fn the_ledger_hash_is_lowercase_hex_sha256() {
        // FIPS 180-2's test vector.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn existing_files_are_reported_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let base = SystemTime::now() - Duration::from_secs(3600);
        for (name, age, content) in [
            ("a.pcap", 20, &b"aaaa"[..]),
            ("b.pcap", 10, b"bb"),
            ("c.pcap", 30, b"c"),
            // Same time as a.pcap: the name decides.
            ("0.pcap", 20, b"zero"),
            (".hidden.pcap", 0, b"h"),
            ("d.pcap.tmp", 0, b"t"),
            ("e.pcap.part", 0, b"p"),
            ("f.pcap.partial", 0, b"q"),
        ] {
            let path = tmp.path().join(name);
            fs::write(&path, content).unwrap();
            let f = File::options().write(true).open(&path).unwrap();
            f.set_modified(base + Duration::from_secs(age)).unwrap();
        }
        fs::create_dir(tmp.path().join("sub")).unwrap();
        fs::write(tmp.path().join("sub/inner.pcap"), b"x").unwrap();
        let (_w, rx) = start(tmp.path(), Duration::from_millis(200));
        let got: Vec<ReadyFile> = (0..4).map(|_| ready(&rx)).collect();
        let names: Vec<String> = got.iter().map(name).collect();
        assert_eq!(names, ["b.pcap", "0.pcap", "a.pcap", "c.pcap"]);
        assert_eq!(got[0].size, 2);
        assert_eq!(got[0].sha256, sha256_hex(b"bb"));
        assert_eq!(got[0].path, tmp.path().join("b.pcap"));
        assert_eq!(got[0].modified, base + Duration::from_secs(10));
        // Nothing else was pending: the next report is a file made now.
        fs::write(tmp.path().join("z.pcap"), b"new").unwrap();
        assert_eq!(name(&ready(&rx)), "z.pcap");
    }

    #[test]
    fn a_file_written_in_chunks_is_reported_once_complete() {
        let tmp = tempfile::tempdir().unwrap();
        // Pauses between chunks are far shorter than the settle time.
        let (_w, rx) = start(tmp.path(), DEFAULT_SETTLE);
        let path = tmp.path().join("rotated.pcap");
        let mut f = File::create(&path).unwrap();
        let mut all = Vec::new();
        for i in 0..6u8 {
            let chunk: Vec<u8> = (0..100_000u32)
                .map(|j| u8::try_from(j % 251).unwrap() ^ i)
                .collect();
            f.write_all(&chunk).unwrap();
            f.flush().unwrap();
            all.extend_from_slice(&chunk);
            thread::sleep(Duration::from_millis(50));
        }
        drop(f);
        let got = ready(&rx);
        assert_eq!(name(&got), "rotated.pcap");
        assert_eq!(got.size, 600_000);
        assert_eq!(got.sha256, sha256_hex(&all));
        // Reported once: the next report is the next file.
        fs::write(tmp.path().join("next.pcap"), b"n").unwrap();
        assert_eq!(name(&ready(&rx)), "next.pcap");
    }

    #[test]
    fn a_part_file_is_reported_once_renamed() {
        let tmp = tempfile::tempdir().unwrap();
        let (_w, rx) = start(tmp.path(), Duration::from_millis(300));
        let part = tmp.path().join("flows.log.part");
        fs::write(&part, b"complete content").unwrap();
        // Written after the .part file, so it would settle after it.
        fs::write(tmp.path().join("first.pcap"), b"1").unwrap();
        assert_eq!(name(&ready(&rx)), "first.pcap");
        let done = tmp.path().join("flows.log");
        fs::rename(&part, &done).unwrap();
        let got = ready(&rx);
        assert_eq!(got.path, done);
        assert_eq!(got.size, 16);
        assert_eq!(got.sha256, sha256_hex(b"complete content"));
        fs::write(tmp.path().join("last.pcap"), b"2").unwrap();
        assert_eq!(name(&ready(&rx)), "last.pcap");
    }

    #[test]
    fn a_rewritten_file_is_reported_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (_w, rx) = start(tmp.path(), Duration::from_millis(100));
        let path = tmp.path().join("again.pcap");
        fs::write(&path, b"one").unwrap();
        assert_eq!(ready(&rx).sha256, sha256_hex(b"one"));
        fs::write(&path, b"two!").unwrap();
        let got = ready(&rx);
        assert_eq!((got.size, got.sha256), (4, sha256_hex(b"two!")));
    }

    #[test]
    fn a_missing_folder_says_to_create_it() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("spool");
        let (tx, _rx) = mpsc::channel();
        let e = FolderWatcher::start(WatchConfig::new(&missing), tx).unwrap_err();
        assert!(matches!(e, WatchError::MissingFolder { .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "folder {} does not exist: create it first",
                missing.display()
            )
        );
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        let (tx, _rx) = mpsc::channel();
        let e = FolderWatcher::start(WatchConfig::new(&file), tx).unwrap_err();
        assert!(matches!(e, WatchError::NotAFolder { .. }));
    }

    #[test]
    fn dropping_the_watcher_ends_its_thread() {
        let tmp = tempfile::tempdir().unwrap();
        let (w, rx) = start(tmp.path(), Duration::from_millis(100));
        drop(w);
        // Our thread held the only sender left.
        assert!(matches!(
            rx.recv_timeout(WAIT),
            Err(RecvTimeoutError::Disconnected)
        ));
    }

    /// Starts a file watcher whose callback sends what the file holds then.
    fn watch_file(path: &Path) -> (FileWatcher, Receiver<Option<String>>) {
        let (tx, rx) = mpsc::channel();
        let p = path.to_path_buf();
        let w = FileWatcher::start(
            path,
            Duration::from_millis(300),
            Box::new(move || {
                let _ = tx.send(fs::read_to_string(&p).ok());
            }),
        )
        .unwrap();
        (w, rx)
    }

    /// Waits until the callback saw `want` (an earlier call may have seen
    /// the file mid-write on a busy machine).
    fn wait_for(rx: &Receiver<Option<String>>, want: Option<&str>) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(got) if got.as_deref() == want => return,
                Ok(_) => {}
                Err(e) => panic!("no call seeing {want:?} within {WAIT:?}: {e}"),
            }
        }
    }

    #[test]
    fn file_watcher_sees_writes_renames_and_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("zones.toml");
        fs::write(&path, "v1").unwrap();
        let (_w, rx) = watch_file(&path);
        // Written in place.
        fs::write(&path, "v2").unwrap();
        wait_for(&rx, Some("v2"));
        // Replaced by a rename, as editors save.
        let tmp_file = tmp.path().join(".zones.toml.swp");
        fs::write(&tmp_file, "v3").unwrap();
        fs::rename(&tmp_file, &path).unwrap();
        wait_for(&rx, Some("v3"));
        // Deleted, then created again.
        fs::remove_file(&path).unwrap();
        wait_for(&rx, None);
        fs::write(&path, "v4").unwrap();
        wait_for(&rx, Some("v4"));
    }

    #[test]
    fn file_watcher_ignores_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("zones.toml");
        fs::write(&path, "v1").unwrap();
        let (_w, rx) = watch_file(&path);
        fs::write(tmp.path().join("other.toml"), "x").unwrap();
        // Replaced whole, so the callback cannot see it half written.
        let staged = tmp.path().join("zones.toml.new");
        fs::write(&staged, "v2").unwrap();
        fs::rename(&staged, &path).unwrap();
        // The first call is for zones.toml's change, after the other write.
        assert_eq!(rx.recv_timeout(WAIT).unwrap().as_deref(), Some("v2"));
    }

    #[test]
    fn file_watcher_needs_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let e = FileWatcher::start(
            &tmp.path().join("nope/zones.toml"),
            Duration::from_millis(100),
            Box::new(|| {}),
        )
        .unwrap_err();
        assert!(matches!(e, WatchError::MissingFolder { .. }));
    }
}
