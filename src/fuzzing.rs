//! The bodies of the fuzz targets in `fuzz/`: each checks a decoder's
//! properties on one input and panics when one fails.
//!
//! They live in the library so that `cargo fuzz run <target>` and the corpus
//! replay in `tests/fuzz_corpus.rs` (plain `cargo test`, stable Rust) run the
//! same code. Not part of the API: hidden from the docs, free to change.
//!
//! A new decoder gets a function here, a line in [`TARGETS`], a file in
//! `fuzz/fuzz_targets/` and a `[[bin]]` in `fuzz/Cargo.toml`, and a folder in
//! `fuzz/corpus/`.
//!
//! # Examples
//!
//! Replaying one input through every target, as `tests/fuzz_corpus.rs` does
//! with the corpus:
//!
//! ```
//! for (_name, target) in sockit::fuzzing::TARGETS {
//!     target(b"\x02\x40\x00\x00PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nhello\n"); // panics on a failed property
//! }
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use bytes::BytesMut;

use crate::Framing;
use crate::framing::{Decoder, FrameError, Framed, Message};
use crate::icmp::{self, Echo, EchoKind, Ipv4Header, Version};
use crate::proxy::{self, Decoded};

/// A fuzz target's body: panics when a property fails on the input.
///
/// # Examples
///
/// ```
/// use sockit::fuzzing::Target;
///
/// let target: Target = sockit::fuzzing::icmp_parse;
/// target(b"\x08\x00\xf7\xfe\x00\x01\x00\x00");
/// ```
pub type Target = fn(&[u8]);

/// Every fuzz target by name (its folder in `fuzz/corpus/`), with its body.
///
/// # Examples
///
/// ```
/// let names: Vec<&str> = sockit::fuzzing::TARGETS.iter().map(|(name, _)| *name).collect();
/// assert_eq!(names, ["framing", "icmp_parse", "proxy_header"]);
/// ```
pub const TARGETS: &[(&str, Target)] = &[
    ("framing", framing),
    ("icmp_parse", icmp_parse),
    ("proxy_header", proxy_header),
];

/// The `framing` target: one framing, one maximum and one way of cutting a
/// stream into reads, all chosen by the input.
///
/// Layout: byte 0 picks the framing (`Framing::ALL[b % 4]`); bytes 1 and 2
/// give the maximum (`b1 << (b2 % 8)`, so 0 to 32640: small ones and the
/// 16 KiB read window are both reachable); byte 3 is a count `n`, the next `n`
/// bytes are read lengths (`b + 1`); the rest is the stream. See
/// [`check_framing`] for what is checked.
///
/// # Examples
///
/// ```
/// // `line` framing (2), maximum 64, reads of 3 bytes, then the stream.
/// sockit::fuzzing::framing(b"\x02\x40\x00\x01\x02bob\nalice\n");
/// ```
pub fn framing(data: &[u8]) {
    let [which, max, shift, count, rest @ ..] = data else {
        return;
    };
    let framing = Framing::ALL[usize::from(*which) % Framing::ALL.len()];
    let max = usize::from(*max) << (shift % 8);
    let (lengths, stream) = rest.split_at(usize::from(*count).min(rest.len()));
    let lengths: Vec<usize> = lengths.iter().map(|&b| usize::from(b) + 1).collect();
    check_framing(framing, max, stream, &lengths);
}

/// How a decoder took a stream apart.
#[derive(Debug, PartialEq)]
struct Run {
    messages: Vec<Message>,
    end: Result<(), FrameError>,
}

