//! Framing: how messages are cut out of a byte stream, and how replies are put back in.
//!
//! Pure code over [`BytesMut`], shared by the server, the client and the load
//! generator so that all three agree on bytes. `../PROTOCOL.md` defines each
//! framing; one module per framing holds its decoder:
//!
//! - [`raw`]: a message is exactly what one read returned (the seed's `recv(1024)`);
//! - [`line`](mod@line): a message is the bytes up to `\n`, a trailing `\r` removed;
//! - [`len32`]: a 4-byte big-endian length, then that many bytes;
//! - [`auto`]: lines when the peer sends lines, `raw` when it does not.
//!
//! A decoder returns `Ok(Some(message))`, `Ok(None)` for "need more bytes", or a
//! [`FrameError`]; it never buffers more than the maximum message size allows.
//!
//! # Examples
//!
//! A `line` message in, its reply framed the same way out:
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::Framing;
//! use sockit::framing::{Decoder, DEFAULT_MAX_MESSAGE};
//!
//! let mut decoder = Decoder::new(Framing::Line, DEFAULT_MAX_MESSAGE);
//! let mut buf = BytesMut::from(&b"bob\r\n"[..]);
//! let message = decoder.decode(&mut buf)?.unwrap();
//! let mut out = BytesMut::new();
//! message.framed.encode(&[b"Hello, ", &message.payload, b"!"], &mut out);
//! assert_eq!(&out[..], b"Hello, bob!\n");
//! # Ok::<(), sockit::framing::FrameError>(())
//! ```

pub mod auto;
pub mod len32;
pub mod line;
pub mod raw;

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

/// The default maximum message size: 64 KiB.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::{Decoder, DEFAULT_MAX_MESSAGE};
/// use sockit::Framing;
///
/// assert_eq!(DEFAULT_MAX_MESSAGE, 65_536);
/// let mut decoder = Decoder::new(Framing::Len32, DEFAULT_MAX_MESSAGE);
/// let mut buf = BytesMut::from(&b"\x00\x01\x00\x01"[..]); // announces 65,537 bytes
/// assert!(decoder.decode(&mut buf).is_err());
/// ```
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// How a listener or a client cuts messages out of a byte stream.
///
/// # Examples
///
/// ```
/// use sockit::Framing;
///
/// let framing: Framing = "len32".parse()?;
/// assert_eq!(framing, Framing::Len32);
/// assert_eq!(Framing::default(), Framing::Auto);
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Framing {
    /// Lines when a read ends in `\n`, otherwise one read is one message.
    #[default]
    Auto,
    /// One read is one message (the seed's framing).
    Raw,
    /// A message is a line ending in `\n` (a trailing `\r` is removed too).
    Line,
    /// A 4-byte big-endian length, then that many bytes.
    Len32,
}

impl Framing {
    /// Every framing, in the order `--help` lists them.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Framing;
    ///
    /// let names: Vec<_> = Framing::ALL.iter().map(|framing| framing.name()).collect();
    /// assert_eq!(names, ["auto", "raw", "line", "len32"]);
    /// ```
    pub const ALL: [Framing; 4] = [Framing::Auto, Framing::Raw, Framing::Line, Framing::Len32];

