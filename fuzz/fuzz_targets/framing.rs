//! Every framing's decoder on fuzzer-chosen bytes, maximum and reads: see
//! `sockit::fuzzing::framing` for the input layout and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::framing(data));
