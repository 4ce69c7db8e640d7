//! The PROXY protocol header decoder on fuzzer-chosen bytes and cap: see
//! `sockit::fuzzing::proxy_header` for the input layout and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::proxy_header(data));
