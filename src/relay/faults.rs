//! The faults a relay injects, pure: the settings, and for a seeded random
//! number generator, what happens to each datagram and to each piece of a
//! stream. No sockets and no clock: the same seed gives the same plan.
//!
//! Every datagram draws the same four numbers whatever is turned on (one each
//! for drop, duplicate, reorder and jitter), so a seed drops the same
//! datagrams with or without `--delay` or `--duplicate`. Each direction of
//! each session (or connection) has a generator of its own, derived from the
//! seed, the session's number (its order of arrival, from 0) and the
//! direction, so one client's fate does not depend on how its traffic
//! interleaves with another's or with its replies.
//!
//! # Examples
//!
//! The same seed gives the same fates:
//!
//! ```
//! use std::time::Duration;
//! use sockit::relay::{DatagramPlan, Direction, Fate, Faults, Probability};
//!
//! let dropped = |faults: &Faults| {
//!     let mut plan = DatagramPlan::new(faults, 0, Direction::ToTarget);
//!     (0..20).map(|_| plan.next_fate() == Fate::Dropped).collect::<Vec<bool>>()
//! };
//! let faults = Faults::new(7).drop(Probability::new(0.5)?);
//! assert_eq!(dropped(&faults), dropped(&faults));
//! // Adding a delay does not change which datagrams are dropped.
//! let delayed = faults.clone().delay(Duration::from_millis(5), Duration::from_millis(1));
//! assert_eq!(dropped(&faults), dropped(&delayed));
//! # Ok::<(), sockit::relay::FaultError>(())
//! ```

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

/// A probability, from 0 to 1.
///
/// Parsed from `0.25` or `25%`.
///
/// # Examples
///
/// ```
/// use sockit::relay::Probability;
///
/// assert_eq!("25%".parse::<Probability>()?, Probability::new(0.25)?);
/// assert!("1.5".parse::<Probability>().is_err());
/// # Ok::<(), sockit::relay::FaultError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Probability(f64);

impl Probability {
    /// Never happens.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{Faults, Probability};
    ///
    /// assert_eq!(Probability::NEVER.get(), 0.0);
    /// assert_eq!(Faults::new(1).drop, Probability::NEVER);
    /// ```
    pub const NEVER: Probability = Probability(0.0);
    /// Always happens.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::Probability;
    ///
    /// assert_eq!("100%".parse::<Probability>()?, Probability::ALWAYS);
    /// # Ok::<(), sockit::relay::FaultError>(())
    /// ```
    pub const ALWAYS: Probability = Probability(1.0);

    /// The probability `p`.
    ///
    /// # Errors
    ///
    /// [`FaultError::NotAProbability`] unless `0 <= p <= 1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{FaultError, Probability};
    ///
    /// assert_eq!(Probability::new(0.1)?.to_string(), "0.1");
    /// assert_eq!(Probability::new(-0.1), Err(FaultError::NotAProbability { text: "-0.1".into() }));
    /// # Ok::<(), FaultError>(())
    /// ```
    pub fn new(p: f64) -> Result<Self, FaultError> {
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(FaultError::NotAProbability { text: p.to_string() })
        }
    }

    /// The probability as a number from 0 to 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::Probability;
    ///
    /// assert_eq!("12.5%".parse::<Probability>()?.get(), 0.125);
    /// # Ok::<(), sockit::relay::FaultError>(())
    /// ```
    pub fn get(self) -> f64 {
        self.0
    }

    /// Whether it happens, for `roll` drawn uniformly from `[0, 1)`: 0 never
    /// happens, 1 always does.
    fn happens(self, roll: f64) -> bool {
        roll < self.0
    }
}

impl FromStr for Probability {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refused = || FaultError::NotAProbability {
            text: text.to_owned(),
        };
        let (number, scale) = match text.trim().strip_suffix('%') {
            Some(percent) => (percent, 100.0),
            None => (text.trim(), 1.0),
        };
        let p = number.parse::<f64>().map_err(|_| refused())? / scale;
        Probability::new(p).map_err(|_| refused())
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a fault setting is refused.
///
/// # Examples
///
/// ```
/// use sockit::relay::{Directions, Probability};
///
/// let err = "sometimes".parse::<Probability>().unwrap_err();
/// assert_eq!(err.to_string(), r#""sometimes" is not a probability from 0 to 1 (such as 0.1 or 10%)"#);
/// let err = "up".parse::<Directions>().unwrap_err();
/// assert_eq!(err.to_string(), r#""up" is not a direction: expected both, to-target or to-client"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// The text is not a number from 0 to 1 (or a percentage).
    #[error("{text:?} is not a probability from 0 to 1 (such as 0.1 or 10%)")]
    NotAProbability {
        /// What was given.
        text: String,
    },
    /// The text is not one of `both`, `to-target`, `to-client`.
    #[error("{text:?} is not a direction: expected both, to-target or to-client")]
    NotADirection {
        /// What was given.
        text: String,
    },
}