    /// The name used on the command line.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Framing;
    ///
    /// assert_eq!(Framing::Len32.name(), "len32");
    /// assert_eq!(Framing::Len32.to_string(), "len32");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Framing::Auto => "auto",
            Framing::Raw => "raw",
            Framing::Line => "line",
            Framing::Len32 => "len32",
        }
    }

    /// How a message is framed when it is sent first, before the peer has
    /// shown which framing it speaks (a greeting; a client's request).
    ///
    /// `auto` sends like `raw`: no terminator, as the seed does.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Framing;
    /// use sockit::framing::Framed;
    ///
    /// assert_eq!(Framing::Auto.sending(), Framed::Raw);
    /// assert_eq!(Framing::Line.sending(), Framed::Line);
    /// ```
    pub fn sending(self) -> Framed {
        match self {
            Framing::Auto | Framing::Raw => Framed::Raw,
            Framing::Line => Framed::Line,
            Framing::Len32 => Framed::Len32,
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Framing {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Framing::ALL
            .into_iter()
            .find(|framing| framing.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown framing {text:?}: expected auto, raw, line or len32"))
    }
}

/// How one message was framed on the wire, and so how its replies are framed.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::Framed;
///
/// let mut out = BytesMut::new();
/// Framed::Raw.encode(&[b"client1"], &mut out);
/// assert_eq!(&out[..], b"client1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framed {
    /// Bare bytes, no terminator.
    Raw,
    /// Bytes followed by `\n`.
    Line,
    /// A 4-byte big-endian length, then the bytes.
    Len32,
}

impl Framed {
    /// Appends one message, made of `parts` back to back, framed this way.
    ///
    /// # Panics
    ///
    /// Panics if a `len32` message is 4 GiB or longer.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    ///
    /// let mut out = BytesMut::new();
    /// Framed::Line.encode(&[b"Hello, ", b"bob", b"!"], &mut out);
    /// Framed::Len32.encode(&[b"hi"], &mut out);
    /// assert_eq!(&out[..], b"Hello, bob!\n\0\0\0\x02hi");
    /// ```
    pub fn encode(self, parts: &[&[u8]], out: &mut BytesMut) {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        match self {
            Framed::Raw => out.reserve(len),
            Framed::Line => out.reserve(len + 1),
            Framed::Len32 => {
                out.reserve(len + 4);
                let len = u32::try_from(len).expect("a len32 message is shorter than 4 GiB");
                out.put_u32(len);
            }
        }
        for part in parts {
            out.extend_from_slice(part);
        }
        if self == Framed::Line {
            out.put_u8(b'\n');
        }
    }
}

/// One message cut out of the stream, with the framing it came in.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::{Framed, Message, len32};
///
/// let mut buf = BytesMut::from(&b"\0\0\0\x03bob"[..]);
/// let message: Message = len32::decode(&mut buf, 1024)?.unwrap();
/// assert_eq!(message.payload, "bob");
/// assert_eq!(message.framed, Framed::Len32);
/// # Ok::<(), sockit::framing::FrameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's bytes, framing removed.
    pub payload: Bytes,
    /// How it was framed, which is how its replies are framed.
    pub framed: Framed,
}

/// A message taken that was longer than this leaves what follows it in a
/// buffer of its own (a copy, once: for a connection, less than one read),
/// so that the allocation that held the message goes back once the message
/// is dropped, rather than stay with the connection.
const SHRINK_AFTER: usize = 64 * 1024;

/// Where the next whole message lies at the front of a buffer, found
/// without taking it: its payload is `buf[start..end]`, and `taken` bytes,
/// its framing included, come off the buffer with it.
///
/// Each framing finds; [`Found::take`] then cuts the message off as a
/// [`Message`] of its own, or [`Found::drop_from`] drops it after it was
/// lent in place. Either must follow before the next search, which starts
/// where this message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    start: usize,
    end: usize,
    taken: usize,
    framed: Framed,
}

impl Found {
    /// The first `len` bytes as one message, nothing around them.
    fn bare(len: usize, framed: Framed) -> Self {
        Found {
            start: 0,
            end: len,
            taken: len,
            framed,
        }
    }

    /// Cuts the message off the front of `buf`.
    fn take(self, buf: &mut BytesMut) -> Message {
        let mut payload = buf.split_to(self.taken);
        payload.truncate(self.end);
        bytes::Buf::advance(&mut payload, self.start);
        if self.taken >= SHRINK_AFTER {
            *buf = BytesMut::from(&buf[..]);
        }
        Message {
            payload: payload.freeze(),
            framed: self.framed,
        }
    }

    /// Drops the message, lent in place, off the front of `buf`; a buffer it
    /// empties is cleared, keeping all its room for the next read.
    #[inline]
    fn drop_from(self, buf: &mut BytesMut) {
        if self.taken == buf.len() {
            buf.clear();
        } else if self.taken >= SHRINK_AFTER {
            *buf = BytesMut::from(&buf[self.taken..]);
        } else {
            bytes::Buf::advance(buf, self.taken);
        }
    }
}

