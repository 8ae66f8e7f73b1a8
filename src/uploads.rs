//! Partners' history uploads on disk, one directory per organisation:
//! `<data_dir>/uploads/<organisation>/<upload id>/` holds `kept.<ext>` (the rows kept, in the
//! format they came in) and `trips.parquet` (the same rows, typed by the strict reader).
//!
//! An upload is staged in `.staging-<id>/`, synced and renamed into place, and only then
//! recorded in the store: a crash at any moment leaves either the whole upload, visible, or
//! nothing visible. Directories the store does not know are swept at start-up.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::history::files::parse_table;
use crate::history::{validate, ValidationOptions, ValidationReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadFormat {
    Csv,
    CsvGz,
    Parquet,
}

impl UploadFormat {
    /// Told apart by content, as the strict reader does.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(b"PAR1") {
            Self::Parquet
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Self::CsvGz
        } else {
            Self::Csv
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::CsvGz => "csv.gz",
            Self::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv",
            Self::CsvGz => "application/gzip",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub organisation: String,
    /// SHA-256 of the bytes received: the same content twice is one upload.
    pub sha256: String,
    pub format: UploadFormat,
    pub rows: usize,
    pub skipped_rows: usize,
    pub first_departure: Option<DateTime<Utc>>,
    pub last_departure: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An upload being received: written to its staging directory as it streams in.
pub struct Incoming {
    dir: PathBuf,
    file: fs::File,
    hasher: Sha256,
    bytes: u64,
    head: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    Invalid(ValidationReport),
    #[error("the file cannot be read: {0}")]
    Unreadable(String),
    #[error("storage failed: {0}")]
    Storage(String),
}

fn storage(error: impl std::fmt::Display) -> UploadError {
    UploadError::Storage(error.to_string())
}

pub struct UploadArea {
    root: PathBuf,
}

impl UploadArea {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("uploads"),
        }
    }

    fn organisation_dir(&self, organisation: &str) -> PathBuf {
        self.root.join(organisation)
    }

    pub fn dir(&self, organisation: &str, id: &str) -> PathBuf {
        self.organisation_dir(organisation).join(id)
    }

    /// Starts receiving an upload.
    pub fn begin(&self, organisation: &str, id: &str) -> Result<Incoming, UploadError> {
        let dir = self
            .organisation_dir(organisation)
            .join(format!(".staging-{id}"));
        fs::create_dir_all(&dir).map_err(storage)?;
        let file = fs::File::create(dir.join("received")).map_err(storage)?;
        Ok(Incoming {
            dir,
            file,
            hasher: Sha256::new(),
            bytes: 0,
            head: Vec::new(),
        })
    }

    /// Removes what crashes left: staging directories, and uploads the store does not know.
    pub fn sweep(&self, known: &[Upload]) -> Result<usize, UploadError> {
        let mut removed = 0;
        let Ok(organisations) = fs::read_dir(&self.root) else {
            return Ok(0);
        };
        for organisation in organisations.flatten() {
            let Ok(entries) = fs::read_dir(organisation.path()) else {
                continue;
            };
            let name = organisation.file_name().to_string_lossy().into_owned();
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                let recorded = known
                    .iter()
                    .any(|upload| upload.organisation == name && upload.id == id);
                if !recorded {
                    fs::remove_dir_all(entry.path()).map_err(storage)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Drops an upload's files.
    pub fn remove(&self, organisation: &str, id: &str) -> Result<(), UploadError> {
        match fs::remove_dir_all(self.dir(organisation, id)) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(storage(error)),
        }
    }

    /// The kept rows in the format they came in.
    pub fn export_path(&self, upload: &Upload) -> PathBuf {
        self.dir(&upload.organisation, &upload.id)
            .join(format!("kept.{}", upload.format.extension()))
    }
}

impl Incoming {
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        if self.head.len() < 4 {
            self.head
                .extend_from_slice(&chunk[..chunk.len().min(4 - self.head.len())]);
        }
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk).map_err(storage)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The received bytes' SHA-256, once all are in.
    pub fn finish(&mut self) -> Result<String, UploadError> {
        self.file.sync_all().map_err(storage)?;
        Ok(hex::encode(std::mem::take(&mut self.hasher).finalize()))
    }

    pub fn abandon(self) {
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// Checks the rows with the strict reader. All or nothing unless `skip_bad_rows`, which
    /// keeps the good rows and counts the others. On success the upload is renamed into
    /// `final_dir`, whole.
    pub fn check_and_commit(
        self,
        upload: &mut Upload,
        final_dir: &Path,
        skip_bad_rows: bool,
        options: &ValidationOptions,
    ) -> Result<ValidationReport, UploadError> {
        let outcome = self.check(upload, skip_bad_rows, options);
        match outcome {
            Ok(report) => {
                fs::rename(&self.dir, final_dir).map_err(storage)?;
                if let Some(parent) = final_dir.parent() {
                    fs::File::open(parent)
                        .and_then(|handle| handle.sync_all())
                        .map_err(storage)?;
                }
                Ok(report)
            }
            Err(error) => {
                self.abandon();
                Err(error)
            }
        }
    }

    fn check(
        &self,
        upload: &mut Upload,
        skip_bad_rows: bool,
        options: &ValidationOptions,
    ) -> Result<ValidationReport, UploadError> {
        let received = self.dir.join("received");
        upload.format = UploadFormat::sniff(&self.head);
        let bytes = fs::read(&received).map_err(storage)?;
        let raw = parse_table(bytes).map_err(UploadError::Unreadable)?;
        let (kept_raw, history, report) = match validate(&raw, None, options) {
            Ok(history) => (None, history, ValidationReport::default()),
            Err(report) if skip_bad_rows && report.bad_trip_rows.len() < raw.height() => {
                let bad: std::collections::HashSet<usize> =
                    report.bad_trip_rows.iter().copied().collect();
                let keep: BooleanChunked = (1..=raw.height())
                    .map(|record| !bad.contains(&record))
                    .collect();
                let kept = raw.filter(&keep).map_err(storage)?;
                // Rows that were only wrong together (a duplicated trip id) may still clash.
                let history = validate(&kept, None, options).map_err(UploadError::Invalid)?;
                (Some(kept), history, report)
            }
            Err(report) => return Err(UploadError::Invalid(report)),
        };
        let kept_path = self.dir.join(format!("kept.{}", upload.format.extension()));
        match kept_raw {
            None => fs::rename(&received, &kept_path).map_err(storage)?,
            Some(mut kept) => {
                write_raw(&mut kept, &kept_path, upload.format)?;
                fs::remove_file(&received).map_err(storage)?;
            }
        }
        let mut trips = history.trips;
        let typed = self.dir.join("trips.parquet");
        let mut file = fs::File::create(&typed).map_err(storage)?;
        ParquetWriter::new(&mut file)
            .finish(&mut trips)
            .map_err(storage)?;
        file.sync_all().map_err(storage)?;
        let departures = trips
            .column("departure_time")
            .and_then(|column| column.datetime().map(|dates| dates.phys.clone()))
            .map_err(storage)?;
        upload.rows = trips.height();
        upload.skipped_rows = report.bad_trip_rows.len();
        upload.first_departure = departures.min().and_then(DateTime::from_timestamp_millis);
        upload.last_departure = departures.max().and_then(DateTime::from_timestamp_millis);
        Ok(report)
    }
}

/// Writes rows as read (CSV text, or Parquet's own types) in `format`, synced.
fn write_raw(frame: &mut DataFrame, path: &Path, format: UploadFormat) -> Result<(), UploadError> {
    let mut file = fs::File::create(path).map_err(storage)?;
    match format {
        UploadFormat::Parquet => ParquetWriter::new(&mut file)
            .finish(frame)
            .map(|_| ())
            .map_err(storage)?,
        UploadFormat::Csv => CsvWriter::new(&mut file)
            .include_header(true)
            .finish(frame)
            .map_err(storage)?,
        UploadFormat::CsvGz => {
            let mut encoder = GzEncoder::new(&mut file, Compression::default());
            CsvWriter::new(&mut encoder)
                .include_header(true)
                .finish(frame)
                .map_err(storage)?;
            encoder.finish().map_err(storage)?;
        }
    }
    file.sync_all().map_err(storage)
}
