//! Reading and writing history tables: CSV (optionally gzip) and Parquet, told apart by their
//! content rather than their name. The only part of `history` that touches the disk.

use std::fs;
use std::io::{Cursor, Read};
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
        let mut decoded = Vec::new();
        MultiGzDecoder::new(bytes.as_slice())
            .read_to_end(&mut decoded)
            .map_err(|error| format!("not valid gzip: {error}"))?;
        decoded
    } else {
        bytes
    };
    if std::str::from_utf8(&text).is_err() {
        return Err("not UTF-8 text, nor gzip, nor Parquet".into());
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
}

enum ChunkSource {
    Parquet {
        path: PathBuf,
        rows: usize,
        next: usize,
    },
    Csv {
        reader: Box<csv::Reader<Box<dyn Read + Send>>>,
        header: csv::ByteRecord,
        done: bool,
    },
}

/// Opens `path` for reading in chunks of `rows_per_chunk` rows.
pub fn table_chunks(path: &Path, rows_per_chunk: usize) -> Result<TableChunks, String> {
    let mut head = [0u8; 4];
    let read = fs::File::open(path)
        .and_then(|mut file| file.read(&mut head))
        .map_err(|error| error.to_string())?;
    let head = &head[..read];
    let source = if head.starts_with(b"PAR1") {
        let rows = ParquetReader::new(fs::File::open(path).map_err(|error| error.to_string())?)
            .num_rows()
            .map_err(|error| error.to_string())?;
        ChunkSource::Parquet {
            path: path.to_owned(),
            rows,
            next: 0,
        }
    } else {
        let file =
            std::io::BufReader::new(fs::File::open(path).map_err(|error| error.to_string())?);
        let input: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(input);
        let header = reader
            .byte_headers()
            .map_err(|error| csv_error(&error))?
            .clone();
        if header
            .iter()
            .any(|field| std::str::from_utf8(field).is_err())
        {
            return Err("not UTF-8 text, nor gzip, nor Parquet".into());
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
    })
}

fn csv_error(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text, nor gzip, nor Parquet".into(),
        _ => format!("not valid CSV: {error}"),
    }
}

impl Iterator for TableChunks {
    type Item = Result<DataFrame, String>;

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
                Some(chunk)
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
                let mut count = 0;
                let written = text.write_byte_record(header).map_err(|e| csv_error(&e));
                if let Err(error) = written {
                    return Some(Err(error));
                }
                while count < self.rows_per_chunk {
                    match reader.read_byte_record(&mut record) {
                        Ok(true) => {
                            if let Err(error) = text.write_byte_record(&record) {
                                return Some(Err(csv_error(&error)));
                            }
                            count += 1;
                        }
                        Ok(false) => {
                            *done = true;
                            break;
                        }
                        Err(error) => {
                            *done = true;
                            return Some(Err(csv_error(&error)));
                        }
                    }
                }
                if count == 0 {
                    return None;
                }
                let bytes = match text.into_inner() {
                    Ok(bytes) => bytes,
                    Err(error) => return Some(Err(error.to_string())),
                };
                if std::str::from_utf8(&bytes).is_err() {
                    *done = true;
                    return Some(Err("not UTF-8 text, nor gzip, nor Parquet".into()));
                }
                Some(
                    CsvReadOptions::default()
                        .with_has_header(true)
                        .with_infer_schema_length(Some(0))
                        .into_reader_with_file_handle(Cursor::new(bytes))
                        .finish()
                        .map_err(|error| format!("not valid CSV: {error}")),
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
