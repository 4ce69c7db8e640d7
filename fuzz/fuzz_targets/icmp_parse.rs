//! The ICMP, ICMPv6 and IPv4 parsers on fuzzer-chosen bytes: see
//! `sockit::fuzzing::icmp_parse` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::icmp_parse(data));
