//! The store's I/O seam: every write, sync, rename, truncate and delete of the WAL and the
//! Parquet parts goes through an [`Io`], so tests can make the Nth one fail ([`Faults`])
//! the way a full disk or a failing device would. Without faults it is a thin wrapper over
//! `std::fs`.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::Path,
    sync::{Arc, Mutex},
};

/// A kind of I/O operation a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Writing bytes to a file (WAL frames, Parquet pages).
    Write,
    /// `fsync`/`fdatasync` of a file or a directory.
    Sync,
    /// Renaming a finished file into place.
    Rename,
    /// Deleting a file.
    Remove,
    /// Truncating a file (WAL rollback).
    Truncate,
    /// Creating a file.
    Create,
}

/// One armed fault: after `skip` operations of kind `op` succeed, the next `times` fail
/// with the OS error `errno`.
#[derive(Debug, Clone)]
struct Rule {
    op: Op,
    skip: u64,
    times: u64,
    errno: i32,
}

/// Faults armed by a test. Shared between the test and the store it opened.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
}

/// `ENOSPC`: no space left on the device.
pub const ENOSPC: i32 = 28;
/// `EIO`: an I/O error of the device.
pub const EIO: i32 = 5;

impl Faults {
    /// Makes the `nth` (1-based) next operation of kind `op` and the `times − 1` after it
    /// fail with `errno` (`u64::MAX` times: until [`Faults::clear`]).
    pub fn fail(&self, op: Op, nth: u64, times: u64, errno: i32) {
        self.rules.lock().expect("faults lock").push(Rule {
            op,
            skip: nth.saturating_sub(1),
            times,
            errno,
        });
    }

    /// Disarms every fault: the "disk" works again.
    pub fn clear(&self) {
        self.rules.lock().expect("faults lock").clear();
    }

    fn check(&self, op: Op) -> io::Result<()> {
        let mut rules = self.rules.lock().expect("faults lock");
        for rule in rules.iter_mut().filter(|r| r.op == op) {
            if rule.skip > 0 {
                rule.skip -= 1;
            } else if rule.times > 0 {
                rule.times -= 1;
                return Err(io::Error::from_raw_os_error(rule.errno));
            }
        }
        Ok(())
    }
}

/// The store's file operations, optionally with injected [`Faults`].
#[derive(Debug, Clone, Default)]
pub struct Io {
    faults: Option<Arc<Faults>>,
}

impl Io {
    /// An `Io` whose operations consult `faults` first.
    pub fn with_faults(faults: Arc<Faults>) -> Io {
        Io {
            faults: Some(faults),
        }
    }

    /// Fails when a fault is armed for `op`.
    pub fn check(&self, op: Op) -> io::Result<()> {
        match &self.faults {
            Some(faults) => faults.check(op),
            None => Ok(()),
        }
    }

    /// Creates (truncating) a file for writing.
    pub fn create(&self, path: &Path) -> io::Result<File> {
        self.check(Op::Create)?;
        File::create(path)
    }

    /// Writes all of `buf`.
    pub fn write_all(&self, file: &mut File, buf: &[u8]) -> io::Result<()> {
        self.check(Op::Write)?;
        file.write_all(buf)
    }

    /// `fdatasync`.
    pub fn sync_data(&self, file: &File) -> io::Result<()> {
        self.check(Op::Sync)?;
        file.sync_data()
    }

    /// `fsync`.
    pub fn sync_all(&self, file: &File) -> io::Result<()> {
        self.check(Op::Sync)?;
        file.sync_all()
    }

    /// `fsync` of a directory, making renames and creations in it durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::Sync)?;
        File::open(dir)?.sync_all()
    }

    /// Renames `from` to `to`.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename)?;
        fs::rename(from, to)
    }

    /// Deletes a file.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove)?;
        fs::remove_file(path)
    }

    /// Deletes a directory and everything in it.
    pub fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove)?;
        fs::remove_dir_all(path)
    }

    /// Truncates (or extends) a file to `len` bytes.
    pub fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.check(Op::Truncate)?;
        file.set_len(len)
    }

    /// Wraps a file so that each write goes through the seam.
    pub fn writer(&self, file: File) -> IoWriter {
        IoWriter {
            file,
            io: self.clone(),
            failure: WriteFailure::default(),
        }
    }
}

/// The first I/O error an [`IoWriter`] hit, kept for its owner: the Parquet writer turns
/// I/O errors into strings, and the store must still tell a full disk from other failures.
#[derive(Debug, Clone, Default)]
pub struct WriteFailure(Arc<Mutex<Option<ErrorCode>>>);

/// What is kept of an I/O error: its kind and OS error number.
type ErrorCode = (io::ErrorKind, Option<i32>);

impl WriteFailure {
    fn record(&self, err: &io::Error) {
        let mut first = self.0.lock().expect("write failure lock");
        first.get_or_insert((err.kind(), err.raw_os_error()));
    }

    /// The first error recorded, rebuilt.
    pub fn take(&self) -> Option<io::Error> {
        let first = self.0.lock().expect("write failure lock").take()?;
        Some(match first {
            (_, Some(code)) => io::Error::from_raw_os_error(code),
            (kind, None) => io::Error::from(kind),
        })
    }
}

/// A file whose writes go through an [`Io`] (for the Parquet writer).
#[derive(Debug)]
pub struct IoWriter {
    file: File,
    io: Io,
    failure: WriteFailure,
}

impl IoWriter {
    /// The file, once written.
    pub fn into_file(self) -> File {
        self.file
    }

    /// Where the first failed write is recorded.
    pub fn failure(&self) -> WriteFailure {
        self.failure.clone()
    }
}

impl Write for IoWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.io.check(Op::Write).and_then(|()| self.file.write(buf));
        if let Err(err) = &written {
            self.failure.record(err);
        }
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = self.file.flush();
        if let Err(err) = &flushed {
            self.failure.record(err);
        }
        flushed
    }
}

/// Whether an error means the disk is full (`ENOSPC`, or `EDQUOT` for a quota).
pub fn is_disk_full(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::StorageFull || matches!(err.raw_os_error(), Some(28 | 122))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_operation_fails_until_its_count_runs_out() {
        let faults = Arc::new(Faults::default());
        let io = Io::with_faults(faults.clone());
        faults.fail(Op::Sync, 2, 2, ENOSPC);
        assert!(io.check(Op::Sync).is_ok());
        assert!(
            io.check(Op::Write).is_ok(),
            "other operations are untouched"
        );
        let err = io.check(Op::Sync).unwrap_err();
        assert!(is_disk_full(&err));
        assert!(io.check(Op::Sync).is_err());
        assert!(io.check(Op::Sync).is_ok());
        faults.fail(Op::Rename, 1, u64::MAX, EIO);
        assert!(io.check(Op::Rename).is_err());
        faults.clear();
        assert!(io.check(Op::Rename).is_ok());
    }
}
