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

use std::collections::HashSet;

use crate::domain::storage::StoreResult;
use crate::ml::history::files::{table_chunks_within, ReadError, ReadLimits, TableChunks};
use crate::ml::history::{validate, Problem, Table, ValidationOptions, ValidationReport};

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
    /// Rows per chunk of the check.
    chunk_rows: usize,
    read_limits: ReadLimits,
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
    /// Past a bound of the reader, which stopped there: nothing beyond it was held.
    #[error("{0}")]
    TooLarge(String),
    #[error("storage failed: {0}")]
    Storage(String),
}

fn storage(error: impl std::fmt::Display) -> UploadError {
    UploadError::Storage(error.to_string())
}

fn read_error(error: ReadError) -> UploadError {
    match error {
        ReadError::Unreadable(reason) => UploadError::Unreadable(reason),
        bound @ (ReadError::DecompressedTooLarge { .. } | ReadError::RecordTooLong { .. }) => {
            UploadError::TooLarge(bound.to_string())
        }
    }
}

pub struct UploadArea {
    root: PathBuf,
    read_limits: ReadLimits,
}

impl UploadArea {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("uploads"),
            read_limits: ReadLimits::default(),
        }
    }

    /// The bounds the check of each upload begun here reads within.
    pub fn with_read_limits(mut self, read_limits: ReadLimits) -> Self {
        self.read_limits = read_limits;
        self
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
        // Only the service's user may read a partner's trips, whatever the umask: the
        // directory and its files are renamed into place as they were created.
        crate::partners::keys::create_private_dir(&dir).map_err(storage)?;
        let file = crate::partners::keys::create_private(&dir.join(RECEIVED)).map_err(storage)?;
        Ok(Incoming {
            dir,
            chunk_rows: CHUNK_ROWS,
            read_limits: self.read_limits,
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

    /// The upload's rows as they came in (or its good rows, when some were skipped).
    pub fn export(&self, upload: &Upload) -> Result<Vec<u8>, UploadError> {
        fs::read(self.export_path(upload)).map_err(storage)
    }
}

/// What an upload became.
#[derive(Debug)]
pub enum Committed {
    /// Kept, with the problems of the rows skipped (with `skip_bad_rows`).
    New(Upload, ValidationReport),
    /// The organisation had already uploaded the same bytes: that upload, nothing new kept.
    Known(Upload),
}

impl UploadArea {
    /// The commit protocol of an upload received whole in `incoming`: refused as a duplicate
    /// when the organisation already has the same bytes; otherwise checked (all or nothing
    /// unless `skip_bad_rows`), moved in place, and recorded last: until the record exists
    /// the upload is invisible, and a crash leaves a directory that the next start sweeps.
    pub fn commit(
        &self,
        store: &dyn UploadStore,
        mut incoming: Incoming,
        id: &str,
        organisation: &str,
        skip_bad_rows: bool,
        now: DateTime<Utc>,
    ) -> Result<Committed, UploadError> {
        let sha256 = incoming.finish()?;
        let existing = store
            .uploads(Some(organisation))
            .map_err(storage)?
            .into_iter()
            .find(|upload| upload.sha256 == sha256);
        if let Some(existing) = existing {
            incoming.abandon();
            return Ok(Committed::Known(existing));
        }
        let mut upload = Upload {
            id: id.to_owned(),
            organisation: organisation.to_owned(),
            sha256,
            format: UploadFormat::Csv,
            rows: 0,
            skipped_rows: 0,
            first_departure: None,
            last_departure: None,
            created_at: now,
        };
        let report = incoming.check_and_commit(
            &mut upload,
            &self.dir(organisation, id),
            skip_bad_rows,
            &ValidationOptions::default(),
        )?;
        if let Err(error) = store.insert_upload(&upload) {
            let _ = self.remove(organisation, id);
            return Err(storage(error));
        }
        Ok(Committed::New(upload, report))
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

    /// Checks the received file a chunk of rows at a time (memory stays bounded whatever the
    /// size of the upload), writing the typed rows to `trips.parquet` and, when rows are
    /// skipped, the kept raw rows beside it.
    fn check(
        &self,
        upload: &mut Upload,
        skip_bad_rows: bool,
        options: &ValidationOptions,
    ) -> Result<ValidationReport, UploadError> {
        upload.format = UploadFormat::sniff(&self.head);
        let chunks = self.chunks()?;
        let mut report = ValidationReport::default();
        let mut typed = ChunkWriter::new(self.dir.join("trips.parquet"), UploadFormat::Parquet);
        let kept_path = self.dir.join(format!("kept.{}", upload.format.extension()));
        let mut kept = ChunkWriter::new(self.dir.join("kept.partial"), upload.format);
        // Trip ids of earlier chunks, hashed: 64 bits make a false clash among a few million
        // ids about a one-in-a-million event, and keep the set at tens of megabytes.
        let mut seen: HashSet<u64> = HashSet::new();
        let (mut first, mut last): (Option<i64>, Option<i64>) = (None, None);
        let mut offset = 0;
        for chunk in chunks {
            let raw = chunk.map_err(read_error)?;
            let height = raw.height();
            let ids = trip_ids(&raw);
            let checked = validate_chunk(&raw, earlier_duplicates(&ids, &seen), options);
            let (good, good_rows) = match checked {
                Ok(trips) => (trips, None),
                Err(found) => {
                    let bad: HashSet<usize> = found.bad_trip_rows.iter().copied().collect();
                    merge(&mut report, found, offset, options.max_problems);
                    if !skip_bad_rows {
                        // Nothing is kept; the rest is read for a whole report.
                        seen.extend(ids.iter().flatten());
                        offset += height;
                        continue;
                    }
                    let (trips, kept_raw, keep) = without_rows(&raw, &bad, options)?;
                    (trips, Some((kept_raw, keep)))
                }
            };
            offset += height;
            if !report.is_clean() && !skip_bad_rows {
                seen.extend(ids.iter().flatten());
                continue;
            }
            match &good_rows {
                Some((kept_raw, keep)) => {
                    seen.extend(
                        ids.iter()
                            .zip(keep)
                            .filter_map(|(id, kept)| id.filter(|_| *kept)),
                    );
                    kept.write(kept_raw)?;
                }
                None => {
                    seen.extend(ids.iter().flatten());
                    if skip_bad_rows {
                        kept.write(&raw)?;
                    }
                }
            }
            let (earliest, latest) = departure_span(&good)?;
            first = first.into_iter().chain(earliest).min();
            last = last.into_iter().chain(latest).max();
            upload.rows += good.height();
            typed.write(&good)?;
        }
        report.trip_rows = offset;
        report.bad_trip_rows.sort_unstable();
        if !report.is_clean() && !skip_bad_rows {
            return Err(UploadError::Invalid(report));
        }
        if upload.rows == 0 {
            return Err(nothing_kept(report));
        }
        typed.finish()?;
        self.keep_file(kept, !report.bad_trip_rows.is_empty(), &kept_path)?;
        upload.skipped_rows = report.bad_trip_rows.len();
        upload.first_departure = first.and_then(DateTime::from_timestamp_millis);
        upload.last_departure = last.and_then(DateTime::from_timestamp_millis);
        Ok(report)
    }

    /// The received file, to be read a chunk of rows at a time within the area's bounds.
    fn chunks(&self) -> Result<TableChunks, UploadError> {
        let received = self.dir.join(RECEIVED);
        table_chunks_within(&received, self.chunk_rows, self.read_limits).map_err(read_error)
    }

    /// The file kept for export is the one received, or, when rows were skipped, the good
    /// rows in the received format.
    fn keep_file(
        &self,
        kept: ChunkWriter,
        skipped: bool,
        kept_path: &Path,
    ) -> Result<(), UploadError> {
        let received = self.dir.join(RECEIVED);
        if skipped {
            kept.finish()?;
            fs::rename(self.dir.join("kept.partial"), kept_path).map_err(storage)?;
            fs::remove_file(&received).map_err(storage)?;
        } else {
            kept.abandon();
            fs::rename(&received, kept_path).map_err(storage)?;
        }
        Ok(())
    }
}

/// Rows per chunk of an upload's check: a few tens of megabytes of text at a time.
const CHUNK_ROWS: usize = 100_000;

/// Each row's `trip_id`, hashed; `None` where it is missing or not text.
fn trip_ids(raw: &DataFrame) -> Vec<Option<u64>> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    match raw
        .column("trip_id")
        .and_then(|column| column.str().cloned())
    {
        Ok(ids) => ids
            .iter()
            .map(|id| id.map(|id| hasher.hash_one(id)))
            .collect(),
        Err(_) => vec![None; raw.height()],
    }
}

/// Adds a chunk's problems to the upload's, rows counted from the start of the file; a problem
/// with the table as a whole (a missing column) is said once.
fn merge(report: &mut ValidationReport, found: ValidationReport, offset: usize, limit: usize) {
    for mut problem in found.problems {
        match problem.row {
            Some(row) => problem.row = Some(row + offset),
            None if report.problems.contains(&problem) => continue,
            None => {}
        }
        report.total += 1;
        if report.problems.len() < limit {
            report.problems.push(problem);
        }
    }
    report
        .bad_trip_rows
        .extend(found.bad_trip_rows.into_iter().map(|row| row + offset));
}

/// A file written a chunk at a time in one of the upload formats, synced when finished.
struct ChunkWriter {
    path: PathBuf,
    format: UploadFormat,
    open: Option<OpenWriter>,
}

enum OpenWriter {
    Parquet(Box<polars::io::parquet::write::BatchedWriter<fs::File>>),
    Csv(Box<polars::io::csv::write::BatchedWriter<fs::File>>),
    CsvGz(Box<polars::io::csv::write::BatchedWriter<GzEncoder<fs::File>>>),
}

/// The received bytes, as they came, in an upload's directory.
const RECEIVED: &str = "received";

fn problem(row: Option<usize>, column: &str, reason: &str) -> Problem {
    Problem {
        table: Table::Trips,
        row,
        column: column.into(),
        reason: reason.into(),
    }
}

/// A chunk without its bad rows (numbered from 1), checked again: rows that were only wrong
/// together (a duplicated trip id) may still clash. The typed trips, the raw rows kept, and
/// which rows those are.
fn without_rows(
    raw: &DataFrame,
    bad: &HashSet<usize>,
    options: &ValidationOptions,
) -> Result<(DataFrame, DataFrame, Vec<bool>), UploadError> {
    let keep: Vec<bool> = (1..=raw.height())
        .map(|record| !bad.contains(&record))
        .collect();
    let mask: BooleanChunked = keep.iter().copied().collect();
    let kept_raw = raw.filter(&mask).map_err(storage)?;
    let history = validate(&kept_raw, None, options).map_err(UploadError::Invalid)?;
    Ok((history.trips, kept_raw, keep))
}

/// The earliest and latest departures of typed trips, in milliseconds.
fn departure_span(trips: &DataFrame) -> Result<(Option<i64>, Option<i64>), UploadError> {
    let departures = trips
        .column("departure_time")
        .and_then(|column| column.datetime().map(|dates| dates.phys.clone()))
        .map_err(storage)?;
    Ok((departures.min(), departures.max()))
}

/// An upload of which no row is left: its problems, or that it holds no trip at all.
fn nothing_kept(mut report: ValidationReport) -> UploadError {
    if report.is_clean() {
        report.total = 1;
        report
            .problems
            .push(problem(None, "", "the file holds no trip"));
    }
    UploadError::Invalid(report)
}

/// The rows of a chunk whose trip id an earlier chunk already had.
fn earlier_duplicates(ids: &[Option<u64>], seen: &HashSet<u64>) -> ValidationReport {
    let mut report = ValidationReport {
        trip_rows: ids.len(),
        ..ValidationReport::default()
    };
    for (index, id) in ids.iter().enumerate() {
        if id.is_some_and(|id| seen.contains(&id)) {
            report.total += 1;
            report.problems.push(problem(
                Some(index + 1),
                "trip_id",
                "duplicate trip_id, first in an earlier row",
            ));
            report.bad_trip_rows.push(index + 1);
        }
    }
    report
}

/// A chunk through the strict reader: its typed trips, or every problem, the duplicates of
/// earlier chunks included.
fn validate_chunk(
    raw: &DataFrame,
    duplicates: ValidationReport,
    options: &ValidationOptions,
) -> Result<DataFrame, ValidationReport> {
    match validate(raw, None, options) {
        Ok(history) if duplicates.is_clean() => Ok(history.trips),
        Ok(_) => Err(duplicates),
        Err(mut found) => {
            found.total += duplicates.total;
            found.problems.extend(duplicates.problems);
            found.bad_trip_rows.extend(duplicates.bad_trip_rows);
            found.bad_trip_rows.sort_unstable();
            found.bad_trip_rows.dedup();
            Err(found)
        }
    }
}

impl ChunkWriter {
    fn new(path: PathBuf, format: UploadFormat) -> Self {
        Self {
            path,
            format,
            open: None,
        }
    }

    fn write(&mut self, frame: &DataFrame) -> Result<(), UploadError> {
        if self.open.is_none() {
            let file = crate::partners::keys::create_private(&self.path).map_err(storage)?;
            let schema = frame.schema();
            self.open = Some(match self.format {
                UploadFormat::Parquet => OpenWriter::Parquet(Box::new(
                    ParquetWriter::new(file).batched(schema).map_err(storage)?,
                )),
                UploadFormat::Csv => OpenWriter::Csv(Box::new(
                    CsvWriter::new(file)
                        .include_header(true)
                        .batched(schema)
                        .map_err(storage)?,
                )),
                UploadFormat::CsvGz => OpenWriter::CsvGz(Box::new(
                    CsvWriter::new(GzEncoder::new(file, Compression::default()))
                        .include_header(true)
                        .batched(schema)
                        .map_err(storage)?,
                )),
            });
        }
        let mut frame = frame.clone();
        frame.rechunk_mut();
        match self.open.as_mut().expect("opened above") {
            OpenWriter::Parquet(writer) => writer.write_batch(&frame),
            OpenWriter::Csv(writer) => writer.write_batch(&frame),
            OpenWriter::CsvGz(writer) => writer.write_batch(&frame),
        }
        .map_err(storage)
    }

    fn finish(self) -> Result<(), UploadError> {
        match self.open {
            Some(OpenWriter::Parquet(writer)) => {
                writer.finish().map_err(storage)?;
            }
            Some(OpenWriter::Csv(mut writer)) => writer.finish().map_err(storage)?,
            Some(OpenWriter::CsvGz(mut writer)) => writer.finish().map_err(storage)?,
            None => return Ok(()),
        }
        fs::File::open(&self.path)
            .and_then(|file| file.sync_all())
            .map_err(storage)
    }

    fn abandon(self) {
        drop(self.open);
        let _ = fs::remove_file(&self.path);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub organisation: String,
    pub pool: bool,
    pub updated_at: DateTime<Utc>,
}

/// Where uploads' records and each organisation's consent are kept.
pub trait UploadStore: Send + Sync + 'static {
    fn insert_upload(&self, upload: &Upload) -> StoreResult<()>;

    /// One organisation's uploads, or everyone's, oldest first.
    fn uploads(&self, organisation: Option<&str>) -> StoreResult<Vec<Upload>>;

    /// False when the organisation has no such upload.
    fn delete_upload(&self, organisation: &str, id: &str) -> StoreResult<bool>;

    /// Whether the organisation's rows may train the pooled model; `None` until it says.
    fn consent(&self, organisation: &str) -> StoreResult<Option<Consent>>;

    fn set_consent(&self, consent: &Consent) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "trip_id,vehicle_class,origin_lat,origin_lon,destination_lat,destination_lon,departure_time,arrival_time,distance_km,stops,dwell_minutes,load_tonnes";
    const ROW: &str = "articulated,50.6292,3.0573,43.3026,5.3691,2025-03-04T05:40:00+01:00,2025-03-05T07:55:00+01:00,1003.5,0,0,21.4";

    /// Five trips read two at a time; the fourth repeats the first's id, across chunks.
    fn incoming(area: &UploadArea, id: &str) -> Incoming {
        let mut text = format!("{HEADER}\n");
        for trip in ["a", "b", "c", "a", "e"] {
            text.push_str(&format!("{trip},{ROW}\n"));
        }
        let mut incoming = area.begin("org", id).unwrap();
        incoming.chunk_rows = 2;
        incoming.write(text.as_bytes()).unwrap();
        incoming.finish().unwrap();
        incoming
    }

    fn upload(id: &str) -> Upload {
        Upload {
            id: id.into(),
            organisation: "org".into(),
            sha256: String::new(),
            format: UploadFormat::Csv,
            rows: 0,
            skipped_rows: 0,
            first_departure: None,
            last_departure: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_duplicate_across_chunks_is_named_by_its_row_in_the_file() {
        let data = tempfile::tempdir().unwrap();
        let area = UploadArea::new(data.path());
        let options = ValidationOptions::default();

        let mut whole = upload("one");
        let refused = incoming(&area, "one")
            .check_and_commit(&mut whole, &area.dir("org", "one"), false, &options)
            .unwrap_err();
        let UploadError::Invalid(report) = refused else {
            panic!("{refused}");
        };
        assert_eq!(report.trip_rows, 5);
        assert_eq!(report.bad_trip_rows, [4]);
        assert_eq!(report.problems[0].column, "trip_id");
        assert!(!area.dir("org", "one").exists(), "nothing kept");

        let mut partly = upload("two");
        let report = incoming(&area, "two")
            .check_and_commit(&mut partly, &area.dir("org", "two"), true, &options)
            .unwrap();
        assert_eq!(report.bad_trip_rows, [4]);
        assert_eq!((partly.rows, partly.skipped_rows), (4, 1));
        let kept = fs::read_to_string(area.export_path(&partly)).unwrap();
        let ids: Vec<&str> = kept
            .lines()
            .skip(1)
            .map(|line| line.split(',').next().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b", "c", "e"]);
        let typed = ParquetReader::new(
            fs::File::open(area.dir("org", "two").join("trips.parquet")).unwrap(),
        )
        .finish()
        .unwrap();
        assert_eq!(typed.height(), 4);
    }
}
