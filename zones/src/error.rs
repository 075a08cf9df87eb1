//! Load errors: every problem in a zones file is a [`Diagnostic`] with `file:line`.

use std::fmt;
use std::path::PathBuf;

/// One problem in a zones file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to [`Policy::load`](crate::Policy::load) or
    /// [`Policy::parse`](crate::Policy::parse).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// What is wrong, naming the entry and field (`zone "db": "10.2.0.0/33" is not a CIDR`).
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Why a zones file did not load.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read zones file {}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file has errors; all of them, in file order.
    #[error("{}", DiagnosticList(diagnostics))]
    Invalid {
        /// Every problem found, sorted by line.
        diagnostics: Vec<Diagnostic>,
    },
}

struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
