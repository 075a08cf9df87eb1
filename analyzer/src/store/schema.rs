//! The one initializer: opening, pragmas, and the numbered schema migrations.
//!
//! `MIGRATIONS[i]` upgrades schema `i` to `i + 1`; `PRAGMA user_version` is
//! the schema version. Each step runs in its own immediate transaction that
//! also sets `user_version`, so a failed step leaves the database at the
//! version before it. A migration, once released, is never edited: a change
//! is a new step appended here.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::StoreError;

/// The schema migrations, in order.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_talkers.sql"),
];

/// The schema version this program writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// `PRAGMA application_id` of a zonewatch store ("ZWDB"), set by migration 1.
pub(crate) const APPLICATION_ID: i64 = 0x5A57_4442;

/// How long a connection waits for another one's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn user_version(conn: &Connection, path: &Path) -> Result<u32, StoreError> {
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| StoreError::sql(path, "reading the schema version", e))?;
    u32::try_from(v).map_err(|_| StoreError::NotAStore {
        path: path.to_owned(),
        why: format!("schema version {v} is not one zonewatch writes"),
    })
}

fn application_id(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| StoreError::sql(path, "reading the database header", e))
}

/// Checks that `conn` is a zonewatch store (or, for the writer, an empty
/// database); returns its schema version.
fn check_identity(conn: &Connection, path: &Path, writer: bool) -> Result<u32, StoreError> {
    let app = application_id(conn, path)?;
    let version = user_version(conn, path)?;
    if app == APPLICATION_ID {
        return Ok(version);
    }
    if app != 0 {
        return Err(StoreError::NotAStore {
            path: path.to_owned(),
            why: format!("it is a SQLite database of another application (id {app:#x})"),
        });
    }
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| StoreError::sql(path, "reading the schema", e))?;
    if tables > 0 || version != 0 {
        return Err(StoreError::NotAStore {
            path: path.to_owned(),
            why: "it is a SQLite database of another application".to_string(),
        });
    }
    if !writer {
        return Err(StoreError::NotAStore {
            path: path.to_owned(),
            why: "the database is empty".to_string(),
        });
    }
    Ok(0)
}

fn set_pragmas(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let e = |e| StoreError::sql(path, "setting up the connection", e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(e)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(e)?;
    Ok(())
}

/// Opens the writer connection and upgrades the schema to `target` (tests
/// build old versions with a lower target).
pub(crate) fn open_writer(path: &Path, target: u32) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    set_pragmas(&conn, path)?;
    let version = check_identity(&conn, path, true)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
        .map_err(|e| StoreError::sql(path, "switching to WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotAStore {
            path: path.to_owned(),
            why: format!("SQLite refused WAL mode (journal mode is {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| StoreError::sql(path, "setting up the connection", e))?;
    upgrade(&mut conn, path, target)?;
    Ok(conn)
}

/// Runs the migration steps from the current version up to `target`, each
/// in its own transaction. The version is read again inside the transaction,
/// so two writers starting together do not both apply a step.
fn upgrade(conn: &mut Connection, path: &Path, target: u32) -> Result<(), StoreError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::sql(path, "starting a schema upgrade", e))?;
        let from = user_version(&tx, path)?;
        if from >= target {
            return Ok(());
        }
        let to = from + 1;
        let step = MIGRATIONS
            .get(from as usize)
            .ok_or_else(|| StoreError::TooNew {
                path: path.to_owned(),
                found: from,
                supported: SCHEMA_VERSION,
            })?;
        let migrate = |source| StoreError::Migrate {
            path: path.to_owned(),
            from,
            to,
            source,
        };
        tx.execute_batch(step).map_err(migrate)?;
        tx.pragma_update(None, "user_version", to)
            .map_err(migrate)?;
        tx.commit().map_err(migrate)?;
    }
}

/// Opens a read-only connection to an existing store of the current schema.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::NotFound {
            path: path.to_owned(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    set_pragmas(&conn, path)?;
    let version = check_identity(&conn, path, false)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        return Err(StoreError::TooOld {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}