/// The way a message travels through the relay.
///
/// # Examples
///
/// Each direction of a session has its own generator:
///
/// ```
/// use sockit::relay::{DatagramPlan, Direction, Faults, Probability};
///
/// let faults = Faults::new(7).drop(Probability::new(0.5)?);
/// let mut requests = DatagramPlan::new(&faults, 0, Direction::ToTarget);
/// let mut replies = DatagramPlan::new(&faults, 0, Direction::ToClient);
/// let fates = |plan: &mut DatagramPlan| (0..32).map(|_| plan.next_fate()).collect::<Vec<_>>();
/// assert_ne!(fates(&mut requests), fates(&mut replies));
/// # Ok::<(), sockit::relay::FaultError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a client of the relay to the target.
    ToTarget,
    /// From the target back to a client.
    ToClient,
}

impl Direction {
    /// The name in logs and summaries: `to_target`, `to_client`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::Direction;
    ///
    /// assert_eq!(Direction::ToTarget.name(), "to_target");
    /// assert_eq!(Direction::ToClient.name(), "to_client");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Direction::ToTarget => "to_target",
            Direction::ToClient => "to_client",
        }
    }
}

/// Which directions the faults are applied in.
///
/// # Examples
///
/// ```
/// use sockit::relay::Directions;
///
/// let directions: Directions = "to-client".parse()?;
/// assert_eq!(directions, Directions::ToClient);
/// assert_eq!(directions.to_string(), "to-client");
/// assert_eq!(Directions::default(), Directions::Both);
/// # Ok::<(), sockit::relay::FaultError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Directions {
    /// Both ways: requests and replies alike (the default).
    #[default]
    Both,
    /// Only what clients send to the target.
    ToTarget,
    /// Only what the target sends back.
    ToClient,
}

impl Directions {
    /// Whether faults apply to messages travelling `direction`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{Direction, Directions};
    ///
    /// assert!(Directions::ToClient.include(Direction::ToClient));
    /// assert!(!Directions::ToClient.include(Direction::ToTarget));
    /// assert!(Directions::Both.include(Direction::ToTarget));
    /// ```
    pub fn include(self, direction: Direction) -> bool {
        match self {
            Directions::Both => true,
            Directions::ToTarget => direction == Direction::ToTarget,
            Directions::ToClient => direction == Direction::ToClient,
        }
    }
}

impl FromStr for Directions {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "both" => Ok(Directions::Both),
            "to-target" => Ok(Directions::ToTarget),
            "to-client" => Ok(Directions::ToClient),
            _ => Err(FaultError::NotADirection {
                text: text.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Directions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Directions::Both => "both",
            Directions::ToTarget => "to-target",
            Directions::ToClient => "to-client",
        })
    }
}

/// The faults a relay injects, and the seed that decides where.
///
/// Datagram faults: `drop`, `duplicate`, `reorder`, `delay` with `jitter`.
/// Stream faults: `slice`, `delay` with `jitter`, `reset_after`. Each applies
/// in the [`Directions`] chosen. [`Faults::new`] injects nothing.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::relay::{Faults, Probability};
///
/// let faults = Faults::new(1)
///     .drop(Probability::new(0.1)?)
///     .delay(Duration::from_millis(5), Duration::from_millis(2));
/// assert_eq!(faults.to_string(), "seed 1, drop 0.1, delay 5ms ± 2ms, both directions");
/// # Ok::<(), sockit::relay::FaultError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Faults {
    /// The seed of every random choice.
    pub seed: u64,
    /// Datagrams: the probability that one is dropped.
    pub drop: Probability,
    /// Datagrams: the probability that one is sent twice.
    pub duplicate: Probability,
    /// Datagrams: the probability that one is held back and sent after the
    /// next one (or after [`REORDER_HOLD`] if none follows).
    pub reorder: Probability,
    /// Datagrams and stream pieces: how long each waits before it is sent.
    pub delay: Duration,
    /// Datagrams and stream pieces: the delay varies by up to this much
    /// either way (uniformly; never below zero).
    pub jitter: Duration,
    /// Streams: forward in pieces of at most this many bytes, one write each.
    pub slice: Option<NonZeroUsize>,
    /// Streams: after forwarding this many bytes in one direction, reset
    /// the connection (both sides).
    pub reset_after: Option<u64>,
    /// The directions the faults apply in.
    pub directions: Directions,
}

