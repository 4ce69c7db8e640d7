//! Bulk TCP traffic for the relay loads of `bench/compare.py`: a backend
//! that takes (`sink`) or gives (`source`) a stream per connection, and the
//! clients that give (`upload`) or take (`download`) it, through whatever
//! relay sits between them. Every byte is a known pattern, checked where
//! it arrives: a relay that loses, adds or reorders a byte fails the run.
//!
//! ```text
//! bulk sink 127.0.0.1:9000                       # reads each connection to its end
//! bulk source 127.0.0.1:9000 1G                  # writes 1 GiB to each connection
//! bulk upload 127.0.0.1:8000 1G                  # sends 1 GiB, half-closes, waits for the close
//! bulk download 127.0.0.1:8000 1G                # reads to the end, expects 1 GiB
//! ```
//!
//! `upload` and `download` print one JSON line: `{"bytes": N, "seconds": S}`.
//! Plain blocking sockets and a thread per connection: the load, not the
//! thing measured.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Instant;

/// One system call's worth of bytes.
const CHUNK: usize = 256 * 1024;

/// The byte at `offset` of every stream: not all zeros (a relay could
/// not fake it), cheap to make and check.
fn pattern_byte(offset: u64) -> u8 {
    (offset ^ (offset >> 11) ^ (offset >> 23)) as u8
}

/// Fills `buf` with the pattern from `offset`.
fn fill(buf: &mut [u8], offset: u64) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte = pattern_byte(offset + i as u64);
    }
}

/// Whether `buf` holds the pattern from `offset`.
fn holds_pattern(buf: &[u8], offset: u64) -> bool {
    buf.iter()
        .enumerate()
        .all(|(i, byte)| *byte == pattern_byte(offset + i as u64))
}

/// Writes `total` bytes of the pattern to `stream`.
fn give(stream: &mut TcpStream, total: u64) -> io::Result<()> {
    // The pattern repeats every 2^23 bytes only in part, so each chunk is made
    // afresh; making it costs the client, not the relay.
    let mut buf = vec![0; CHUNK];
    let mut sent = 0;
    while sent < total {
        let len = usize::try_from((total - sent).min(CHUNK as u64)).expect("a chunk fits");
        fill(&mut buf[..len], sent);
        stream.write_all(&buf[..len])?;
        sent += len as u64;
    }
    Ok(())
}

/// Reads `stream` to its end, checking the pattern; the bytes read.
fn take(stream: &mut TcpStream) -> io::Result<u64> {
    let mut buf = vec![0; CHUNK];
    let mut got = 0;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(got);
        }
        if !holds_pattern(&buf[..n], got) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the bytes at {got}..{} are not what was sent", got + n as u64),
            ));
        }
        got += n as u64;
    }
}

fn size(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size"))?;
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("{text:?}: the unit is K, M or G")),
    };
    Ok(number * scale)
}

/// Serves each connection on a thread of its own with `serve`.
fn backend(
    address: &str,
    serve: impl Fn(TcpStream) -> io::Result<()> + Send + Copy + 'static,
) -> io::Result<()> {
    let listener = TcpListener::bind(address)?;
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || {
            if let Err(error) = serve(stream) {
                eprintln!("bulk: {error}");
            }
        });
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: bulk (sink ADDR | source ADDR SIZE | upload ADDR SIZE | download ADDR SIZE)";
    let (mode, address) = match args {
        [mode, address, ..] => (mode.as_str(), address.as_str()),
        _ => return Err(usage.to_owned()),
    };
    let total = args.get(2).map(|text| size(text)).transpose()?;
    let failed = |error: io::Error| error.to_string();
    match (mode, total) {
        ("sink", None) => backend(address, |mut stream| {
            take(&mut stream)?;
            Ok(())
        })
        .map_err(failed),
        ("source", Some(total)) => {
            backend(address, move |mut stream| give(&mut stream, total)).map_err(failed)
        }
        ("upload" | "download", Some(total)) => {
            let began = Instant::now();
            let mut stream = TcpStream::connect(address).map_err(failed)?;
            let moved = if mode == "upload" {
                give(&mut stream, total).map_err(failed)?;
                stream.shutdown(Shutdown::Write).map_err(failed)?;
                // The sink closes once it has read it all.
                let mut rest = Vec::new();
                stream.read_to_end(&mut rest).map_err(failed)?;
                total
            } else {
                take(&mut stream).map_err(failed)?
            };
            if moved != total {
                return Err(format!("{moved} bytes of {total} arrived"));
            }
            let seconds = began.elapsed().as_secs_f64();
            println!("{{\"bytes\": {total}, \"seconds\": {seconds:.6}}}");
            Ok(())
        }
        _ => Err(usage.to_owned()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bulk: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_checked_wherever_a_read_is_cut() {
        let mut buf = vec![0; 10_000];
        fill(&mut buf, 123_456);
        assert!(holds_pattern(&buf, 123_456));
        assert!(holds_pattern(&buf[4_000..], 127_456));
        assert!(!holds_pattern(&buf[1..], 123_456));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert_eq!(size("64M"), Ok(64 << 20));
        assert!(size("1T").is_err());
    }
}