/// Why the bytes on a stream are not a message.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::{FrameError, Framed, line};
///
/// let mut buf = BytesMut::from(&b"much too long\n"[..]);
/// let err = line::decode(&mut buf, 4).unwrap_err();
/// assert_eq!(err, FrameError::TooLong { limit: 4, framed: Framed::Line });
/// assert_eq!(err.to_string(), "message too long: more than 4 bytes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A message is longer than the maximum message size.
    #[error("message too long: more than {limit} bytes")]
    TooLong {
        /// The maximum message size in force.
        limit: usize,
        /// The framing the message came in, to frame the error reply.
        framed: Framed,
    },
    /// The stream ended inside a `len32` frame.
    #[error("the stream ended inside a frame: {missing} of its bytes never came")]
    Truncated {
        /// How many bytes the frame still lacked.
        missing: usize,
    },
}

impl FrameError {
    /// The reply a peer gets before the connection closes, if it gets one.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::framing::FrameError;
    ///
    /// assert_eq!(FrameError::REPLY, b"ERR message too long");
    /// ```
    pub const REPLY: &'static [u8] = b"ERR message too long";

    /// Appends the error reply PROTOCOL.md defines for this error, framed as the
    /// message that caused it (`ERR message too long\n` for lines).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::{FrameError, Framed};
    ///
    /// let mut out = BytesMut::new();
    /// FrameError::TooLong { limit: 4, framed: Framed::Len32 }.encode_reply(&mut out);
    /// assert_eq!(&out[..], b"\0\0\0\x14ERR message too long");
    /// ```
    pub fn encode_reply(&self, out: &mut BytesMut) {
        if let FrameError::TooLong { framed, .. } = self {
            framed.encode(&[Self::REPLY], out);
        }
    }
}

/// Cuts messages out of one stream in one [`Framing`], remembering what it
/// needs between reads.
///
/// Call [`decode`](Decoder::decode) after every read until it returns
/// `Ok(None)`: `raw` and `auto` treat each read as a unit, so a read must be
/// decoded before the next one is appended. Between calls the buffer may
/// only grow at its end: `line` and `auto` remember how far they searched
/// what they left in it, so that a long line is searched once, not once per
/// read.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::{Decoder, Framed};
/// use sockit::Framing;
///
/// let mut decoder = Decoder::new(Framing::Auto, 1024);
/// let mut buf = BytesMut::from(&b"bob\nalice\r\nca"[..]);
/// assert_eq!(decoder.decode(&mut buf)?.unwrap().payload, "bob");
/// let alice = decoder.decode(&mut buf)?.unwrap();
/// assert_eq!((&alice.payload[..], alice.framed), (&b"alice"[..], Framed::Line));
/// assert_eq!(decoder.decode(&mut buf)?, None); // "ca" waits for its newline
/// # Ok::<(), sockit::framing::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    framing: Framing,
    max_message: usize,
    auto: auto::State,
    /// How far the line in progress was searched (`line`, `auto`).
    line: line::State,
}

impl Decoder {
    /// A decoder for `framing` that refuses messages longer than `max_message` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::framing::Decoder;
    /// use sockit::Framing;
    ///
    /// let decoder = Decoder::new(Framing::Line, 1024);
    /// assert_eq!(decoder.framing(), Framing::Line);
    /// ```
    pub fn new(framing: Framing, max_message: usize) -> Self {
        Decoder {
            framing,
            max_message,
            auto: auto::State::default(),
            line: line::State::default(),
        }
    }

