//! The write-ahead log: numbered segment files of length- and CRC-framed records, each
//! synced to disk before a write is acknowledged. A flush of the head into Parquet rotates
//! to a new segment; segments the catalog says are in Parquet are deleted.
//!
//! An append that fails (a full disk, a failing `fsync`) is rolled back: the segment is
//! truncated to its last good frame. When even that fails the log stops taking writes until
//! a later append manages the rollback, so no acknowledged frame ever follows a torn one.
//! Replay never cuts a file: it skips a bad frame and resynchronises on the next intact one.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Seek as _, SeekFrom},
    path::{Path, PathBuf},
};

use super::io::Io;

use codec::frame;

/// The open log, appending to its newest segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    seq: u64,
    /// Length of the current segment up to its last good frame.
    bytes: u64,
    /// A failed append could not be rolled back: the tail may hold a torn frame.
    torn: bool,
    io: Io,
}

impl Wal {
    /// Opens the log in `dir`, starting a new segment after every existing one.
    pub fn open(dir: &Path) -> io::Result<Wal> {
        Wal::open_with(dir, Io::default())
    }

    /// [`Wal::open`] with file operations through `io`.
    pub fn open_with(dir: &Path, io: Io) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let next = segments(dir)?.last().map_or(1, |(seq, _)| seq + 1);
        let file = create_segment(dir, next)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            seq: next,
            bytes: 0,
            torn: false,
            io,
        })
    }

    /// The segment being written.
    pub fn current_seq(&self) -> u64 {
        self.seq
    }

    /// Bytes written to the current segment.
    pub fn current_bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends one record and syncs it to disk. On failure the segment is rolled back to
    /// its last good frame (or, if that fails too, the log refuses appends until a later
    /// call manages the rollback).
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        if self.torn {
            self.roll_back()?;
        }
        let frame = frame::encode(payload);
        let written = self
            .io
            .write_all(&mut self.file, &frame)
            .and_then(|()| self.io.sync_data(&self.file));
        if let Err(err) = written {
            self.torn = true;
            if let Err(rollback) = self.roll_back() {
                tracing::error!(%err, %rollback, "a failed write-ahead-log append could not be rolled back; refusing writes until it can");
            }
            return Err(err);
        }
        self.bytes += frame.len() as u64;
        Ok(())
    }

    /// Whether the log refuses appends (a failed append is not rolled back yet).
    pub fn is_torn(&self) -> bool {
        self.torn
    }

    /// Truncates the segment to its last good frame and syncs it.
    fn roll_back(&mut self) -> io::Result<()> {
        self.io.set_len(&self.file, self.bytes)?;
        self.io.sync_all(&self.file)?;
        self.torn = false;
        Ok(())
    }

    /// Starts a new segment; returns the sequence number of the one just closed.
    pub fn rotate(&mut self) -> io::Result<u64> {
        if self.torn {
            self.roll_back()?;
        }
        self.io.sync_all(&self.file)?;
        let closed = self.seq;
        self.file = create_segment(&self.dir, closed + 1)?;
        self.seq = closed + 1;
        self.bytes = 0;
        Ok(closed)
    }

    /// Deletes every segment up to and including `seq`.
    pub fn remove_upto(&self, seq: u64) -> io::Result<()> {
        for (s, path) in segments(&self.dir)? {
            if s <= seq && s != self.seq {
                self.io.remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Total bytes of all segments on disk.
    pub fn size_on_disk(&self) -> u64 {
        segments(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, p)| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Reads every record of the segments after `after_seq`, in order, calling `apply` on each.
/// Bytes that do not frame an intact record (a torn append: never acknowledged) are
/// skipped up to the next intact frame; no file is changed. Returns the records replayed.
pub fn replay(
    dir: &Path,
    after_seq: u64,
    mut apply: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    if !dir.exists() {
        return Ok(0);
    }
    let mut count = 0;
    for (seq, path) in segments(dir)? {
        if seq <= after_seq {
            continue;
        }
        count += replay_segment(&path, &mut apply)?;
    }
    Ok(count)
}

fn replay_segment(
    path: &Path,
    apply: &mut impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut count = 0;
    for item in frame::Frames::new(&data) {
        match item {
            frame::Item::Record { payload, .. } => {
                apply(payload)?;
                count += 1;
            }
            frame::Item::Skipped { offset, len } => {
                tracing::warn!(segment = %path.display(), offset, skipped = len, "skipping bytes of the write-ahead log that hold no intact record (a torn append)");
            }
        }
    }
    Ok(count)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

fn create_segment(dir: &Path, seq: u64) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, seq))?;
    file.seek(SeekFrom::End(0))?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// Segment files in `dir`, sorted by sequence number.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|s| s.parse().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::frame::HEADER;

    fn read_all(dir: &Path, after: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        replay(dir, after, |p| {
            out.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn records_come_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(b"one").unwrap();
        let closed = wal.rotate().unwrap();
        wal.append(b"two").unwrap();
        drop(wal);
        assert_eq!(
            read_all(dir.path(), 0),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
        assert_eq!(read_all(dir.path(), closed), vec![b"two".to_vec()]);
        // A reopened log writes a fresh segment and keeps the old ones readable.
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(b"three").unwrap();
        assert_eq!(read_all(dir.path(), 0).len(), 3);
        wal.remove_upto(closed).unwrap();
        assert_eq!(
            read_all(dir.path(), 0),
            vec![b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn a_torn_tail_is_skipped_and_never_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(b"kept").unwrap();
        wal.append(b"torn-record").unwrap();
        let path = segment_path(dir.path(), wal.current_seq());
        drop(wal);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        assert_eq!(read_all(dir.path(), 0), vec![b"kept".to_vec()]);
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            len - 3,
            "replay changes no file"
        );
    }

    #[test]
    fn records_after_a_torn_frame_are_still_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(b"first").unwrap();
        // Half a frame, as a crash mid-append leaves it, then a good frame after it.
        let mut torn = Vec::new();
        torn.extend_from_slice(&100u32.to_le_bytes());
        torn.extend_from_slice(&7u32.to_le_bytes());
        torn.extend_from_slice(b"partial");
        wal.io.write_all(&mut wal.file, &torn).unwrap();
        wal.bytes += torn.len() as u64;
        wal.append(b"after").unwrap();
        drop(wal);
        assert_eq!(
            read_all(dir.path(), 0),
            vec![b"first".to_vec(), b"after".to_vec()]
        );
    }

    #[test]
    fn a_failed_append_is_rolled_back_to_the_last_good_frame() {
        use crate::store::io::{ENOSPC, Faults, Op};
        let dir = tempfile::tempdir().unwrap();
        let faults = std::sync::Arc::new(Faults::default());
        let mut wal = Wal::open_with(dir.path(), Io::with_faults(faults.clone())).unwrap();
        wal.append(b"acknowledged").unwrap();
        // The write lands but its fsync fails: the frame must not survive.
        faults.fail(Op::Sync, 1, 1, ENOSPC);
        assert!(wal.append(b"refused-1").is_err());
        assert!(!wal.is_torn());
        // The write fails and so does the rollback: the log refuses writes...
        faults.fail(Op::Sync, 1, 1, ENOSPC);
        faults.fail(Op::Truncate, 1, 1, ENOSPC);
        assert!(wal.append(b"refused-2").is_err());
        assert!(wal.is_torn());
        faults.fail(Op::Truncate, 1, 1, ENOSPC);
        assert!(wal.append(b"refused-3").is_err(), "still cannot roll back");
        // ...until the disk works again.
        wal.append(b"later").unwrap();
        let path = segment_path(dir.path(), wal.current_seq());
        drop(wal);
        assert_eq!(
            read_all(dir.path(), 0),
            vec![b"acknowledged".to_vec(), b"later".to_vec()]
        );
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            (2 * HEADER + 12 + 5) as u64,
            "no refused byte stays"
        );
    }

    #[test]
    fn a_flipped_bit_stops_replay_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(b"good").unwrap();
        wal.append(b"bad!").unwrap();
        let path = segment_path(dir.path(), wal.current_seq());
        drop(wal);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert_eq!(read_all(dir.path(), 0), vec![b"good".to_vec()]);
    }
}
