//! Bytes shown safely in logs: text stays readable, everything else is escaped.
//!
//! # Examples
//!
//! ```
//! use sockit::Escaped;
//!
//! let message = b"bob\r\n\xff";
//! assert_eq!(format!("got {}", Escaped(message)), r#"got "bob\r\n\xff""#);
//! ```

use std::fmt;

/// Displays bytes as a quoted string: valid UTF-8 (Chinese included) as is,
/// control characters and quotes escaped as Rust does, invalid bytes as `\xNN`.
///
/// # Examples
///
/// ```
/// use sockit::Escaped;
///
/// assert_eq!(Escaped("你好\n".as_bytes()).to_string(), r#""你好\n""#);
/// assert_eq!(Escaped(b"a\xffb").to_string(), r#""a\xffb""#);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write!(f, "{}", c.escape_debug())?;
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_quotes_and_invalid_bytes() {
        assert_eq!(Escaped(b"client1").to_string(), "\"client1\"");
        assert_eq!(Escaped(b"\x00\r\n\t\"\\").to_string(), r#""\0\r\n\t\"\\""#);
        assert_eq!(Escaped(b"\xe4\xbd\xa0\xe4\xbd").to_string(), "\"你\\xe4\\xbd\"");
        assert_eq!(Escaped(b"").to_string(), "\"\"");
    }
}
