//! Pure: line endings turned into CRLF on the way out, for `sockit nc -C`
//! (nc's and ncat's `-C`), the line ending of HTTP, SMTP and most Internet
//! text protocols.
//!
//! # Examples
//!
//! ```
//! use sockit::pipe::Crlf;
//!
//! let mut crlf = Crlf::default();
//! let mut out = Vec::new();
//! crlf.convert(b"HELO a\nQUIT\r\n", &mut out);
//! assert_eq!(out, b"HELO a\r\nQUIT\r\n");
//! ```

/// Turns each `\n` not already after a `\r` into `\r\n`, across chunks: a
/// `\r` at the end of one chunk and a `\n` at the start of the next stay a
/// single line ending.
#[derive(Debug, Clone, Default)]
pub struct Crlf {
    after_cr: bool,
}

impl Crlf {
    /// Appends `input` to `out`, its bare line feeds made CRLF.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        let mut rest = input;
        while let Some(at) = rest.iter().position(|&byte| byte == b'\n') {
            let before = &rest[..at];
            let after_cr = before.last().map_or(self.after_cr, |&byte| byte == b'\r');
            out.extend_from_slice(before);
            if !after_cr {
                out.push(b'\r');
            }
            out.push(b'\n');
            self.after_cr = false;
            rest = &rest[at + 1..];
        }
        if let Some(&last) = rest.last() {
            self.after_cr = last == b'\r';
        }
        out.extend_from_slice(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converted(chunks: &[&[u8]]) -> Vec<u8> {
        let mut crlf = Crlf::default();
        let mut out = Vec::new();
        for chunk in chunks {
            crlf.convert(chunk, &mut out);
        }
        out
    }

    #[test]
    fn bare_line_feeds_become_crlf_and_crlf_stays() {
        assert_eq!(converted(&[b"a\nb\r\n\n"]), b"a\r\nb\r\n\r\n");
        assert_eq!(converted(&[b"\n"]), b"\r\n");
        assert_eq!(converted(&[b"no newline"]), b"no newline");
        assert_eq!(converted(&[b"\r\r\n"]), b"\r\r\n");
    }

    #[test]
    fn a_crlf_split_across_chunks_stays_one() {
        assert_eq!(converted(&[b"a\r", b"\nb"]), b"a\r\nb");
        assert_eq!(converted(&[b"a", b"\nb"]), b"a\r\nb");
        assert_eq!(converted(&[b"a\r", b"", b"\n"]), b"a\r\n");
        assert_eq!(converted(&[b"\r", b"x\n"]), b"\rx\r\n");
    }
}