/// The longest a reordered datagram is held back waiting for the next one,
/// after its own delay.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(sockit::relay::REORDER_HOLD, Duration::from_millis(100));
/// ```
pub const REORDER_HOLD: Duration = Duration::from_millis(100);

impl Faults {
    /// No faults, and `seed` for any set later.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::Faults;
    ///
    /// let faults = Faults::new(42);
    /// assert!(!faults.any());
    /// assert_eq!(faults.to_string(), "no faults");
    /// ```
    pub fn new(seed: u64) -> Self {
        Faults {
            seed,
            drop: Probability::NEVER,
            duplicate: Probability::NEVER,
            reorder: Probability::NEVER,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            slice: None,
            reset_after: None,
            directions: Directions::Both,
        }
    }

    /// Drops datagrams with probability `p`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{DatagramPlan, Direction, Fate, Faults, Probability};
    ///
    /// let faults = Faults::new(1).drop(Probability::new(0.25)?);
    /// let mut plan = DatagramPlan::new(&faults, 0, Direction::ToTarget);
    /// let dropped = (0..10_000).filter(|_| plan.next_fate() == Fate::Dropped).count();
    /// assert!((2_300..2_700).contains(&dropped), "{dropped}");
    /// # Ok::<(), sockit::relay::FaultError>(())
    /// ```
    #[must_use]
    pub fn drop(mut self, p: Probability) -> Self {
        self.drop = p;
        self
    }

    /// Sends datagrams twice with probability `p`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::{DatagramPlan, Direction, Fate, Faults, Probability};
    ///
    /// let faults = Faults::new(1).duplicate(Probability::ALWAYS);
    /// let mut plan = DatagramPlan::new(&faults, 0, Direction::ToClient);
    /// assert_eq!(plan.next_fate(), Fate::Sent { duplicate: true, hold: false, delay: Duration::ZERO });
    /// ```
    #[must_use]
    pub fn duplicate(mut self, p: Probability) -> Self {
        self.duplicate = p;
        self
    }

    /// Holds datagrams back behind the next one with probability `p`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::{DatagramPlan, Direction, Fate, Faults, Probability};
    ///
    /// let faults = Faults::new(1).reorder(Probability::ALWAYS);
    /// let mut plan = DatagramPlan::new(&faults, 0, Direction::ToTarget);
    /// assert_eq!(plan.next_fate(), Fate::Sent { duplicate: false, hold: true, delay: Duration::ZERO });
    /// ```
    #[must_use]
    pub fn reorder(mut self, p: Probability) -> Self {
        self.reorder = p;
        self
    }