/// Decodes `stream` in reads of `lengths` (then of the read window), as a
/// connection does, and panics unless:
///
/// - no message is longer than the maximum, and between reads the decoder
///   keeps at most one maximum message and its framing (`line`, `auto`: the
///   maximum + 1, the byte that may be a `\r`; `len32`: the maximum + 3;
///   `raw`: nothing); the buffer's capacity never passes twice what it held
///   after the read or twice one whole frame, so no decoder reserves for a
///   length it has not checked;
/// - the messages, framing put back, spell the stream (up to the error, if
///   any), and the error is the right one for the bytes that caused it;
/// - `line` and `len32` give the same messages and error when the same
///   stream comes whole or one byte at a time;
/// - `raw` gives each read as one message, cut at the maximum;
/// - `auto`, which depends on reads by design, gives exactly what `line`
///   gives whenever no read is a `raw` one: a read with no `\n` that starts a
///   line (at the start or after a `\n`) and does not fill the read window.
///   That holds for the fuzzer's reads when it happens to, and always for
///   reads that end at every `\n`.
///
/// # Examples
///
/// ```
/// use sockit::Framing;
///
/// sockit::fuzzing::check_framing(Framing::Len32, 16, b"\0\0\0\x02hi\0\0\0\x01!", &[1, 5]);
/// ```
pub fn check_framing(framing: Framing, max: usize, stream: &[u8], lengths: &[usize]) {
    let window = Decoder::new(framing, max).read_size();
    let reads = cut(stream.len(), lengths, window);
    let run = decode_reads(framing, max, stream, &reads);
    spells(framing, max, stream, &run);
    match framing {
        Framing::Raw => {
            let expected: Vec<&[u8]> = reads
                .iter()
                .flat_map(|read| stream[read.clone()].chunks(max.max(1)))
                .collect();
            let got: Vec<&[u8]> = run.messages.iter().map(|m| &m.payload[..]).collect();
            assert_eq!(got, expected, "raw: one message per read");
            assert_eq!(run.end, Ok(()));
        }
        Framing::Line | Framing::Len32 => {
            let whole = decode_reads(framing, max, stream, &cut(stream.len(), &[], usize::MAX));
            assert_eq!(run, whole, "{framing}: split into {reads:?} or whole");
            // Byte by byte copies what is held at every byte: only for short streams.
            if stream.len() <= 1024 {
                let bytewise = decode_reads(framing, max, stream, &cut(stream.len(), &[], 1));
                assert_eq!(run, bytewise, "{framing}: whole or byte by byte");
            }
        }
        Framing::Auto => {
            let line = decode_reads(Framing::Line, max, stream, &cut(stream.len(), &[], usize::MAX));
            let no_raw_read =
                |reads: &[Range<usize>]| !reads.iter().any(|read| is_raw_read(stream, read, window));
            if no_raw_read(&reads) {
                assert_eq!(run, line, "auto in reads {reads:?} without a raw one, and line");
            }
            // Reads that end at every `\n` (a last line without one rides with
            // the line before it, or it would be a raw read), cut at the window.
            let mut ends: Vec<usize> = memchr::memchr_iter(b'\n', stream).map(|at| at + 1).collect();
            if !stream.ends_with(b"\n") {
                ends.pop();
            }
            ends.push(stream.len());
            let mut by_line = Vec::new();
            let mut start = 0;
            for end in ends {
                by_line.extend(stream[start..end].chunks(window).map(<[u8]>::len));
                start = end;
            }
            let reads = cut(stream.len(), &by_line, window);
            if no_raw_read(&reads) {
                let auto = decode_reads(framing, max, stream, &reads);
                assert_eq!(auto, line, "auto in reads {reads:?} that end at a \\n, and line");
            }
        }
    }
}

/// Cuts `0..len` into reads of `lengths`, then of `window`, none longer than `window`.
fn cut(len: usize, lengths: &[usize], window: usize) -> Vec<Range<usize>> {
    let mut reads = Vec::new();
    let mut start = 0;
    let mut lengths = lengths.iter().copied();
    while start < len {
        let want = lengths.next().unwrap_or(window).clamp(1, window);
        let end = start.saturating_add(want).min(len);
        reads.push(start..end);
        start = end;
    }
    reads
}

/// Whether `auto` takes this read as one `raw` message (see the `auto` docs).
fn is_raw_read(stream: &[u8], read: &Range<usize>, window: usize) -> bool {
    let starts_a_line = read.start == 0 || stream[read.start - 1] == b'\n';
    starts_a_line && read.len() < window && !stream[read.clone()].contains(&b'\n')
}

