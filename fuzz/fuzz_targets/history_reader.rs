#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| etape_fuzz::history_reader::check(data));