    /// Delays every datagram or stream piece by `delay`, give or take up to
    /// `jitter`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::{DatagramPlan, Direction, Fate, Faults};
    ///
    /// let (delay, jitter) = (Duration::from_millis(50), Duration::from_millis(10));
    /// let mut plan = DatagramPlan::new(&Faults::new(1).delay(delay, jitter), 0, Direction::ToTarget);
    /// for _ in 0..100 {
    ///     let Fate::Sent { delay: waited, .. } = plan.next_fate() else { unreachable!() };
    ///     assert!(delay - jitter <= waited && waited <= delay + jitter);
    /// }
    /// ```
    #[must_use]
    pub fn delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.delay = delay;
        self.jitter = jitter;
        self
    }

    /// Forwards streams in pieces of at most `bytes`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use std::time::Duration;
    /// use sockit::relay::{Direction, Faults, Step, StreamPlan};
    ///
    /// let faults = Faults::new(1).slice(NonZeroUsize::new(1).unwrap());
    /// let mut plan = StreamPlan::new(&faults, 0, Direction::ToTarget);
    /// assert_eq!(plan.next_step(5), Step::Write { len: 1, delay: Duration::ZERO });
    /// ```
    #[must_use]
    pub fn slice(mut self, bytes: NonZeroUsize) -> Self {
        self.slice = Some(bytes);
        self
    }

    /// Resets a stream connection once `bytes` have been forwarded in one
    /// direction.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{Direction, Faults, Step, StreamPlan};
    ///
    /// let mut plan = StreamPlan::new(&Faults::new(1).reset_after(0), 0, Direction::ToTarget);
    /// assert!(plan.reset_due());
    /// assert_eq!(plan.next_step(1), Step::Reset);
    /// ```
    #[must_use]
    pub fn reset_after(mut self, bytes: u64) -> Self {
        self.reset_after = Some(bytes);
        self
    }

    /// Applies the faults only in `directions`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{DatagramPlan, Direction, Directions, Fate, Faults, Probability};
    ///
    /// let faults = Faults::new(1).drop(Probability::ALWAYS).directions(Directions::ToTarget);
    /// assert_eq!(DatagramPlan::new(&faults, 0, Direction::ToTarget).next_fate(), Fate::Dropped);
    /// assert_ne!(DatagramPlan::new(&faults, 0, Direction::ToClient).next_fate(), Fate::Dropped);
    /// assert_eq!(faults.to_string(), "seed 1, drop 1, to the target only");
    /// ```
    #[must_use]
    pub fn directions(mut self, directions: Directions) -> Self {
        self.directions = directions;
        self
    }

    /// Whether any fault is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::Faults;
    ///
    /// assert!(!Faults::new(1).any());
    /// assert!(Faults::new(1).delay(Duration::ZERO, Duration::from_millis(1)).any());
    /// ```
    pub fn any(&self) -> bool {
        self.set().next().is_some()
    }

    /// The names of the faults set here (as `sockit relay`'s flags name
    /// them) that endpoints carrying messages as `transport` do not use.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{Faults, Probability};
    /// use sockit::Transport;
    ///
    /// let faults = Faults::new(1).drop(Probability::ALWAYS).reset_after(100);
    /// assert_eq!(faults.not_applying_to(Transport::Stream), ["drop"]);
    /// assert_eq!(faults.not_applying_to(Transport::Datagram), ["reset-after"]);
    /// ```
    pub fn not_applying_to(&self, transport: crate::Transport) -> Vec<&'static str> {
        let datagrams = transport == crate::Transport::Datagram;
        self.set()
            .filter(
                |&(_, for_datagrams, for_streams)| {
                    if datagrams { !for_datagrams } else { !for_streams }
                },
            )
            .map(|(name, _, _)| name)
            .collect()
    }

    /// The faults set: name, whether datagrams use it, whether streams do.
    fn set(&self) -> impl Iterator<Item = (&'static str, bool, bool)> {
        [
            ("drop", self.drop != Probability::NEVER, true, false),
            ("duplicate", self.duplicate != Probability::NEVER, true, false),
            ("reorder", self.reorder != Probability::NEVER, true, false),
            ("delay", !self.delay.is_zero(), true, true),
            ("jitter", !self.jitter.is_zero(), true, true),
            ("slice", self.slice.is_some(), false, true),
            ("reset-after", self.reset_after.is_some(), false, true),
        ]
        .into_iter()
        .filter(|&(_, set, _, _)| set)
        .map(|(name, _, datagrams, streams)| (name, datagrams, streams))
    }

    /// The faults that apply in `direction`: these, or none.
    fn toward(&self, direction: Direction) -> Faults {
        if self.directions.include(direction) {
            self.clone()
        } else {
            Faults::new(self.seed)
        }
    }
}

/// Shows the seed and the faults set, as `sockit relay` logs them at startup.
impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.any() {
            return f.write_str("no faults");
        }
        write!(f, "seed {}", self.seed)?;
        for (name, p) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if p != Probability::NEVER {
                write!(f, ", {name} {p}")?;
            }
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            write!(f, ", delay {}", humantime::format_duration(self.delay))?;
            if !self.jitter.is_zero() {
                write!(f, " ± {}", humantime::format_duration(self.jitter))?;
            }
        }
        if let Some(slice) = self.slice {
            write!(f, ", slice {slice}")?;
        }
        if let Some(bytes) = self.reset_after {
            write!(f, ", reset after {bytes} bytes")?;
        }
        match self.directions {
            Directions::Both => f.write_str(", both directions"),
            Directions::ToTarget => f.write_str(", to the target only"),
            Directions::ToClient => f.write_str(", to clients only"),
        }
    }
}

/// The generator for one direction of session (or connection) `number`.
fn generator(seed: u64, number: u64, direction: Direction) -> fastrand::Rng {
    let stream = number.wrapping_mul(2) + u64::from(direction == Direction::ToClient);
    // Mixed, since nearby seeds of the generator give related sequences.
    fastrand::Rng::with_seed(mix(seed ^ mix(stream)))
}

