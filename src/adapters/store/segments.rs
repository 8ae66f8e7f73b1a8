//! Pings on disk: each acknowledged batch is one Parquet segment, written to a temporary file,
//! synced, renamed into place and the directory synced, before the API answers. A crash
//! leaves whole segments or none; loading de-duplicates, so a compaction that died between
//! writing the merged segment and removing the old ones loses nothing and doubles nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use polars::prelude::*;

use crate::domain::clock::Clock;
use crate::domain::storage::{StoreError, StoreResult};
use crate::ml::history::files::{write_table, FileFormat};
use crate::tracking::store::PingArchive;

const EXTENSION: &str = "parquet";

pub struct PingLog {
    dir: PathBuf,
    sequence: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("ping segment {path}: {reason}")]
pub struct SegmentError {
    pub path: String,
    pub reason: String,
}

fn failed(path: &Path, reason: impl std::fmt::Display) -> SegmentError {
    SegmentError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl PingLog {
    /// Opens the directory, creating it, and removes what a crash left half-written.
    pub fn open(dir: &Path) -> Result<Self, SegmentError> {
        fs::create_dir_all(dir).map_err(|error| failed(dir, error))?;
        for path in entries(dir)? {
            if path
                .extension()
                .is_some_and(|extension| extension == "partial")
            {
                fs::remove_file(&path).map_err(|error| failed(&path, error))?;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            sequence: AtomicU64::new(0),
        })
    }

    pub fn segments(&self) -> Result<Vec<PathBuf>, SegmentError> {
        let mut segments: Vec<PathBuf> = entries(&self.dir)?
            .into_iter()
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == EXTENSION)
            })
            .collect();
        segments.sort();
        Ok(segments)
    }

    /// Makes `frame` durable as a new segment.
    pub fn append(&self, frame: &mut DataFrame) -> Result<PathBuf, SegmentError> {
        let name = format!(
            "{:013}-{:06}-{}.{EXTENSION}",
            Clock::System.now().timestamp_millis(),
            self.sequence.fetch_add(1, Ordering::Relaxed) % 1_000_000,
            std::process::id()
        );
        let path = self.dir.join(name);
        write_table(frame, &path, FileFormat::Parquet).map_err(|error| failed(&path, error))?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// Every stored ping from `since_ms` on, unsorted and possibly with duplicates.
    pub fn load(&self, since_ms: i64) -> Result<DataFrame, SegmentError> {
        let mut all = self.stacked(&self.segments()?, since_ms)?;
        all.rechunk_mut();
        Ok(all)
    }

    /// The segments of `paths`, each cut to the pings from `since_ms` on, in one frame.
    fn stacked(&self, paths: &[PathBuf], since_ms: i64) -> Result<DataFrame, SegmentError> {
        let mut all = DataFrame::empty();
        self.read_each(paths, since_ms, |frame| {
            if all.width() == 0 {
                all = frame;
                Ok(())
            } else {
                all.vstack_mut_owned(frame).map(drop)
            }
        })?;
        Ok(all)
    }

    /// Hands each segment of `paths`, cut to the pings from `since_ms` on, to `take`, one at
    /// a time: memory holds one segment, however many there are.
    pub fn read_each(
        &self,
        paths: &[PathBuf],
        since_ms: i64,
        mut take: impl FnMut(DataFrame) -> PolarsResult<()>,
    ) -> Result<(), SegmentError> {
        for path in paths {
            let frame =
                since(read_segment(path)?, since_ms).map_err(|error| failed(path, error))?;
            take(frame).map_err(|error| failed(path, error))?;
        }
        Ok(())
    }

    /// When there are more than `max_segments`, merges the small segments a group at a time
    /// (each group into one segment of the pings from `since_ms` on, without duplicates) and
    /// removes the large ones whose every ping is older than `since_ms`. Memory stays bounded
    /// by a group's rows whatever the number of pings stored. Returns the segments removed.
    pub fn compact(&self, since_ms: i64, max_segments: usize) -> Result<usize, SegmentError> {
        let segments = self.segments()?;
        if segments.len() <= max_segments {
            return Ok(0);
        }
        let mut removed = 0;
        let mut group = Vec::new();
        let mut group_rows = 0;
        for path in segments {
            // Rows, not bytes: pings compress from tens of times to thousands of times (a
            // parked truck repeats itself), so bytes on disk say little about memory.
            let rows = segment_rows(&path)?;
            if rows > SMALL_SEGMENT_ROWS {
                if newest_ping(&path)?.is_none_or(|newest| newest < since_ms) {
                    fs::remove_file(&path).map_err(|error| failed(&path, error))?;
                    removed += 1;
                }
                continue;
            }
            if group_rows + rows > GROUP_ROWS && group.len() > 1 {
                removed += self.merge(&group, since_ms)?;
                group.clear();
                group_rows = 0;
            }
            group.push(path);
            group_rows += rows;
        }
        if group.len() > 1 {
            removed += self.merge(&group, since_ms)?;
        }
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// Replaces `group` by one segment of its pings from `since_ms` on, without duplicates.
    /// The merged segment is durable before any of the group is removed: a crash in between
    /// leaves duplicates, which loading removes.
    fn merge(&self, group: &[PathBuf], since_ms: i64) -> Result<usize, SegmentError> {
        let mut merged = self.stacked(group, since_ms)?;
        if merged.height() > 0 {
            merged = merged
                .unique_stable(
                    Some(&[
                        "organisation".into(),
                        "vehicle_id".into(),
                        "timestamp".into(),
                    ]),
                    UniqueKeepStrategy::First,
                    None,
                )
                .map_err(|error| failed(&self.dir, error))?;
            self.append(&mut merged)?;
        }
        for path in group {
            fs::remove_file(path).map_err(|error| failed(path, error))?;
        }
        Ok(group.len())
    }
}

/// Segments of up to this many pings are merged by compaction; larger ones are merged
/// already. A merged group holds up to `GROUP_ROWS` pings, about 100 MiB in memory.
const SMALL_SEGMENT_ROWS: usize = 250_000;
const GROUP_ROWS: usize = 1_000_000;

/// A segment's row count, from its footer.
fn segment_rows(path: &Path) -> Result<usize, SegmentError> {
    let file = fs::File::open(path).map_err(|error| failed(path, error))?;
    ParquetReader::new(file)
        .num_rows()
        .map_err(|error| failed(path, error))
}

/// The pings of `frame` from `since_ms` on.
fn since(frame: DataFrame, since_ms: i64) -> PolarsResult<DataFrame> {
    let keep = frame.column("timestamp")?.datetime()?.phys.gt_eq(since_ms);
    frame.filter(&keep)
}

/// The newest ping of a segment, reading its timestamps alone.
fn newest_ping(path: &Path) -> Result<Option<i64>, SegmentError> {
    let file = fs::File::open(path).map_err(|error| failed(path, error))?;
    let frame = ParquetReader::new(file)
        .with_columns(Some(vec!["timestamp".into()]))
        .finish()
        .map_err(|error| failed(path, error))?;
    let timestamps = frame
        .column("timestamp")
        .and_then(|column| column.datetime().cloned())
        .map_err(|error| failed(path, error))?;
    Ok(timestamps.phys.max())
}

fn read_segment(path: &Path) -> Result<DataFrame, SegmentError> {
    let file = fs::File::open(path).map_err(|error| failed(path, error))?;
    ParquetReader::new(file)
        .finish()
        .map_err(|error| failed(path, error))
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, SegmentError> {
    fs::read_dir(dir)
        .map_err(|error| failed(dir, error))?
        .map(|entry| {
            entry
                .map(|entry| entry.path())
                .map_err(|error| failed(dir, error))
        })
        .collect()
}

/// A rename is durable only once its directory is.
fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| failed(dir, error))
}

/// The tracker's archive in the embedded mode.
impl PingArchive for PingLog {
    fn append(&self, frame: &mut DataFrame) -> StoreResult<()> {
        // The frame is whole in memory: what fails here is the disk refusing to create, write,
        // sync or rename the segment (full, read-only, gone). Nothing was kept and the same
        // pings may be sent again once it accepts them: 503, not 500.
        PingLog::append(self, frame)
            .map(drop)
            .map_err(|error| StoreError::Unavailable(error.to_string()))
    }

    fn compact(&self, since_ms: i64, max_segments: usize) -> StoreResult<usize> {
        PingLog::compact(self, since_ms, max_segments).map_err(archive_error)
    }

    fn read_since(
        &self,
        since_ms: i64,
        take: &mut dyn FnMut(DataFrame) -> PolarsResult<()>,
    ) -> StoreResult<()> {
        let segments = self.segments().map_err(archive_error)?;
        self.read_each(&segments, since_ms, take)
            .map_err(archive_error)
    }
}

fn archive_error(error: SegmentError) -> StoreError {
    StoreError::Backend(error.to_string())
}
