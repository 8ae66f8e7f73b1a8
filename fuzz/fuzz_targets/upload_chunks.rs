//! Any bytes as an uploaded history file (CSV, gzip CSV or Parquet), read the way uploads are
//! checked: in chunks of rows, each through the strict reader. An error or chunks, never a
//! panic.
#![no_main]

use std::io::Write;

use etape::history::files::table_chunks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("a scratch file");
    file.write_all(data).expect("written");
    file.flush().expect("flushed");
    if let Ok(chunks) = table_chunks(file.path(), 7) {
        for chunk in chunks.take(64) {
            if chunk.is_err() {
                break;
            }
        }
    }
});