/// SplitMix64's finaliser: every bit of the input moves every bit of the output.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_4761_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `delay` moved by up to `jitter` either way, from a uniform 64-bit `roll`.
fn jittered(delay: Duration, jitter: Duration, roll: u64) -> Duration {
    let jitter = u64::try_from(jitter.as_nanos())
        .unwrap_or(u64::MAX / 2)
        .min(u64::MAX / 2);
    if jitter == 0 {
        return delay;
    }
    let offset = (roll % (2 * jitter + 1)) as i128 - i128::from(jitter);
    let nanos = (delay.as_nanos() as i128 + offset).max(0);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// What happens to one datagram.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::relay::{DatagramPlan, Direction, Fate, Faults};
///
/// let mut plan = DatagramPlan::new(&Faults::new(1), 0, Direction::ToTarget);
/// assert_eq!(plan.next_fate(), Fate::Sent { duplicate: false, hold: false, delay: Duration::ZERO });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It is dropped.
    Dropped,
    /// It is sent after `delay`: twice if `duplicate`, and held back behind
    /// the next datagram if `hold`.
    Sent {
        /// Sent twice, one copy right after the other.
        duplicate: bool,
        /// Held back until the next datagram has been sent.
        hold: bool,
        /// How long it waits before it is sent.
        delay: Duration,
    },
}

/// The fates of the datagrams travelling one direction of one session.
///
/// # Examples
///
/// ```
/// use sockit::relay::{DatagramPlan, Direction, Fate, Faults, Probability};
///
/// let faults = Faults::new(7).drop(Probability::ALWAYS);
/// let mut plan = DatagramPlan::new(&faults, 0, Direction::ToTarget);
/// assert_eq!(plan.next_fate(), Fate::Dropped);
/// ```
#[derive(Debug, Clone)]
pub struct DatagramPlan {
    faults: Faults,
    rng: fastrand::Rng,
}

impl DatagramPlan {
    /// The plan for datagrams travelling `direction` in session `number`.
    ///
    /// # Examples
    ///
    /// Sessions of one seed have fates of their own:
    ///
    /// ```
    /// use sockit::relay::{DatagramPlan, Direction, Faults, Probability};
    ///
    /// let faults = Faults::new(7).drop(Probability::new(0.5)?);
    /// let fates = |session| {
    ///     let mut plan = DatagramPlan::new(&faults, session, Direction::ToTarget);
    ///     (0..32).map(|_| plan.next_fate()).collect::<Vec<_>>()
    /// };
    /// assert_ne!(fates(0), fates(1));
    /// # Ok::<(), sockit::relay::FaultError>(())
    /// ```
    pub fn new(faults: &Faults, number: u64, direction: Direction) -> Self {
        DatagramPlan {
            faults: faults.toward(direction),
            rng: generator(faults.seed, number, direction),
        }
    }

    /// The fate of the next datagram.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{DatagramPlan, Direction, Fate, Faults, Probability};
    ///
    /// let faults = Faults::new(7).drop(Probability::NEVER);
    /// let mut plan = DatagramPlan::new(&faults, 0, Direction::ToTarget);
    /// assert!((0..100).all(|_| plan.next_fate() != Fate::Dropped));
    /// ```
    pub fn next_fate(&mut self) -> Fate {
        let (drop, duplicate, hold, jitter) =
            (self.rng.f64(), self.rng.f64(), self.rng.f64(), self.rng.u64(..));
        if self.faults.drop.happens(drop) {
            return Fate::Dropped;
        }
        Fate::Sent {
            duplicate: self.faults.duplicate.happens(duplicate),
            hold: self.faults.reorder.happens(hold),
            delay: jittered(self.faults.delay, self.faults.jitter, jitter),
        }
    }
}

/// What to do next with bytes read from one side of a stream connection.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use sockit::relay::{Direction, Faults, Step, StreamPlan};
///
/// // How a 10-byte read is written in slices of 4.
/// let faults = Faults::new(1).slice(NonZeroUsize::new(4).unwrap());
/// let mut plan = StreamPlan::new(&faults, 0, Direction::ToTarget);
/// let mut left = 10;
/// let mut writes = Vec::new();
/// while left > 0 {
///     let Step::Write { len, .. } = plan.next_step(left) else { unreachable!() };
///     writes.push(len);
///     left -= len;
/// }
/// assert_eq!(writes, [4, 4, 2]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Write the next `len` bytes, after waiting `delay`.
    Write {
        /// How many bytes to write, at least 1.
        len: usize,
        /// How long to wait before writing them.
        delay: Duration,
    },
    /// Reset the connection: the bytes left are not forwarded.
    Reset,
}

