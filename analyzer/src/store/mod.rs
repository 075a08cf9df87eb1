//! The SQLite store of the monitor: flow aggregates, findings, observed
//! paths and the ledger of ingested files, in one database file (WAL).
//!
//! - [`Store`] holds the one writer connection. [`Store::open`] creates the
//!   file or upgrades its schema (numbered migrations, `PRAGMA user_version`),
//!   and [`Store::commit`] writes a whole [`Batch`] in **one transaction**:
//!   either everything of the batch is stored (its file ledger rows with the
//!   aggregates and findings they produced) or nothing is.
//! - [`Reader`] holds its own read-only connection. Thanks to WAL it sees
//!   every committed batch while the writer keeps working; each of its calls
//!   reads one consistent snapshot.
//!
//! Batches carry **increments**: [`Aggregate`] and [`PathObservation`]
//! counters are added to what is stored, and a [`FindingDelta`] merges into
//! its finding (counters added, first = min, last = max, severity and
//! confidence = max, evidence appended up to [`StoreLimits::max_evidence`],
//! initiators, hosts and services merged as sets so `initiator_count`,
//! `hosts` and `ports` stay exact across batches and restarts).
//!
//! Bounds: evidence rows per finding ([`StoreLimits::max_evidence`]), talkers
//! per path ([`StoreLimits::max_talkers`], the largest by bytes) and members
//! of each set per finding ([`StoreLimits::max_members`]; past it new members
//! are not recorded and [`StoredFinding::members_capped`] says the counts
//! are lower bounds).
//!
//! Threads: a [`Store`] or a [`Reader`] may move to another thread but is
//! not shared between threads: use one `Store` on the writer thread and open
//! one `Reader` per reading thread. Calls block (SQLite I/O): from async code
//! run them on a dedicated thread or under `spawn_blocking`.
//!
//! ```
//! use zonewatch_analyzer::store::{Aggregate, Batch, Reader, Store};
//! use zonewatch_collector::time::Timestamp;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("zonewatch.db");
//! let mut store = Store::open(&path)?;
//! let batch = Batch {
//!     aggregates: vec![Aggregate {
//!         bucket: Timestamp(0),
//!         bucket_secs: 60,
//!         source: "eth1".into(),
//!         src_zone: "app".into(),
//!         dst_zone: "db".into(),
//!         proto: 6,
//!         dport: 5432,
//!         decision: "allowed".into(),
//!         flows: 3,
//!         packets: 30,
//!         bytes: 3000,
//!         answered: 3,
//!     }],
//!     ..Batch::default()
//! };
//! store.commit(&batch)?;
//! let reader = Reader::open(&path)?;
//! assert_eq!(reader.totals()?.flows, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod read;
mod schema;
mod write;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;
use zonewatch_collector::time::Timestamp;

use crate::finding::{Confidence, Finding};
use zonewatch_zones::Severity;

pub use schema::SCHEMA_VERSION;

