//! The chat fan-out load: CLIENTS connections to a chat server that speaks
//! `examples/chat.rs`'s protocol (first line a name, then each line sent
//! to everyone else as `NAME: LINE`). Each client sends a line every
//! INTERVAL, stamped with when it was sent; every other client's reader
//! records how long it took to arrive. Prints one JSON object: lines sent,
//! deliveries expected (sent × (clients − 1)) and made, and the delivery
//! latency's percentiles, over the measured time after a warm-up.
//!
//! ```text
//! chat_load 127.0.0.1:8000 [--clients 100] [--interval-ms 10] [--duration-ms 5000] [--warmup-ms 1000]
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep};

/// What the clients share: the measured window, and what they counted.
/// A line belongs to the window by its stamp, so one sent just before the
/// window closes is still counted when it arrives after.
struct Shared {
    start: Instant,
    /// Stamps (ns since `start`) from `window_start` up to `window_end`
    /// are measured; both are `u64::MAX` until set, once, before the
    /// window opens.
    window_start: AtomicU64,
    window_end: AtomicU64,
    sent: AtomicU64,
    delivered: AtomicU64,
    joined: AtomicU64,
}

impl Shared {
    /// Nanoseconds since the load began: what a line is stamped with.
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Whether a line stamped `stamp` was sent in the measured window.
    fn measures(&self, stamp: u64) -> bool {
        stamp >= self.window_start.load(Ordering::SeqCst) && stamp < self.window_end.load(Ordering::SeqCst)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1))
            .and_then(|text| text.parse().ok())
            .unwrap_or(default)
    };
    let address = args.first().cloned().unwrap_or_else(|| "127.0.0.1:8000".into());
    let clients = value("--clients", 100) as usize;
    let every = Duration::from_millis(value("--interval-ms", 10));
    let duration = Duration::from_millis(value("--duration-ms", 5000));
    let warmup = Duration::from_millis(value("--warmup-ms", 1000));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let shared = Arc::new(Shared {
            start: Instant::now(),
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            joined: AtomicU64::new(0),
        });
        let mut readers = Vec::new();
        let mut histograms = Vec::new();
        let mut writers = Vec::new();
        for n in 0..clients {
            let stream = TcpStream::connect(&address).await?;
            stream.set_nodelay(true)?;
            let (read, mut write) = stream.into_split();
            write.write_all(format!("c{n}\n").as_bytes()).await?;
            let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
            histograms.push(Arc::clone(&histogram));
            readers.push(tokio::spawn(read_lines(read, Arc::clone(&shared), histogram)));
            writers.push(write);
            // Each client is in the room before the next one comes: the
            // first has heard of it (the first itself is given a moment).
            let joined = (n * (n + 1) / 2) as u64;
            let deadline = Instant::now() + Duration::from_secs(10);
            if n == 0 {
                sleep(Duration::from_millis(200)).await;
            }
            while shared.joined.load(Ordering::Relaxed) < joined {
                if Instant::now() > deadline {
                    return Err(format!("client {n} never joined").into());
                }
                sleep(Duration::from_millis(1)).await;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sending: Vec<_> = writers
            .into_iter()
            .map(|mut write| {
                let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut ticks = interval(every);
                    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
                    while !stop.load(Ordering::Relaxed) {
                        ticks.tick().await;
                        let stamp = shared.now();
                        if write.write_all(format!("{stamp}\n").as_bytes()).await.is_err() {
                            return;
                        }
                        if shared.measures(stamp) {
                            shared.sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        // Both ends of the window are fixed before it opens: a bound set
        // while lines are being stamped would count a line stamped just
        // after it as sent (its sender saw no bound yet) and not as
        // delivered (its readers do).
        let opens = shared.now() + warmup.as_nanos() as u64;
        shared.window_end.store(opens + duration.as_nanos() as u64, Ordering::SeqCst);
        shared.window_start.store(opens, Ordering::SeqCst);
        sleep(warmup + duration).await;
        stop.store(true, Ordering::Relaxed);
        // What was sent in the window arrives meanwhile.
        sleep(Duration::from_millis(500)).await;
        for sender in sending {
            sender.abort();
        }
        let mut latency = Histogram::<u64>::new(3)?;
        for (reader, histogram) in readers.into_iter().zip(histograms) {
            reader.abort();
            latency.add(&*histogram.lock().unwrap())?;
        }
        let sent = shared.sent.load(Ordering::Relaxed);
        println!(
            "{{\"clients\": {clients}, \"interval_ms\": {}, \"duration_ms\": {}, \"sent\": {sent}, \
             \"expected\": {}, \"delivered\": {}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}, \"max_us\": {}}}",
            every.as_millis(),
            duration.as_millis(),
            sent * (clients as u64 - 1),
            shared.delivered.load(Ordering::Relaxed),
            latency.value_at_quantile(0.5),
            latency.value_at_quantile(0.99),
            latency.value_at_quantile(0.999),
            latency.max(),
        );
        Ok(())
    })
}

/// Reads one client's lines: counts the joins before the load, and records
/// the latency (µs) of each line sent in the measured window.
async fn read_lines(
    read: tokio::net::tcp::OwnedReadHalf,
    shared: Arc<Shared>,
    histogram: Arc<Mutex<Histogram<u64>>>,
) {
    let mut lines = BufReader::with_capacity(64 * 1024, read);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.starts_with(b"* ") {
            if line.ends_with(b" joined\n") {
                shared.joined.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let stamp = line
            .iter()
            .position(|byte| *byte == b' ')
            .and_then(|space| std::str::from_utf8(&line[space + 1..line.len() - 1]).ok())
            .and_then(|text| text.parse::<u64>().ok());
        if let Some(stamp) = stamp.filter(|stamp| shared.measures(*stamp)) {
            let _ = histogram
                .lock()
                .unwrap()
                .record(shared.now().saturating_sub(stamp) / 1000);
            shared.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
}