    /// The framing this decoder cuts.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::framing::Decoder;
    /// use sockit::Framing;
    ///
    /// assert_eq!(Decoder::new(Framing::Raw, 1024).framing(), Framing::Raw);
    /// ```
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The longest message this decoder takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::framing::Decoder;
    /// use sockit::Framing;
    ///
    /// assert_eq!(Decoder::new(Framing::Line, 1024).max_message(), 1024);
    /// ```
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// The most bytes one read should bring: up to 16 KiB, and never more
    /// than one maximum message (`raw`: one read is one message) or one
    /// maximum line with its `\r\n` (the others).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::framing::Decoder;
    /// use sockit::Framing;
    ///
    /// assert_eq!(Decoder::new(Framing::Raw, 1024).read_size(), 1024);
    /// assert_eq!(Decoder::new(Framing::Line, 1024).read_size(), 1026);
    /// assert_eq!(Decoder::new(Framing::Line, 1 << 20).read_size(), 16 * 1024);
    /// ```
    pub fn read_size(&self) -> usize {
        const WINDOW: usize = 16 * 1024;
        match self.framing {
            Framing::Raw => self.max_message.clamp(1, WINDOW),
            _ => self.max_message.saturating_add(2).min(WINDOW),
        }
    }

    /// Takes the next whole message off the front of `buf`.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] when the next message is longer than the maximum;
    /// the stream cannot be resynchronised after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Decoder;
    /// use sockit::Framing;
    ///
    /// let mut decoder = Decoder::new(Framing::Len32, 1024);
    /// let mut buf = BytesMut::from(&b"\0\0\0\x02hi\0\0"[..]);
    /// assert_eq!(decoder.decode(&mut buf)?.unwrap().payload, "hi");
    /// assert_eq!(decoder.decode(&mut buf)?, None); // half a header
    /// assert_eq!(&buf[..], b"\0\0");
    /// # Ok::<(), sockit::framing::FrameError>(())
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        Ok(self.find(buf)?.map(|found| found.take(buf)))
    }

    /// Where the next whole message in `buf` lies, as [`decode`](Decoder::decode)
    /// would take it.
    fn find(&mut self, buf: &mut BytesMut) -> Result<Option<Found>, FrameError> {
        match self.framing {
            Framing::Raw => Ok(raw::find(buf, self.max_message)),
            Framing::Line => self.line.find(buf, self.max_message),
            Framing::Len32 => len32::find(buf, self.max_message),
            Framing::Auto => {
                let window = self.read_size();
                self.auto.find(&mut self.line, buf, self.max_message, window)
            }
        }
    }

    /// Takes what is left in `buf` once the stream has ended: a last line
    /// without its `\n` is still a message, if it is no longer than the maximum.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] when the stream ended inside a `len32` frame;
    /// [`FrameError::TooLong`] when the last line is longer than the maximum
    /// (it may be one byte longer while it waits: that byte could have been
    /// the `\r` of its `\r\n`).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::{Decoder, FrameError};
    /// use sockit::Framing;
    ///
    /// let mut lines = Decoder::new(Framing::Line, 1024);
    /// let mut buf = BytesMut::from(&b"bye"[..]);
    /// assert_eq!(lines.decode(&mut buf)?, None);
    /// assert_eq!(lines.decode_eof(&mut buf)?.unwrap().payload, "bye");
    ///
    /// let mut frames = Decoder::new(Framing::Len32, 1024);
    /// let mut buf = BytesMut::from(&b"\0\0\0\x05abc"[..]);
    /// assert_eq!(frames.decode_eof(&mut buf), Err(FrameError::Truncated { missing: 2 }));
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        Ok(self.find_eof(buf)?.map(|found| found.take(buf)))
    }

    /// Where the next message in `buf` lies once the stream has ended, as
    /// [`decode_eof`](Decoder::decode_eof) would take it.
    fn find_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Found>, FrameError> {
        if let Some(found) = self.find(buf)? {
            return Ok(Some(found));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        match self.framing {
            Framing::Len32 => Err(FrameError::Truncated {
                missing: len32::missing(buf),
            }),
            _ if buf.len() > self.max_message => Err(FrameError::TooLong {
                limit: self.max_message,
                framed: Framed::Line,
            }),
            _ => {
                self.line = line::State::default();
                Ok(Some(Found::bare(buf.len(), Framed::Line)))
            }
        }
    }

    /// Takes the next whole message off the front of `buf` as
    /// [`decode`](Decoder::decode) does (or, at the `end_of_stream`,
    /// [`decode_eof`](Decoder::decode_eof)), and lends it to `f` instead of
    /// returning it: what `f` returns, if there was a message.
    ///
    /// The message is lent in place, in every framing, not cut off the
    /// buffer into [`Bytes`] of its own first (a shared allocation made the
    /// first time, then a reference count taken and dropped per message),
    /// and a buffer it empties is cleared, keeping all its room for the
    /// next read.
    #[inline]
    pub(crate) fn decode_with<R>(
        &mut self,
        buf: &mut BytesMut,
        end_of_stream: bool,
        f: impl FnOnce(&[u8], Framed) -> R,
    ) -> Result<Option<R>, FrameError> {
        let found = if self.framing == Framing::Raw {
            // Found here, without the match of `find`: echo's framing. At
            // the end of the stream too: `raw` has nothing to finish.
            raw::find(buf, self.max_message)
        } else if end_of_stream {
            self.find_eof(buf)?
        } else {
            self.find(buf)?
        };
        let Some(found) = found else {
            return Ok(None);
        };
        let answered = f(&buf[found.start..found.end], found.framed);
        found.drop_from(buf);
        Ok(Some(answered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `input` to a fresh decoder in pieces cut at `cuts`, decoding after
    /// every piece as a connection does, and returns the messages and how it ended.
    pub(crate) fn decode_in_pieces(
        framing: Framing,
        max: usize,
        input: &[u8],
        cuts: &[usize],
    ) -> (Vec<Message>, Result<(), FrameError>, usize) {
        let mut decoder = Decoder::new(framing, max);
        let mut buf = BytesMut::new();
        let mut messages = Vec::new();
        let mut most_buffered = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        bounds.push(input.len());
        bounds.sort_unstable();
        let mut start = 0;
        for end in bounds {
            buf.extend_from_slice(&input[start..end]);
            start = end;
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => break,
                    Err(e) => return (messages, Err(e), most_buffered),
                }
            }
            most_buffered = most_buffered.max(buf.len());
        }
        match decoder.decode_eof(&mut buf) {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => {}
            Err(e) => return (messages, Err(e), most_buffered),
        }
        (messages, Ok(()), most_buffered)
    }

    /// Every connection holds one: a field more must not make it larger.
    #[test]
    fn a_decoder_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Decoder>(), 16);
    }

    #[test]
    fn framing_names_round_trip() {
        for framing in Framing::ALL {
            assert_eq!(framing.name().parse::<Framing>(), Ok(framing));
            assert_eq!(framing.to_string(), framing.name());
        }
        let err = "lines".parse::<Framing>().unwrap_err();
        assert_eq!(
            err,
            "unknown framing \"lines\": expected auto, raw, line or len32"
        );
    }

    #[test]
    fn encodes_each_framing() {
        let mut out = BytesMut::new();
        Framed::Raw.encode(&[b"Hello, ", b"x", b"!"], &mut out);
        assert_eq!(&out[..], b"Hello, x!");
        out.clear();
        Framed::Line.encode(&[b"Hello, ", b"x", b"!"], &mut out);
        assert_eq!(&out[..], b"Hello, x!\n");
        out.clear();
        Framed::Len32.encode(&[b"Hello, ", b"x", b"!"], &mut out);
        assert_eq!(&out[..], b"\x00\x00\x00\x09Hello, x!");
        out.clear();
        Framed::Len32.encode(&[], &mut out);
        assert_eq!(&out[..], b"\x00\x00\x00\x00");
    }

    #[test]
    fn error_replies_are_framed_like_the_message() {
        let mut out = BytesMut::new();
        let err = FrameError::TooLong {
            limit: 4,
            framed: Framed::Line,
        };
        err.encode_reply(&mut out);
        assert_eq!(&out[..], b"ERR message too long\n");
        out.clear();
        let err = FrameError::TooLong {
            limit: 4,
            framed: Framed::Len32,
        };
        err.encode_reply(&mut out);
        assert_eq!(&out[..], b"\x00\x00\x00\x14ERR message too long");
    }

    #[test]
    fn a_last_line_without_newline_is_a_message() {
        let (messages, end, _) = decode_in_pieces(Framing::Line, 64, b"a\nb", &[]);
        assert_eq!(end, Ok(()));
        let payloads: Vec<_> = messages.iter().map(|m| &m.payload[..]).collect();
        assert_eq!(payloads, [&b"a"[..], b"b"]);
    }

    /// Regression: a line waits with one byte over the maximum (it could be
    /// the `\r` of `\r\n`); when the stream ended there, that line was
    /// delivered, one byte longer than the maximum.
    #[test]
    fn a_last_line_over_the_maximum_is_refused() {
        let too_long = Err(FrameError::TooLong {
            limit: 4,
            framed: Framed::Line,
        });
        for framing in [Framing::Line, Framing::Auto] {
            for last in [&b"abcde"[..], b"abcd\r"] {
                let input = [&b"ok\n"[..], last].concat();
                let (messages, end, _) = decode_in_pieces(framing, 4, &input, &[]);
                let payloads: Vec<_> = messages.iter().map(|m| &m.payload[..]).collect();
                assert_eq!(payloads, [&b"ok"[..]], "{framing}");
                assert_eq!(end, too_long, "{framing}");
            }
            let (messages, end, _) = decode_in_pieces(framing, 4, b"ok\nabcd", &[]);
            assert_eq!(end, Ok(()));
            assert_eq!(&messages[1].payload[..], b"abcd");
        }
    }

    #[test]
    fn a_stream_ending_inside_a_len32_frame_is_truncated() {
        let (messages, end, _) = decode_in_pieces(Framing::Len32, 64, b"\0\0\0\x05abc", &[]);
        assert!(messages.is_empty());
        assert_eq!(end, Err(FrameError::Truncated { missing: 2 }));
        let (_, end, _) = decode_in_pieces(Framing::Len32, 64, b"\0\0", &[]);
        assert_eq!(end, Err(FrameError::Truncated { missing: 2 }));
    }

    fn encode_all(framed: Framed, messages: &[Vec<u8>]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for message in messages {
            framed.encode(&[message], &mut out);
        }
        out.to_vec()
    }

    proptest! {
        /// decode(encode(x)) == x, however the bytes are split into reads.
        #[test]
        fn len32_round_trips_under_any_split(
            messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
            cuts in prop::collection::vec(0usize..7000, 0..12),
        ) {
            let input = encode_all(Framed::Len32, &messages);
            let (decoded, end, _) = decode_in_pieces(Framing::Len32, 300, &input, &cuts);
            prop_assert_eq!(end, Ok(()));
            let payloads: Vec<Vec<u8>> = decoded.iter().map(|m| m.payload.to_vec()).collect();
            prop_assert_eq!(payloads, messages);
        }

        /// Lines without `\n` or a trailing `\r` come back unchanged under any split.
        #[test]
        fn line_round_trips_under_any_split(
            messages in prop::collection::vec(
                prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..300)
                    .prop_map(|mut v| { while v.last() == Some(&b'\r') { v.pop(); } v }),
                0..20),
            cuts in prop::collection::vec(0usize..7000, 0..12),
        ) {
            let input = encode_all(Framed::Line, &messages);
            let (decoded, end, _) = decode_in_pieces(Framing::Line, 300, &input, &cuts);
            prop_assert_eq!(end, Ok(()));
            let payloads: Vec<Vec<u8>> = decoded.iter().map(|m| m.payload.to_vec()).collect();
            prop_assert_eq!(payloads, messages);
        }

        /// Any bytes, any split, any framing: no panic, and the buffer never
        /// holds more than one maximum message (plus its framing and one read).
        #[test]
        fn never_panics_nor_buffers_past_the_limit(
            input in prop::collection::vec(any::<u8>(), 0..4000),
            cuts in prop::collection::vec(0usize..4000, 0..12),
            max in 1usize..200,
            which in 0usize..4,
        ) {
            let framing = Framing::ALL[which];
            let (_, _, most_buffered) = decode_in_pieces(framing, max, &input, &cuts);
            prop_assert!(most_buffered <= max + 4, "{framing}: buffered {most_buffered} with max {max}");
        }

        /// Splitting the input differently gives the same messages (or the same error)
        /// for the framings that do not depend on read boundaries.
        #[test]
        fn same_result_under_any_split(
            input in prop::collection::vec(prop::sample::select(vec![b'a', b'\n', b'\r', 0, 1, 0xff]), 0..600),
            cuts in prop::collection::vec(0usize..600, 0..12),
            max in 1usize..50,
            len32 in any::<bool>(),
        ) {
            let framing = if len32 { Framing::Len32 } else { Framing::Line };
            let whole = decode_in_pieces(framing, max, &input, &[]);
            let split = decode_in_pieces(framing, max, &input, &cuts);
            prop_assert_eq!(whole.0, split.0);
            prop_assert_eq!(whole.1, split.1);
        }
    }

    /// As [`decode_in_pieces`], through [`Decoder::decode_with`]: copies of
    /// the messages lent, and how it ended.
    fn decode_with_in_pieces(
        framing: Framing,
        max: usize,
        input: &[u8],
        cuts: &[usize],
    ) -> (Vec<Message>, Result<(), FrameError>) {
        let mut decoder = Decoder::new(framing, max);
        let mut buf = BytesMut::new();
        let mut messages = Vec::new();
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        bounds.push(input.len());
        bounds.sort_unstable();
        let mut start = 0;
        let pieces = bounds.into_iter().map(Some).chain([None]);
        for end in pieces {
            if let Some(end) = end {
                buf.extend_from_slice(&input[start..end]);
                start = end;
            }
            loop {
                let lent = decoder.decode_with(&mut buf, end.is_none(), |payload, framed| Message {
                    payload: Bytes::copy_from_slice(payload),
                    framed,
                });
                match lent {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => break,
                    Err(e) => return (messages, Err(e)),
                }
            }
        }
        (messages, Ok(()))
    }

    /// A long message lent in place leaves what follows it in a small
    /// buffer of its own, as one taken does; a short one leaves the buffer.
    #[test]
    fn a_long_message_lent_leaves_the_rest_in_a_small_buffer() {
        for framing in [Framing::Line, Framing::Len32] {
            let mut decoder = Decoder::new(framing, 1 << 20);
            let mut buf = BytesMut::with_capacity(1 << 20);
            framing.sending().encode(&[&[b'x'; SHRINK_AFTER]], &mut buf);
            buf.extend_from_slice(b"rest");
            let len = decoder.decode_with(&mut buf, false, |message, _| message.len());
            assert_eq!(len, Ok(Some(SHRINK_AFTER)), "{framing}");
            assert_eq!(&buf[..], b"rest", "{framing}");
            assert!(buf.capacity() < 1024, "{framing}: {} bytes kept", buf.capacity());

            let mut buf = BytesMut::with_capacity(1 << 20);
            framing.sending().encode(&[b"short"], &mut buf);
            buf.extend_from_slice(b"rest");
            let lent = decoder.decode_with(&mut buf, false, |message, _| message.to_vec());
            assert_eq!(lent, Ok(Some(b"short".to_vec())), "{framing}");
            assert_eq!(&buf[..], b"rest", "{framing}");
            assert!(
                buf.capacity() > 1 << 19,
                "{framing}: {} bytes kept",
                buf.capacity()
            );
        }
    }

    proptest! {
        /// `decode_with` lends the messages `decode` returns, in every
        /// framing, however the bytes are split into reads.
        #[test]
        fn decode_with_lends_what_decode_returns(
            input in prop::collection::vec(prop::sample::select(vec![b'a', b'\n', b'\r', 0, 1, 0xff]), 0..600),
            cuts in prop::collection::vec(0usize..600, 0..12),
            max in 1usize..50,
            which in 0usize..4,
        ) {
            let framing = Framing::ALL[which];
            let (returned, end, _) = decode_in_pieces(framing, max, &input, &cuts);
            let (lent, lent_end) = decode_with_in_pieces(framing, max, &input, &cuts);
            prop_assert_eq!(lent, returned, "{}", framing);
            prop_assert_eq!(lent_end, end, "{}", framing);
        }
    }
}
