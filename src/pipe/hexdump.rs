//! Pure: a conversation's bytes as a hex dump, each direction with its own
//! running offset, for `sockit nc --hex-dump` (what ncat's `--hex-dump` and
//! socat's `-x` show).
//!
//! # Examples
//!
//! ```
//! use sockit::pipe::{HexDump, Way};
//!
//! let mut dump = HexDump::default();
//! assert_eq!(
//!     dump.chunk(Way::Sent, b"GET / HTTP/1.0\r\n\r\n"),
//!     "> sent 18 bytes (0-17)\n\
//!      00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 30 0d 0a  |GET / HTTP/1.0..|\n\
//!      00000010  0d 0a                                             |..|\n"
//! );
//! assert_eq!(
//!     dump.chunk(Way::Received, b"ok"),
//!     "< received 2 bytes (0-1)\n\
//!      00000000  6f 6b                                             |ok|\n"
//! );
//! ```

use std::fmt::Write;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// To the peer.
    Sent,
    /// From the peer.
    Received,
}

/// The bytes each way so far, for the offsets of the next chunk.
#[derive(Debug, Clone, Default)]
pub struct HexDump {
    sent: u64,
    received: u64,
}

/// Bytes per line.
const WIDTH: usize = 16;

impl HexDump {
    /// One chunk that went `way`: a header line (`>` sent, `<` received,
    /// how many bytes, and their offsets in that direction), then lines of
    /// 16 bytes in hex and as ASCII (`.` for anything not printable), as
    /// `hexdump -C` writes them. Nothing for an empty chunk.
    pub fn chunk(&mut self, way: Way, bytes: &[u8]) -> String {
        let mut text = String::new();
        if bytes.is_empty() {
            return text;
        }
        let (mark, verb, offset) = match way {
            Way::Sent => ('>', "sent", &mut self.sent),
            Way::Received => ('<', "received", &mut self.received),
        };
        let start = *offset;
        let last = start + bytes.len() as u64 - 1;
        let _ = writeln!(text, "{mark} {verb} {} bytes ({start}-{last})", bytes.len());
        for (row, line) in bytes.chunks(WIDTH).enumerate() {
            let _ = write!(text, "{:08x} ", start + (row * WIDTH) as u64);
            for column in 0..WIDTH {
                if column == WIDTH / 2 {
                    text.push(' ');
                }
                match line.get(column) {
                    Some(byte) => {
                        let _ = write!(text, " {byte:02x}");
                    }
                    None => text.push_str("   "),
                }
            }
            text.push_str("  |");
            text.extend(line.iter().map(|&byte| {
                if (0x20..0x7f).contains(&byte) {
                    char::from(byte)
                } else {
                    '.'
                }
            }));
            text.push_str("|\n");
        }
        *offset += bytes.len() as u64;
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_run_on_per_direction() {
        let mut dump = HexDump::default();
        dump.chunk(Way::Sent, &[0; 20]);
        dump.chunk(Way::Received, b"a");
        let next = dump.chunk(Way::Sent, &[0xff; 3]);
        assert_eq!(
            next,
            "> sent 3 bytes (20-22)\n\
             00000014  ff ff ff                                          |...|\n"
        );
        assert_eq!(
            dump.chunk(Way::Received, b"b").lines().next(),
            Some("< received 1 bytes (1-1)")
        );
    }

    #[test]
    fn a_full_line_and_unprintable_bytes() {
        let mut dump = HexDump::default();
        let bytes: Vec<u8> = (0x78..0x88).collect();
        assert_eq!(
            dump.chunk(Way::Received, &bytes),
            "< received 16 bytes (0-15)\n\
             00000000  78 79 7a 7b 7c 7d 7e 7f  80 81 82 83 84 85 86 87  |xyz{|}~.........|\n"
        );
    }

    #[test]
    fn an_empty_chunk_shows_nothing() {
        assert_eq!(HexDump::default().chunk(Way::Sent, b""), "");
    }
}