/// Decodes `stream` in `reads`, checking the size properties as it goes.
fn decode_reads(framing: Framing, max: usize, stream: &[u8], reads: &[Range<usize>]) -> Run {
    let mut decoder = Decoder::new(framing, max);
    let most_kept = match framing {
        Framing::Raw => 0,
        Framing::Line | Framing::Auto => max.saturating_add(1),
        Framing::Len32 => max.saturating_add(3),
    };
    let frame = max.saturating_add(4);
    let mut messages = Vec::new();
    let mut buf = BytesMut::new();
    // An empty stream still ends: one empty read, then the end.
    let empty = [Range { start: 0, end: 0 }];
    let reads = if reads.is_empty() { &empty[..] } else { reads };
    for (i, read) in reads.iter().enumerate() {
        // A buffer of exactly what is held, so that only the decoder can grow it.
        let read = &stream[read.clone()];
        let mut held = BytesMut::with_capacity(buf.len() + read.len());
        held.extend_from_slice(&buf);
        held.extend_from_slice(read);
        buf = held;
        let limit = 2 * buf.len().max(frame);
        let at_end = i == reads.len() - 1;
        loop {
            let next = if at_end {
                decoder.decode_eof(&mut buf)
            } else {
                decoder.decode(&mut buf)
            };
            assert!(
                buf.capacity() <= limit,
                "{framing}: capacity {} past {limit} (max {max})",
                buf.capacity()
            );
            match next {
                Ok(Some(message)) => {
                    let cap = if message.framed == Framed::Raw {
                        max.max(1)
                    } else {
                        max
                    };
                    assert!(
                        message.payload.len() <= cap,
                        "{framing}: a {}-byte message with max {max}",
                        message.payload.len()
                    );
                    messages.push(message);
                }
                Ok(None) => break,
                Err(end) => {
                    return Run {
                        messages,
                        end: Err(end),
                    };
                }
            }
        }
        assert!(
            buf.len() <= most_kept,
            "{framing}: kept {} bytes with max {max}",
            buf.len()
        );
        if at_end {
            assert!(buf.is_empty(), "{framing}: {} bytes left at the end", buf.len());
        }
    }
    Run {
        messages,
        end: Ok(()),
    }
}

/// Checks that the messages, framing put back, spell `stream` up to where
/// the run ended, and that its error is the one the next bytes call for.
fn spells(framing: Framing, max: usize, stream: &[u8], run: &Run) {
    let mut at = 0;
    for message in &run.messages {
        let payload = &message.payload[..];
        let rest = &stream[at..];
        match message.framed {
            Framed::Len32 => {
                let len = u32::try_from(payload.len()).expect("checked against max");
                assert!(rest.starts_with(&len.to_be_bytes()), "len32: header at {at}");
                at += 4;
            }
            Framed::Line => assert!(!payload.contains(&b'\n'), "{framing}: a line holds a \\n"),
            Framed::Raw => {}
        }
        assert!(stream[at..].starts_with(payload), "{framing}: message at {at}");
        at += payload.len();
        if message.framed == Framed::Line {
            let rest = &stream[at..];
            at += if rest.starts_with(b"\n") {
                1
            } else if rest.starts_with(b"\r\n") {
                2
            } else {
                assert!(
                    rest.is_empty(),
                    "{framing}: a line not ending in \\n before the end"
                );
                0
            };
        }
    }
    let rest = &stream[at..];
    match &run.end {
        Ok(()) => assert!(rest.is_empty(), "{framing}: {} bytes never came out", rest.len()),
        Err(FrameError::TooLong { limit, framed }) => {
            assert_eq!(*limit, max);
            let len = match framed {
                Framed::Len32 => {
                    let header = rest.first_chunk::<4>().expect("a whole header");
                    u32::from_be_bytes(*header) as usize
                }
                Framed::Line => match rest.iter().position(|&b| b == b'\n') {
                    Some(newline) => newline - usize::from(rest[..newline].ends_with(b"\r")),
                    None => rest.len(),
                },
                Framed::Raw => panic!("{framing}: raw messages are never too long"),
            };
            assert!(
                len > max,
                "{framing}: a {len}-byte message refused with max {max}"
            );
        }
        Err(FrameError::Truncated { missing }) => {
            assert_eq!(framing, Framing::Len32);
            let needed = match rest.first_chunk::<4>() {
                Some(header) => 4 + u32::from_be_bytes(*header) as usize,
                None => 4,
            };
            assert!(needed > rest.len(), "len32: a whole frame called truncated");
            assert_eq!(*missing, needed - rest.len());
        }
    }
}

