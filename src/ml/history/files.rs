//! Reading and writing history tables: CSV (optionally gzip) and Parquet, told apart by their
//! content rather than their name. The only part of `history` that touches the disk.

use std::fs;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use polars::prelude::*;

use super::{validate, HistoryError, TripHistory, ValidationOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    CsvGz,
}

impl FileFormat {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::CsvGz => "csv.gz",
        }
    }
}

/// Bounds on what a file may become as it is read: a few kilobytes of gzip can hold gigabytes,
/// and the `csv` crate holds a whole record in memory before it hands it over, however long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Bytes a gzip file may decompress to.
    pub max_decompressed_bytes: u64,
    /// Bytes of one CSV record, its line end included; a trip's row is a few hundred.
    pub max_record_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 4 * 1024 * 1024 * 1024,
            max_record_bytes: 1024 * 1024,
        }
    }
}

/// Why a table could not be read in chunks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Reading stopped at the bound: nothing beyond it was decompressed.
    #[error("the file decompresses to more than {limit} bytes")]
    DecompressedTooLarge { limit: u64 },
    /// Reading stopped soon after the bound, before the record was held whole.
    #[error("a CSV record is longer than {limit} bytes")]
    RecordTooLong { limit: u64 },
    #[error("{0}")]
    Unreadable(String),
}

const NOT_A_TABLE: &str = "not UTF-8 text, nor gzip, nor Parquet";

/// Reads one table. CSV columns all come back as text, so that the strict check can say which
/// row of which column does not parse; Parquet keeps its types.
pub fn read_table(path: &Path) -> Result<DataFrame, HistoryError> {
    let unreadable = |reason: String| HistoryError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    let bytes = fs::read(path).map_err(|error| unreadable(error.to_string()))?;
    parse_table(bytes).map_err(unreadable)
}

/// Parses a table from memory, whatever its format.
pub fn parse_table(bytes: Vec<u8>) -> Result<DataFrame, String> {
    if bytes.starts_with(b"PAR1") {
        return ParquetReader::new(Cursor::new(bytes))
            .finish()
            .map_err(|error| error.to_string());
    }
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let limit = ReadLimits::default().max_decompressed_bytes;
        let mut decoded = Vec::new();
        // One byte past the bound tells a file at the bound from one beyond it.
        MultiGzDecoder::new(bytes.as_slice())
            .take(limit.saturating_add(1))
            .read_to_end(&mut decoded)
            .map_err(|error| format!("not valid gzip: {error}"))?;
        if decoded.len() as u64 > limit {
            return Err(ReadError::DecompressedTooLarge { limit }.to_string());
        }
        decoded
    } else {
        bytes
    };
    if std::str::from_utf8(&text).is_err() {
        return Err(NOT_A_TABLE.into());
    }
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(Cursor::new(text))
        .finish()
        .map_err(|error| format!("not valid CSV: {error}"))
}

/// A table read a chunk of rows at a time, so that a file much larger than memory can be
/// checked: CSV (optionally gzip) record by record through the `csv` crate, which knows where
/// quoted fields end, each chunk then parsed as text like [`parse_table`] does; Parquet by
/// slices of rows.
pub struct TableChunks {
    source: ChunkSource,
    rows_per_chunk: usize,
    /// Bytes of the fields of a chunk, at most (besides `rows_per_chunk`): long rows make fewer
    /// rows a chunk, so that a chunk stays a few tens of megabytes whatever the rows hold.
    text_bytes_per_chunk: usize,
}

enum ChunkSource {
    Parquet {
        path: PathBuf,
        rows: usize,
        next: usize,
    },
    Csv {
        reader: Box<csv::Reader<Bounded>>,
        header: csv::ByteRecord,
        done: bool,
    },
}

const CHUNK_TEXT_BYTES: usize = 64 * 1024 * 1024;

/// How far the `csv` crate reads ahead of the record it parses: its buffer, with room to spare.
const READ_AHEAD_BYTES: u64 = 64 * 1024;

/// Opens `path` for reading in chunks of `rows_per_chunk` rows, within the default limits.
pub fn table_chunks(path: &Path, rows_per_chunk: usize) -> Result<TableChunks, ReadError> {
    table_chunks_within(path, rows_per_chunk, ReadLimits::default())
}

