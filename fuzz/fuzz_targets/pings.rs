#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| etape_fuzz::pings::check(data));