/// How one direction of one stream connection is forwarded: in pieces, each
/// after a delay, until the reset point.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use sockit::relay::{Direction, Faults, Step, StreamPlan};
///
/// let faults = Faults::new(1).slice(NonZeroUsize::new(4).unwrap()).reset_after(6);
/// let mut plan = StreamPlan::new(&faults, 0, Direction::ToClient);
/// assert_eq!(plan.next_step(10), Step::Write { len: 4, delay: Duration::ZERO });
/// assert_eq!(plan.next_step(6), Step::Write { len: 2, delay: Duration::ZERO });
/// assert_eq!(plan.next_step(4), Step::Reset);
/// ```
#[derive(Debug, Clone)]
pub struct StreamPlan {
    faults: Faults,
    rng: fastrand::Rng,
    /// Bytes still to forward before the reset, if one is planned.
    left: Option<u64>,
}

impl StreamPlan {
    /// The plan for bytes travelling `direction` on connection `number`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{Direction, Directions, Faults, StreamPlan};
    ///
    /// // Resets apply to what the target sends only.
    /// let faults = Faults::new(1).reset_after(0).directions(Directions::ToClient);
    /// assert!(StreamPlan::new(&faults, 0, Direction::ToClient).reset_due());
    /// assert!(!StreamPlan::new(&faults, 0, Direction::ToTarget).reset_due());
    /// ```
    pub fn new(faults: &Faults, number: u64, direction: Direction) -> Self {
        let faults = faults.toward(direction);
        StreamPlan {
            left: faults.reset_after,
            rng: generator(faults.seed, number, direction),
            faults,
        }
    }

    /// Whether the bytes pass untouched: nothing cuts, delays or counts
    /// them toward a reset, so they may be moved without being looked at
    /// (the relay splices them).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::{Direction, Directions, Faults, StreamPlan};
    ///
    /// assert!(StreamPlan::new(&Faults::new(1), 0, Direction::ToTarget).is_transparent());
    /// let delayed = Faults::new(1).delay(Duration::from_millis(1), Duration::ZERO);
    /// assert!(!StreamPlan::new(&delayed, 0, Direction::ToTarget).is_transparent());
    /// let one_way = delayed.directions(Directions::ToClient);
    /// assert!(StreamPlan::new(&one_way, 0, Direction::ToTarget).is_transparent());
    /// ```
    pub fn is_transparent(&self) -> bool {
        self.faults.slice.is_none()
            && self.left.is_none()
            && self.faults.delay.is_zero()
            && self.faults.jitter.is_zero()
    }

    /// Whether the connection is due to be reset: every byte allowed has
    /// been forwarded. True at once for a reset after 0 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::{Direction, Faults, Step, StreamPlan};
    ///
    /// let mut plan = StreamPlan::new(&Faults::new(1).reset_after(3), 0, Direction::ToTarget);
    /// assert!(!plan.reset_due());
    /// assert_eq!(plan.next_step(8), Step::Write { len: 3, delay: Duration::ZERO });
    /// assert!(plan.reset_due());
    /// ```
    pub fn reset_due(&self) -> bool {
        self.left == Some(0)
    }