/// Opens `path` for reading in chunks of `rows_per_chunk` rows; a CSV file past `limits` is
/// refused as soon as reading reaches them.
pub fn table_chunks_within(
    path: &Path,
    rows_per_chunk: usize,
    limits: ReadLimits,
) -> Result<TableChunks, ReadError> {
    let unreadable = |error: io::Error| ReadError::Unreadable(error.to_string());
    let mut head = [0u8; 4];
    let read = fs::File::open(path)
        .and_then(|mut file| file.read(&mut head))
        .map_err(unreadable)?;
    let head = &head[..read];
    let source = if head.starts_with(b"PAR1") {
        let rows = ParquetReader::new(fs::File::open(path).map_err(unreadable)?)
            .num_rows()
            .map_err(|error| ReadError::Unreadable(error.to_string()))?;
        ChunkSource::Parquet {
            path: path.to_owned(),
            rows,
            next: 0,
        }
    } else {
        let file = io::BufReader::new(fs::File::open(path).map_err(unreadable)?);
        let input = if head.starts_with(&[0x1f, 0x8b]) {
            Bounded::decompressing(file, limits)
        } else {
            Bounded::plain(file, limits)
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(input);
        let header = reader.byte_headers().map_err(csv_error)?.clone();
        record_ended(&mut reader)?;
        if header
            .iter()
            .any(|field| std::str::from_utf8(field).is_err())
        {
            return Err(ReadError::Unreadable(NOT_A_TABLE.into()));
        }
        ChunkSource::Csv {
            reader: Box::new(reader),
            header,
            done: false,
        }
    };
    Ok(TableChunks {
        source,
        rows_per_chunk: rows_per_chunk.max(1),
        text_bytes_per_chunk: CHUNK_TEXT_BYTES,
    })
}

/// A CSV file's text as the `csv` crate reads it, failing as soon as it passes a limit: the
/// decompressed size (the decoder is never asked for more than one byte past it), or a record
/// much longer than allowed, before the crate has buffered it whole.
struct Bounded {
    input: Box<dyn Read + Send>,
    /// Bytes handed to the reader so far.
    read: u64,
    /// Where the record being read began, as the reader counts.
    record_start: u64,
    /// `None` for plain text: its size is the upload's, bounded as it came in.
    decompressed_limit: Option<u64>,
    record_limit: u64,
}

impl Bounded {
    fn decompressing(file: impl Read + Send + 'static, limits: ReadLimits) -> Self {
        let limit = limits.max_decompressed_bytes;
        let decoder = MultiGzDecoder::new(file).take(limit.saturating_add(1));
        Self {
            decompressed_limit: Some(limit),
            ..Self::plain(decoder, limits)
        }
    }

    fn plain(file: impl Read + Send + 'static, limits: ReadLimits) -> Self {
        Self {
            input: Box::new(file),
            read: 0,
            record_start: 0,
            decompressed_limit: None,
            record_limit: limits.max_record_bytes,
        }
    }
}

impl Read for Bounded {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.input.read(buffer)?;
        self.read += count as u64;
        if let Some(limit) = self.decompressed_limit {
            if self.read > limit {
                return Err(io::Error::other(ReadError::DecompressedTooLarge { limit }));
            }
        }
        let into_record = self.read.saturating_sub(self.record_start);
        if into_record > self.record_limit.saturating_add(READ_AHEAD_BYTES) {
            return Err(io::Error::other(ReadError::RecordTooLong {
                limit: self.record_limit,
            }));
        }
        Ok(count)
    }
}

/// Notes where the next record begins, and refuses the one just read if it is too long: the
/// reader's own check lets a little more through, by as much as the crate reads ahead.
fn record_ended(reader: &mut csv::Reader<Bounded>) -> Result<(), ReadError> {
    let end = reader.position().byte();
    let input = reader.get_mut();
    let length = end.saturating_sub(input.record_start);
    input.record_start = end;
    if length > input.record_limit {
        return Err(ReadError::RecordTooLong {
            limit: input.record_limit,
        });
    }
    Ok(())
}

fn csv_error(error: csv::Error) -> ReadError {
    if let csv::ErrorKind::Io(io_error) = error.kind() {
        let bound = io_error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ReadError>());
        if let Some(bound) = bound {
            return bound.clone();
        }
    }
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => ReadError::Unreadable(NOT_A_TABLE.into()),
        _ => ReadError::Unreadable(format!("not valid CSV: {error}")),
    }
}