/// What went wrong with the store. Every message names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created.
    #[error(
        "{}: cannot open the store database: check that its folder exists and is writable",
        path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// A reader was pointed at a file that does not exist.
    #[error(
        "{}: no such store database: check the path (`zonewatch monitor` creates it)",
        path.display()
    )]
    NotFound {
        /// The database file.
        path: PathBuf,
    },
    /// The file is not a zonewatch store (another SQLite database, or not SQLite).
    #[error("{}: not a zonewatch store ({why}): give the path of a zonewatch database", path.display())]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// What was found instead.
        why: String,
    },
    /// The schema is newer than this program knows.
    #[error(
        "{}: database is newer (schema {found}) than this zonewatch (schema {supported}): upgrade zonewatch",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest schema this program knows.
        supported: u32,
    },
    /// A reader found an older schema; only the writer upgrades.
    #[error(
        "{}: database is older (schema {found}) than this zonewatch (schema {supported}): open it once with `zonewatch monitor` to upgrade it",
        path.display()
    )]
    TooOld {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The schema this program reads.
        supported: u32,
    },
    /// A schema upgrade step failed; the database stays at the previous version.
    #[error(
        "{}: upgrading the schema from version {from} to {to} failed; the database is unchanged at version {from}",
        path.display()
    )]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version before the step.
        from: u32,
        /// The version the step upgrades to.
        to: u32,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// Another connection held the database locked past the busy timeout.
    #[error(
        "{}: database is locked by another process ({action}): make sure only one `zonewatch monitor` writes to it, then retry",
        path.display()
    )]
    Busy {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// A batch names a file that is already in the ledger: the batch is not stored.
    #[error(
        "{}: file {file} (sha256 {sha256}) was already ingested; the batch was not stored",
        path.display()
    )]
    FileAlreadyIngested {
        /// The database file.
        path: PathBuf,
        /// Content hash of the ingested file.
        sha256: String,
        /// The file's path as given in the batch.
        file: String,
    },
    /// A batch holds a value the store cannot keep: the batch is not stored.
    #[error("{}: {what} is invalid ({why}); the batch was not stored", path.display())]
    InvalidValue {
        /// The database file.
        path: PathBuf,
        /// Which value (`finding f-1234 bytes`).
        what: String,
        /// Why it is refused.
        why: String,
    },
    /// A stored value could not be read back.
    #[error(
        "{}: stored {what} is unreadable ({why}): the file may be damaged or written by another program",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which value.
        what: String,
        /// Why it is unreadable.
        why: String,
    },
    /// Any other SQLite failure.
    #[error("{}: {action} failed", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done (`committing a batch`).
        action: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Wraps a SQLite error met while doing `action` on `path`.
    pub(crate) fn sql(path: &Path, action: &'static str, source: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
                path: path.to_owned(),
                action,
                source,
            },
            Some(ErrorCode::NotADatabase) => StoreError::NotAStore {
                path: path.to_owned(),
                why: "the file is not a SQLite database".to_string(),
            },
            _ => StoreError::Sqlite {
                path: path.to_owned(),
                action,
                source,
            },
        }
    }
}

/// Limits of what the store keeps per finding and per path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLimits {
    /// Sample flows kept per finding (default 5, the analyzer's default).
    pub max_evidence: usize,
    /// Talkers kept per path, the largest by bytes (default 20).
    pub max_talkers: usize,
    /// Members kept per set (initiators, hosts, services) per finding
    /// (default 100 000). Past it, new members are not recorded and the
    /// finding's counts become lower bounds ([`StoredFinding::members_capped`]).
    pub max_members: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_evidence: 5,
            max_talkers: 20,
            max_members: 100_000,
        }
    }
}

/// The store's one writer connection. Not `Sync`: keep it on one thread.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    limits: StoreLimits,
}

/// What a [`Store::commit`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Ids of the findings stored for the first time by this batch, in batch order.
    pub new_findings: Vec<String>,
    /// Paths (src zone, dst zone, protocol, port) stored for the first time.
    pub new_paths: usize,
}

/// Everything one commit writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Flow counters to add.
    pub aggregates: Vec<Aggregate>,
    /// Findings' increments.
    pub findings: Vec<FindingDelta>,
    /// Observed paths' increments.
    pub paths: Vec<PathObservation>,
    /// Files ingested by this batch (each may be in the ledger only once).
    pub files: Vec<FileRow>,
    /// Key/values to upsert (e.g. `baseline_start`).
    pub meta: Vec<(String, String)>,
}

/// The decisions an [`Aggregate`] or [`PathObservation`] may carry
/// (`zonewatch_zones::Decision::as_str`).
pub const DECISIONS: [&str; 5] = ["allowed", "intra", "not-allowed", "denied", "local"];

/// Flow counters of one time bucket for one source, zone pair and service
/// (deltas: the store ADDS them to existing rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Start of the bucket.
    pub bucket: Timestamp,
    /// Length of the bucket in seconds.
    pub bucket_secs: u32,
    /// The input that saw the flows (`eth1`, `netflow 192.0.2.1`).
    pub source: String,
    /// Zone of the initiators.
    pub src_zone: String,
    /// Zone of the responders.
    pub dst_zone: String,
    /// IP protocol number.
    pub proto: u8,
    /// Responder port (ICMP: `type*256+code`).
    pub dport: u16,
    /// One of [`DECISIONS`].
    pub decision: String,
    /// Flows.
    pub flows: u64,
    /// Packets, both directions.
    pub packets: u64,
    /// IP bytes, both directions.
    pub bytes: u64,
    /// Established flows among them.
    pub answered: u64,
}