    /// What to do with `available` bytes (at least 1) read and not yet
    /// forwarded: write a piece of them (counted as forwarded), or reset.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::{Direction, Faults, Step, StreamPlan};
    ///
    /// let mut plan = StreamPlan::new(&Faults::new(1), 0, Direction::ToTarget);
    /// assert_eq!(plan.next_step(1500), Step::Write { len: 1500, delay: Duration::ZERO });
    /// ```
    pub fn next_step(&mut self, available: usize) -> Step {
        if self.reset_due() {
            return Step::Reset;
        }
        let mut len = available.max(1);
        if let Some(slice) = self.faults.slice {
            len = len.min(slice.get());
        }
        if let Some(left) = &mut self.left {
            len = len.min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= len as u64;
        }
        let roll = self.rng.u64(..);
        Step::Write {
            len,
            delay: jittered(self.faults.delay, self.faults.jitter, roll),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(p: f64) -> Probability {
        Probability::new(p).unwrap()
    }

    fn fates(faults: &Faults, count: usize) -> Vec<Fate> {
        let mut plan = DatagramPlan::new(faults, 0, Direction::ToTarget);
        (0..count).map(|_| plan.next_fate()).collect()
    }

    fn dropped(fates: &[Fate]) -> Vec<usize> {
        (0..fates.len()).filter(|&i| fates[i] == Fate::Dropped).collect()
    }

    #[test]
    fn probabilities_parse_from_fractions_and_percentages() {
        assert_eq!("0.25".parse::<Probability>().unwrap(), p(0.25));
        assert_eq!("25%".parse::<Probability>().unwrap(), p(0.25));
        assert_eq!("0".parse::<Probability>().unwrap(), Probability::NEVER);
        assert_eq!("1".parse::<Probability>().unwrap(), Probability::ALWAYS);
        for bad in ["1.5", "-0.1", "NaN", "x", "", "101%"] {
            assert_eq!(
                bad.parse::<Probability>().unwrap_err(),
                FaultError::NotAProbability { text: bad.to_owned() },
                "{bad:?}"
            );
        }
        assert!(Probability::new(f64::NAN).is_err());
    }

    #[test]
    fn directions_parse_and_display() {
        for text in ["both", "to-target", "to-client"] {
            assert_eq!(text.parse::<Directions>().unwrap().to_string(), text);
        }
        assert!("up".parse::<Directions>().is_err());
        assert!(Directions::ToClient.include(Direction::ToClient));
        assert!(!Directions::ToClient.include(Direction::ToTarget));
    }

    #[test]
    fn no_faults_sends_everything_at_once() {
        let faults = Faults::new(3);
        assert!(!faults.any());
        assert_eq!(faults.to_string(), "no faults");
        let sent = Fate::Sent {
            duplicate: false,
            hold: false,
            delay: Duration::ZERO,
        };
        assert_eq!(fates(&faults, 100), vec![sent; 100]);
    }

    #[test]
    fn the_summary_names_every_fault_set() {
        let faults = Faults::new(9)
            .drop(p(0.1))
            .duplicate(p(0.2))
            .reorder(p(0.05))
            .delay(Duration::from_millis(5), Duration::ZERO)
            .slice(NonZeroUsize::new(3).unwrap())
            .reset_after(100)
            .directions(Directions::ToTarget);
        assert_eq!(
            faults.to_string(),
            "seed 9, drop 0.1, duplicate 0.2, reorder 0.05, delay 5ms, slice 3, reset after 100 bytes, \
             to the target only"
        );
    }

    #[test]
    fn names_the_faults_a_transport_does_not_use() {
        let faults = Faults::new(0)
            .drop(p(0.5))
            .delay(Duration::from_millis(1), Duration::ZERO)
            .reset_after(5);
        assert_eq!(faults.not_applying_to(crate::Transport::Stream), ["drop"]);
        assert_eq!(
            faults.not_applying_to(crate::Transport::Datagram),
            ["reset-after"]
        );
    }

    /// The exact plan for one seed: a change here breaks the reproduction of
    /// runs recorded with their seed, so it must be deliberate.
    #[test]
    fn a_seed_gives_exactly_this_plan() {
        let faults = Faults::new(1).drop(p(0.5));
        let got: String = fates(&faults, 32)
            .iter()
            .map(|fate| if *fate == Fate::Dropped { 'x' } else { '.' })
            .collect();
        assert_eq!(got, GOLDEN);
    }
    /// Seed 1, drop 0.5, session 0 towards the target: `x` dropped.
    const GOLDEN: &str = ".x.x....x..xxxxx..x....x..x.x.xx";

    #[test]
    fn the_other_direction_and_the_next_session_draw_differently() {
        let faults = Faults::new(1).drop(p(0.5));
        let plan = |number, direction| {
            let mut plan = DatagramPlan::new(&faults, number, direction);
            (0..64).map(|_| plan.next_fate()).collect::<Vec<_>>()
        };
        let first = plan(0, Direction::ToTarget);
        assert_eq!(first, plan(0, Direction::ToTarget));
        assert_ne!(first, plan(0, Direction::ToClient));
        assert_ne!(first, plan(1, Direction::ToTarget));
    }

    #[test]
    fn faults_apply_only_in_the_directions_chosen() {
        let faults = Faults::new(1)
            .drop(Probability::ALWAYS)
            .directions(Directions::ToClient);
        let mut to_target = DatagramPlan::new(&faults, 0, Direction::ToTarget);
        let mut to_client = DatagramPlan::new(&faults, 0, Direction::ToClient);
        assert_ne!(to_target.next_fate(), Fate::Dropped);
        assert_eq!(to_client.next_fate(), Fate::Dropped);
    }

    #[test]
    fn a_reset_after_zero_bytes_is_due_at_once() {
        let mut plan = StreamPlan::new(&Faults::new(1).reset_after(0), 0, Direction::ToClient);
        assert!(plan.reset_due());
        assert_eq!(plan.next_step(5), Step::Reset);
    }

    #[test]
    fn jitter_stays_within_the_bounds_and_never_goes_below_zero() {
        let roll = |r| jittered(Duration::from_millis(5), Duration::from_millis(2), r);
        assert_eq!(roll(0), Duration::from_millis(3));
        assert_eq!(roll(4_000_000), Duration::from_millis(7));
        assert_eq!(roll(4_000_001), Duration::from_millis(3));
        assert_eq!(
            jittered(Duration::from_millis(1), Duration::from_millis(2), 0),
            Duration::ZERO
        );
    }

    proptest! {
        #[test]
        fn the_same_seed_gives_the_same_fates(
            seed: u64,
            drop in 0.0..=1.0f64,
            duplicate in 0.0..=1.0f64,
            reorder in 0.0..=1.0f64,
            delay in 0u64..1000,
            jitter in 0u64..1000,
        ) {
            let faults = Faults::new(seed)
                .drop(p(drop))
                .duplicate(p(duplicate))
                .reorder(p(reorder))
                .delay(Duration::from_micros(delay), Duration::from_micros(jitter));
            let first = fates(&faults, 200);
            prop_assert_eq!(&first, &fates(&faults, 200));
            for fate in first {
                if let Fate::Sent { delay: d, .. } = fate {
                    prop_assert!(d + Duration::from_micros(jitter) >= Duration::from_micros(delay));
                    prop_assert!(d <= Duration::from_micros(delay + jitter));
                }
            }
        }

        #[test]
        fn a_seed_drops_the_same_datagrams_whatever_else_is_set(
            seed: u64,
            drop in 0.0..=1.0f64,
            duplicate in 0.0..=1.0f64,
            jitter in 0u64..1000,
        ) {
            let only_drops = Faults::new(seed).drop(p(drop));
            let more = only_drops
                .clone()
                .duplicate(p(duplicate))
                .reorder(p(0.5))
                .delay(Duration::from_millis(1), Duration::from_micros(jitter));
            prop_assert_eq!(dropped(&fates(&only_drops, 200)), dropped(&fates(&more, 200)));
        }

        #[test]
        fn pieces_cover_the_bytes_up_to_the_reset(
            seed: u64,
            slice in proptest::option::of(1usize..20),
            reset_after in proptest::option::of(0u64..200),
            reads in proptest::collection::vec(1usize..50, 1..20),
        ) {
            let mut faults = Faults::new(seed);
            if let Some(slice) = slice {
                faults = faults.slice(NonZeroUsize::new(slice).unwrap());
            }
            if let Some(bytes) = reset_after {
                faults = faults.reset_after(bytes);
            }
            let mut plan = StreamPlan::new(&faults, 0, Direction::ToTarget);
            let total: u64 = reads.iter().map(|&read| read as u64).sum();
            let mut forwarded = 0u64;
            let mut reset = false;
            'reads: for read in reads {
                let mut left = read;
                while left > 0 {
                    match plan.next_step(left) {
                        Step::Reset => { reset = true; break 'reads; }
                        Step::Write { len, delay } => {
                            prop_assert!(len >= 1 && len <= left);
                            prop_assert!(slice.is_none_or(|slice| len <= slice));
                            prop_assert_eq!(delay, Duration::ZERO);
                            left -= len;
                            forwarded += len as u64;
                        }
                    }
                    prop_assert_eq!(plan.reset_due(), Some(forwarded) == reset_after);
                }
            }
            // Everything is forwarded up to the reset point, and a reset
            // comes only for bytes past it.
            prop_assert_eq!(forwarded, reset_after.map_or(total, |limit| limit.min(total)));
            prop_assert_eq!(reset, reset_after.is_some_and(|limit| limit < total));
        }
    }

    #[test]
    fn a_drop_rate_is_kept_over_many_datagrams() {
        let fates = fates(&Faults::new(42).drop(p(0.3)).duplicate(p(0.1)), 10_000);
        let dropped = dropped(&fates).len();
        let duplicated = fates
            .iter()
            .filter(|fate| matches!(fate, Fate::Sent { duplicate: true, .. }))
            .count();
        assert!((2_800..3_200).contains(&dropped), "{dropped} dropped");
        assert!((600..800).contains(&duplicated), "{duplicated} duplicated");
    }
}