impl Iterator for TableChunks {
    type Item = Result<DataFrame, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.source {
            ChunkSource::Parquet { path, rows, next } => {
                if *next >= *rows {
                    return None;
                }
                let length = self.rows_per_chunk.min(*rows - *next);
                let chunk = fs::File::open(&*path)
                    .map_err(|error| error.to_string())
                    .and_then(|file| {
                        ParquetReader::new(file)
                            .with_slice(Some((*next, length)))
                            .finish()
                            .map_err(|error| error.to_string())
                    });
                *next += length;
                Some(chunk.map_err(ReadError::Unreadable))
            }
            ChunkSource::Csv {
                reader,
                header,
                done,
            } => {
                if *done {
                    return None;
                }
                let mut text = csv::Writer::from_writer(Vec::new());
                let mut record = csv::ByteRecord::new();
                let (mut count, mut field_bytes) = (0, 0);
                if let Err(error) = text.write_byte_record(header) {
                    return Some(Err(csv_error(error)));
                }
                while count < self.rows_per_chunk && field_bytes < self.text_bytes_per_chunk {
                    let read = match reader.read_byte_record(&mut record) {
                        Ok(more) => record_ended(reader).map(|()| more),
                        Err(error) => Err(csv_error(error)),
                    };
                    match read {
                        Ok(true) => {
                            if let Err(error) = text.write_byte_record(&record) {
                                return Some(Err(csv_error(error)));
                            }
                            count += 1;
                            field_bytes += record.as_slice().len();
                        }
                        Ok(false) => {
                            *done = true;
                            break;
                        }
                        Err(error) => {
                            *done = true;
                            return Some(Err(error));
                        }
                    }
                }
                if count == 0 {
                    return None;
                }
                let bytes = match text.into_inner() {
                    Ok(bytes) => bytes,
                    Err(error) => return Some(Err(ReadError::Unreadable(error.to_string()))),
                };
                if std::str::from_utf8(&bytes).is_err() {
                    *done = true;
                    return Some(Err(ReadError::Unreadable(NOT_A_TABLE.into())));
                }
                Some(
                    CsvReadOptions::default()
                        .with_has_header(true)
                        .with_infer_schema_length(Some(0))
                        .into_reader_with_file_handle(Cursor::new(bytes))
                        .finish()
                        .map_err(|error| ReadError::Unreadable(format!("not valid CSV: {error}"))),
                )
            }
        }
    }
}

/// The trips (and pings, if any) of one history: a file of trips, or a directory holding
/// `trips.*` and optionally `pings.*` (`.parquet`, `.csv` or `.csv.gz`).
pub fn read_history(path: &Path) -> Result<(DataFrame, Option<DataFrame>), HistoryError> {
    if !path.is_dir() {
        return Ok((read_table(path)?, None));
    }
    let trips = find_table(path, "trips").ok_or_else(|| HistoryError::Unreadable {
        path: path.display().to_string(),
        reason: "no trips.parquet, trips.csv or trips.csv.gz in this directory".into(),
    })?;
    let pings = find_table(path, "pings")
        .map(|pings| read_table(&pings))
        .transpose()?;
    Ok((read_table(&trips)?, pings))
}

fn find_table(directory: &Path, stem: &str) -> Option<PathBuf> {
    ["parquet", "csv.gz", "csv"]
        .iter()
        .map(|extension| directory.join(format!("{stem}.{extension}")))
        .find(|candidate| candidate.is_file())
}

/// Reads and checks a history: the typed tables, or every problem and nothing kept.
pub fn load_history(path: &Path, options: &ValidationOptions) -> Result<TripHistory, HistoryError> {
    let (trips, pings) = read_history(path)?;
    validate(&trips, pings.as_ref(), options).map_err(HistoryError::Invalid)
}