/// The `icmp_parse` target: the parsers never panic, what they accept
/// re-encodes to the same bytes, and a message built from the input's first
/// bytes parses back to itself.
///
/// # Examples
///
/// ```
/// // An echo request, its checksum right.
/// sockit::fuzzing::icmp_parse(b"\x08\x00\xf7\xfe\x00\x01\x00\x00");
/// ```
pub fn icmp_parse(data: &[u8]) {
    let source = Ipv6Addr::from([1; 16]);
    let destination = Ipv6Addr::LOCALHOST;
    if let Ok(message) = icmp::parse_icmpv4(data) {
        reencodes(Version::V4, data, message);
    }
    if let Ok(message) = icmp::parse_icmpv6(data, None) {
        reencodes(Version::V6, data, message);
    }
    if let Ok(message) = icmp::parse_icmpv6(data, Some((source, destination))) {
        assert_eq!(icmp::icmpv6_checksum(source, destination, data), 0);
        reencodes(Version::V6, data, message);
    }
    if let Ok((header, message)) = icmp::parse_ipv4_icmp(data) {
        let header_len = usize::from(data[0] & 0x0f) * 4;
        let end = usize::from(header.total_length);
        assert!(header_len >= icmp::IPV4_HEADER_LEN && end <= data.len());
        assert_eq!(header.protocol, icmp::PROTOCOL_ICMP);
        assert_eq!(icmp::checksum(&data[..header_len]), 0);
        let ours = header.encode();
        // The fields `encode` writes (all but TOS, flags, fragment offset and
        // the checksum, which has two forms) are the ones read.
        assert_eq!(ours[2..6], data[2..6]);
        assert_eq!(ours[8..10], data[8..10]);
        assert_eq!(ours[12..20], data[12..20]);
        assert_eq!(icmp::parse_icmpv4(&data[header_len..end]), Ok(message));
    }

    // parse(build(x)) == x, with x taken from the input.
    let Some((&[flags, ttl, id0, id1, seq0, seq1], payload)) = data.split_first_chunk::<6>() else {
        return;
    };
    if payload.len() > icmp::MAX_PAYLOAD_V4 {
        return;
    }
    let (id, seq) = (u16::from_be_bytes([id0, id1]), u16::from_be_bytes([seq0, seq1]));
    let echo = Echo { id, seq, payload };
    let kind = if flags & 1 == 0 {
        EchoKind::Request
    } else {
        EchoKind::Reply
    };
    let expected = match kind {
        EchoKind::Request => icmp::Message::EchoRequest(echo),
        EchoKind::Reply => icmp::Message::EchoReply(echo),
    };
    let message = echo.encode(Version::V4, kind);
    assert_eq!(icmp::parse_icmpv4(&message), Ok(expected));
    let header = Ipv4Header::icmp(
        Ipv4Addr::new(192, 0, 2, ttl),
        Ipv4Addr::from(u32::from(seq) << 16 | u32::from(id)),
        id,
        ttl,
        message.len(),
    )
    .expect("a fuzz input fits one packet");
    let packet = [&header.encode()[..], &message].concat();
    assert_eq!(icmp::parse_ipv4_icmp(&packet), Ok((header, expected)));
    let mut message = echo.encode(Version::V6, kind);
    icmp::set_icmpv6_checksum(&mut message, source, destination);
    assert_eq!(
        icmp::parse_icmpv6(&message, Some((source, destination))),
        Ok(expected)
    );
}