/// A finding's increment since the last batch.
///
/// From `finding` the store takes the id, kind, zones, rule and
/// suppression (the latest batch's win), severity and confidence (the
/// maximum is kept), first/last (min/max), the counters `flows`, `packets`,
/// `bytes`, `answered` (added) and `evidence` (the new sample flows,
/// appended up to [`StoreLimits::max_evidence`]); for
/// `undeclared-address` also `dst`, the address. Its `initiators`,
/// `initiator_count`, `hosts`, `ports`, `proto`, `dport`, `service` and
/// (other kinds) `dst` are ignored: the store derives them from the member
/// sets below, merged over every batch.
pub use crate::analyze::FindingDelta;

/// One observed path (src zone, dst zone, proto, dport), allowed or not,
/// with counters to add and top talkers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathObservation {
    /// Zone of the initiators.
    pub src_zone: String,
    /// Zone of the responders.
    pub dst_zone: String,
    /// IP protocol number.
    pub proto: u8,
    /// Responder port (ICMP: `type*256+code`).
    pub dport: u16,
    /// One of [`DECISIONS`] (the latest batch's wins).
    pub decision: String,
    /// The rule that decided (the latest batch's wins).
    pub rule: String,
    /// First packet time in this batch.
    pub first: Timestamp,
    /// Last packet time in this batch.
    pub last: Timestamp,
    /// Flows to add.
    pub flows: u64,
    /// Packets to add.
    pub packets: u64,
    /// Bytes to add.
    pub bytes: u64,
    /// Talkers of this batch (added to the stored ones, which are bounded).
    pub talkers: Vec<Talker>,
}

/// Who talked on a path: the store keeps at most [`StoreLimits::max_talkers`]
/// per path, the largest by bytes. A talker pushed out and seen again starts
/// from its new counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Talker {
    /// Initiator.
    pub src: IpAddr,
    /// Responder.
    pub dst: IpAddr,
    /// Flows.
    pub flows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One file in the ledger of ingested files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// Content hash, lowercase hex (the key: a renamed file is known).
    pub sha256: String,
    /// The path it was read from.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was ingested.
    pub ingested_at: Timestamp,
    /// Packets read from it.
    pub packets: u64,
    /// Flows it produced.
    pub flows: u64,
    /// Errors counted while reading it.
    pub errors: u64,
}

/// Sums over all aggregates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Flows.
    pub flows: u64,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Established flows.
    pub answered: u64,
}

/// A finding as stored: a [`Finding`] whose sample flows are the JSON
/// objects `zonewatch flows` prints, oldest first. Serializes (and
/// [`to_json`](StoredFinding::to_json)) exactly as a [`Finding`] does:
/// DESIGN.md's finding JSON contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredFinding {
    /// The finding (counters merged over every batch; severity and
    /// confidence the maximum).
    #[serde(flatten)]
    pub finding: Finding<serde_json::Value>,
    /// A member set reached [`StoreLimits::max_members`]: `initiator_count`,
    /// `hosts` and `ports` are lower bounds. Not part of the JSON.
    #[serde(skip)]
    pub members_capped: bool,
}

impl std::ops::Deref for StoredFinding {
    type Target = Finding<serde_json::Value>;
    fn deref(&self) -> &Self::Target {
        &self.finding
    }
}

/// How many initiators a [`StoredFinding`] lists (as the analyzer).
pub const MAX_INITIATORS_LISTED: usize = 10;