/// Writes a table atomically: to a temporary file beside the target, then renamed over it, so
/// that a crash leaves either the old file or the new one, never half of one.
pub fn write_table(
    frame: &mut DataFrame,
    path: &Path,
    format: FileFormat,
) -> Result<(), HistoryError> {
    let unwritable = |reason: String| HistoryError::Unwritable {
        path: path.display().to_string(),
        reason,
    };
    let temporary = path.with_extension("partial");
    let mut file = fs::File::create(&temporary).map_err(|error| unwritable(error.to_string()))?;
    let written = match format {
        FileFormat::Parquet => ParquetWriter::new(&mut file)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(frame)
            .map(|_| ())
            .map_err(|error| error.to_string()),
        FileFormat::CsvGz => {
            let mut encoder = GzEncoder::new(&mut file, Compression::default());
            CsvWriter::new(&mut encoder)
                .include_header(true)
                .finish(frame)
                .map_err(|error| error.to_string())
                .and_then(|()| {
                    encoder
                        .finish()
                        .map(|_| ())
                        .map_err(|error| error.to_string())
                })
        }
    };
    // The data must be on disk before the rename makes it visible.
    let written = written.and_then(|()| file.sync_all().map_err(|error| error.to_string()));
    written
        .and_then(|()| fs::rename(&temporary, path).map_err(|error| error.to_string()))
        .map_err(|reason| {
            let _ = fs::remove_file(&temporary);
            unwritable(reason)
        })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    fn file_of(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file.flush().unwrap();
        file
    }

    /// The rows read, or the first error met.
    fn read(bytes: &[u8], limits: ReadLimits) -> Result<usize, ReadError> {
        let file = file_of(bytes);
        let mut rows = 0;
        for chunk in table_chunks_within(file.path(), 1_000, limits)? {
            rows += chunk?.height();
        }
        Ok(rows)
    }

    fn rows(count: usize) -> String {
        let mut text = String::from("trip_id,vehicle_class\n");
        for trip in 0..count {
            text.push_str(&format!("t{trip},articulated\n"));
        }
        text
    }

    fn limits(max_decompressed_bytes: u64, max_record_bytes: u64) -> ReadLimits {
        ReadLimits {
            max_decompressed_bytes,
            max_record_bytes,
        }
    }

    #[test]
    fn a_gzip_past_its_bound_is_refused_and_one_within_it_read() {
        let text = rows(20_000);
        let zipped = gzip(text.as_bytes());
        assert_eq!(
            read(&zipped, limits(64 * 1024, 1024)),
            Err(ReadError::DecompressedTooLarge { limit: 64 * 1024 })
        );
        let exactly = text.len() as u64;
        assert_eq!(read(&zipped, limits(exactly, 1024)), Ok(20_000));
        assert_eq!(
            read(&zipped, limits(exactly - 1, 1024)),
            Err(ReadError::DecompressedTooLarge { limit: exactly - 1 })
        );
        // The bound is on what gzip becomes: plain text is the upload's own size.
        assert_eq!(read(text.as_bytes(), limits(64 * 1024, 1024)), Ok(20_000));
    }

    #[test]
    fn a_record_past_its_bound_is_refused_however_far_it_goes() {
        for length in [2 * 1024, 10 * 1024 * 1024] {
            let text = format!("trip_id,vehicle_class\nt1,{}\n", "x".repeat(length));
            for bytes in [text.as_bytes().to_vec(), gzip(text.as_bytes())] {
                assert_eq!(
                    read(&bytes, limits(u64::MAX, 1024)),
                    Err(ReadError::RecordTooLong { limit: 1024 }),
                    "a field of {length} bytes"
                );
            }
        }
        let long_header = format!("{}\nt1\n", "x".repeat(4 * 1024));
        assert_eq!(
            read(long_header.as_bytes(), limits(u64::MAX, 1024)),
            Err(ReadError::RecordTooLong { limit: 1024 })
        );
        // The longest record, "t22\n", at the bound is within it.
        let short = b"id\nt1\nt22\n";
        assert_eq!(read(short, limits(u64::MAX, 4)), Ok(2));
        assert_eq!(
            read(short, limits(u64::MAX, 3)),
            Err(ReadError::RecordTooLong { limit: 3 })
        );
    }

    #[test]
    fn long_rows_make_chunks_of_fewer_rows_not_larger_ones() {
        let field = "x".repeat(1_000);
        let mut text = String::from("trip_id,note\n");
        for trip in 0..50 {
            text.push_str(&format!("t{trip},{field}\n"));
        }
        let file = file_of(text.as_bytes());
        let mut chunks = table_chunks(file.path(), 100_000).unwrap();
        chunks.text_bytes_per_chunk = 10_000;
        let heights: Vec<usize> = chunks.map(|chunk| chunk.unwrap().height()).collect();
        assert!(heights.iter().all(|height| *height <= 10), "{heights:?}");
        assert_eq!(heights.iter().sum::<usize>(), 50);
    }
}
