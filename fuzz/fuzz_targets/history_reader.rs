//! Any bytes, as a trips table and as its own pings table: the reader and the strict check
//! must answer with a table or a report, never a panic.
#![no_main]

use etape::history::files::parse_table;
use etape::history::{validate, ValidationOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = parse_table(data.to_vec()) {
        let _ = validate(&frame, Some(&frame), &ValidationOptions::default());
    }
});
