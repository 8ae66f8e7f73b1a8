//! Pings on disk: each acknowledged batch is one Parquet segment, written to a temporary file,
//! synced, renamed into place and the directory synced, before the API answers. A crash
//! leaves whole segments or none; loading de-duplicates, so a compaction that died between
//! writing the merged segment and removing the old ones loses nothing and doubles nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use polars::prelude::*;

use crate::history::files::{write_table, FileFormat};

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
            chrono::Utc::now().timestamp_millis(),
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
        let segments = self.segments()?;
        let frames = segments
            .iter()
            .map(|path| read_segment(path))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(mut all) = frames.into_iter().reduce(|mut all, frame| {
            all.vstack_mut_owned(frame)
                .expect("segments share a schema");
            all
        }) else {
            return Ok(DataFrame::empty());
        };
        all.rechunk_mut();
        let since = all
            .column("timestamp")
            .and_then(|column| column.datetime().cloned())
            .map(|timestamps| timestamps.phys.gt_eq(since_ms))
            .map_err(|error| failed(&self.dir, error))?;
        all.filter(&since).map_err(|error| failed(&self.dir, error))
    }

    /// Merges the segments into one when there are more than `max_segments`, keeping the
    /// pings from `since_ms` on, without duplicates.
    pub fn compact(&self, since_ms: i64, max_segments: usize) -> Result<usize, SegmentError> {
        let segments = self.segments()?;
        if segments.len() <= max_segments {
            return Ok(0);
        }
        let mut merged = self.load(since_ms)?;
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
        if merged.height() > 0 {
            self.append(&mut merged)?;
        }
        for path in &segments {
            fs::remove_file(path).map_err(|error| failed(path, error))?;
        }
        sync_dir(&self.dir)?;
        Ok(segments.len())
    }
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
