#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| paystreams_fuzz::transaction(data));
