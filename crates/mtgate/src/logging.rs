//! Logging: tracing to stderr or to a file that SIGUSR1 reopens (for logrotate).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Where log lines go.
#[derive(Debug)]
pub struct LogTarget {
    file: Option<(PathBuf, Mutex<File>)>,
}

/// Handle kept by the process to reopen the log file.
#[derive(Debug, Clone)]
pub struct LogHandle(Arc<LogTarget>);

impl LogHandle {
    /// Reopens the log file (after rotation). A no-op when logging to stderr.
    pub fn reopen(&self) -> io::Result<()> {
        if let Some((path, file)) = &self.0.file {
            let fresh = open_append(path)?;
            *file.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Installs the global subscriber. `RUST_LOG` overrides `level`.
pub fn init(level: &str, file: Option<&Path>) -> io::Result<LogHandle> {
    let target = Arc::new(LogTarget {
        file: match file {
            Some(path) => Some((path.to_owned(), Mutex::new(open_append(path)?))),
            None => None,
        },
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = target.file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogHandle(target.clone()))
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
    Ok(LogHandle(target))
}

/// One log line's writer.
#[derive(Debug)]
pub enum LogWriter<'a> {
    /// Standard error.
    Stderr(io::Stderr),
    /// The log file, locked for the line.
    File(MutexGuard<'a, File>),
}

impl Write for LogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stderr(s) => s.write(buf),
            Self::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stderr(s) => s.flush(),
            Self::File(f) => f.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for LogHandle {
    type Writer = LogWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        match &self.0.file {
            Some((_, file)) => LogWriter::File(file.lock().unwrap_or_else(|e| e.into_inner())),
            None => LogWriter::Stderr(io::stderr()),
        }
    }
}