impl StoredFinding {
    /// The finding JSON of DESIGN.md ("Findings JSON"), the same as
    /// `analyze --format json` prints for one finding.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// An observed path as stored: the same shape as an observation, its
/// counters the totals since first seen, its talkers the largest by bytes.
pub type StoredPath = PathObservation;

/// A read-only connection to a store. Not `Sync`: open one per reading thread.
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the store at `path` with [`StoreLimits::default`], creating the
    /// file or upgrading its schema. Sets WAL, `synchronous = NORMAL`, a
    /// busy timeout and foreign keys.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreLimits::default())
    }

    /// [`Store::open`] with explicit limits.
    pub fn open_with(path: &Path, limits: StoreLimits) -> Result<Store, StoreError> {
        let conn = schema::open_writer(path, schema::SCHEMA_VERSION)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            limits,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        schema::user_version(&self.conn, &self.path)
    }

    /// Writes a whole batch in one transaction: on any error nothing of it is stored.
    pub fn commit(&mut self, batch: &Batch) -> Result<CommitOutcome, StoreError> {
        write::commit(&mut self.conn, &self.path, &self.limits, batch)
    }

    /// Whether a file with this content hash is in the ledger.
    pub fn file_seen(&self, sha256: &str) -> Result<bool, StoreError> {
        read::file_seen(&self.conn, &self.path, sha256)
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        read::meta(&self.conn, &self.path, key)
    }

    /// Deletes the aggregate buckets that start before `keep_buckets_from`;
    /// returns the number of rows deleted. Findings, paths and the file
    /// ledger are kept.
    pub fn retain(&mut self, keep_buckets_from: Timestamp) -> Result<u64, StoreError> {
        write::retain(&mut self.conn, &self.path, keep_buckets_from)
    }
}

impl Reader {
    /// Opens a read-only connection. Fails clearly when the file does not
    /// exist, is not a zonewatch store, or has another schema version than
    /// this program (an older one is upgraded by opening it with [`Store::open`]).
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        let conn = schema::open_reader(path)?;
        Ok(Reader {
            conn,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every finding, most severe first, then first seen, then id. Suppressed
    /// findings are included (their `suppressed` is set): filter them for
    /// display, count them in summaries.
    pub fn findings(&self) -> Result<Vec<StoredFinding>, StoreError> {
        read::findings(&self.conn, &self.path)
    }

    /// Sums over all aggregates.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        read::totals(&self.conn, &self.path)
    }

    /// The aggregates whose bucket starts in `[from, to)`, ordered by bucket,
    /// source, zones, protocol, port and decision.
    pub fn aggregates(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Aggregate>, StoreError> {
        read::aggregates(&self.conn, &self.path, from, to)
    }

    /// The file ledger, in ingestion order.
    pub fn files(&self) -> Result<Vec<FileRow>, StoreError> {
        read::files(&self.conn, &self.path)
    }

    /// Every observed path with its talkers, ordered by zones, protocol and port.
    pub fn paths(&self) -> Result<Vec<StoredPath>, StoreError> {
        read::paths(&self.conn, &self.path)
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        read::meta(&self.conn, &self.path, key)
    }
}

/// Severity as stored (0 info .. 4 critical).
fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

fn severity_of_rank(r: i64) -> Option<Severity> {
    Some(match r {
        0 => Severity::Info,
        1 => Severity::Low,
        2 => Severity::Medium,
        3 => Severity::High,
        4 => Severity::Critical,
        _ => return None,
    })
}

/// Confidence as stored (0 low .. 2 high).
fn confidence_rank(c: Confidence) -> i64 {
    match c {
        Confidence::Low => 0,
        Confidence::Medium => 1,
        Confidence::High => 2,
    }
}

fn confidence_of_rank(r: i64) -> Option<Confidence> {
    Some(match r {
        0 => Confidence::Low,
        1 => Confidence::Medium,
        2 => Confidence::High,
        _ => return None,
    })
}

/// An address as a member blob: `[4, a, b, c, d]` or `[6, 16 bytes]`, so
/// that byte order sorts as `IpAddr` does.
fn addr_blob(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let mut v = vec![4];
            v.extend_from_slice(&a.octets());
            v
        }
        IpAddr::V6(a) => {
            let mut v = vec![6];
            v.extend_from_slice(&a.octets());
            v
        }
    }
}

fn blob_addr(b: &[u8]) -> Option<IpAddr> {
    match b {
        [4, rest @ ..] => <[u8; 4]>::try_from(rest).ok().map(IpAddr::from),
        [6, rest @ ..] => <[u8; 16]>::try_from(rest).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A service as a member blob: `[protocol, port high, port low]`.
fn service_blob(proto: u8, dport: u16) -> Vec<u8> {
    let [hi, lo] = dport.to_be_bytes();
    vec![proto, hi, lo]
}

fn blob_service(b: &[u8]) -> Option<(u8, u16)> {
    match b {
        [p, hi, lo] => Some((*p, u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}