/// Checks that a parsed message encodes back to `data` (the checksum aside).
fn reencodes(version: Version, data: &[u8], message: icmp::Message<'_>) {
    let (echo, kind) = match message {
        icmp::Message::EchoRequest(echo) => (echo, EchoKind::Request),
        icmp::Message::EchoReply(echo) => (echo, EchoKind::Reply),
        icmp::Message::Other { kind, code } => {
            assert_eq!((kind, code), (data[0], data[1]));
            return;
        }
    };
    let ours = echo.encode(version, kind);
    assert_eq!(ours.len(), data.len());
    assert_eq!((&ours[..2], &ours[4..]), (&data[..2], &data[4..]));
}

/// The `proxy_header` target: the PROXY header decoder on the bytes after
/// the first, which picks the v2 cap (16, 28, 52, 107, 232, 536, 1000 or
/// the spec's 65551, by `b % 8`). Panics unless:
///
/// - growing prefixes of the input are `Incomplete` up to one length, and
///   from there on all give the same answer (a header whose length is that
///   one, or the same error): the answer does not depend on how the bytes
///   came in reads;
/// - `Incomplete` never comes for 107 bytes or more of a v1 header, nor for
///   the cap or more of a v2 one: a caller never buffers past them;
/// - a header ends in CRLF (v1) or at its length field's end (v2), and
///   encodes back, in both versions, to bytes that decode to it.
///
/// # Examples
///
/// ```
/// sockit::fuzzing::proxy_header(b"\x03PROXY TCP4 192.0.2.1 192.0.2.2 5555 80\r\n");
/// ```
pub fn proxy_header(data: &[u8]) {
    let Some((&cap, buf)) = data.split_first() else {
        return;
    };
    const CAPS: [usize; 8] = [16, 28, 52, 107, 232, 536, 1000, proxy::V2_MAX_LEN];
    let cap = CAPS[usize::from(cap) % CAPS.len()];
    let limit = if buf.first() == Some(&b'P') {
        proxy::V1_MAX_LEN
    } else {
        cap
    };
    let mut decided = None;
    for end in 0..=buf.len() {
        let answer = proxy::decode_with_max(&buf[..end], cap);
        match decided {
            None if answer == Ok(Decoded::Incomplete) => {
                assert!(end < limit, "incomplete at {end} bytes, past {limit}");
            }
            None => decided = Some((end, answer)),
            Some((at, first)) => assert_eq!(answer, first, "at {end} bytes, and at {at}"),
        }
    }
    let Some((at, Ok(Decoded::Complete { header, len }))) = decided else {
        return;
    };
    assert_eq!(len, at, "a header known complete only at its end");
    assert!(len <= limit);
    if buf[0] == b'P' {
        assert_eq!(&buf[len - 2..len], b"\r\n");
    } else {
        assert_eq!(
            len,
            proxy::V2_FIXED_LEN + usize::from(u16::from_be_bytes([buf[14], buf[15]]))
        );
    }
    for bytes in [header.encode_v1(), header.encode_v2()] {
        let len = bytes.len();
        assert_eq!(proxy::decode(&bytes), Ok(Decoded::Complete { header, len }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes that matter to some framing, and a few that do not.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![b'a', b'\n', b'\r', 0, 1, 0xff]), 0..400)
    }

    proptest! {
        /// Every property of the `framing` target, on streams rich in `\n`,
        /// `\r` and short `len32` headers, for every framing.
        #[test]
        fn framings_hold_their_properties(
            which in 0usize..4,
            max in 0usize..40,
            stream in stream(),
            lengths in prop::collection::vec(1usize..60, 0..20),
        ) {
            check_framing(Framing::ALL[which], max, &stream, &lengths);
        }

        /// The same on arbitrary bytes through the target's own input layout.
        #[test]
        fn the_framing_target_holds_on_any_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
            framing(&data);
        }

        /// And the `icmp_parse` target.
        #[test]
        fn the_icmp_target_holds_on_any_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
            icmp_parse(&data);
        }
    }

    #[test]
    fn a_read_window_long_line_in_auto_is_a_line() {
        // max 16 KiB: the window (16 KiB) is shorter than a maximum line.
        let mut stream = vec![b'a'; 16 * 1024 + 10];
        stream.push(b'\n');
        check_framing(Framing::Auto, 16 * 1024, &stream, &[]);
        check_framing(Framing::Auto, 16 * 1024 + 8, &stream, &[100, 5000]);
    }
}
