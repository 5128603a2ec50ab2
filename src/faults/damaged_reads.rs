//! Reads that found a damaged or lost record (`ReadError::Lost` / `ReadError::Corrupt`): every
//! API answers them as a miss (the engine never returns an older value instead), counts them
//! for `/metrics`, and logs each damaged place once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ttlcask_engine::{Item, ReadError};

/// Damaged places (segment, offset) logged one by one; past this many, further places are
/// counted but not logged, so a badly damaged disk cannot grow the set or flood the log.
pub const LOGGED_PLACES: usize = 4096;

/// Counts damaged reads and remembers which places were logged. Only a damaged read touches
/// it; a healthy read never does.
#[derive(Debug, Default)]
pub struct DamagedReads {
    count: AtomicU64,
    logged: Mutex<HashSet<(u32, u64)>>,
}

impl DamagedReads {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Ok(None)` (a miss) when `read` found a damaged or lost record, after counting it and
    /// logging its place the first time; any other result as it is.
    ///
    /// # Errors
    /// The read errors that are not about damage (a missing segment: an engine bug).
    pub fn as_miss(
        &self,
        read: Result<Option<Item>, ReadError>,
    ) -> Result<Option<Item>, ReadError> {
        match read {
            Err(e) if self.absorb(&e) => Ok(None),
            other => other,
        }
    }

    /// Whether `e` says the key's newest record is damaged or lost; if so it is counted and
    /// its place logged once.
    pub fn absorb(&self, e: &ReadError) -> bool {
        let place = match *e {
            ReadError::Lost { segment, offset } => (segment, offset),
            ReadError::Corrupt { segment, offset } => (segment, u64::from(offset)),
            _ => return false,
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut logged = self.places();
        if logged.contains(&place) {
            return true;
        }
        if logged.len() < LOGGED_PLACES {
            logged.insert(place);
            drop(logged);
            tracing::warn!(
                segment = place.0,
                offset = place.1,
                error = %e,
                "a read found a damaged or lost record and was answered as a miss"
            );
        } else if logged.len() == LOGGED_PLACES {
            // One marker entry past the cap, so that this line is written once.
            logged.insert((u32::MAX, u64::MAX));
            drop(logged);
            tracing::warn!(
                LOGGED_PLACES,
                "more damaged places are being read; they are counted in ttlcask_damaged_reads_total but no longer logged one by one"
            );
        }
        true
    }

    /// The set of logged places; a panic elsewhere while it was held leaves it usable.
    fn places(&self) -> MutexGuard<'_, HashSet<(u32, u64)>> {
        self.logged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Damaged reads answered as misses since the server started.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Places logged so far (at most [`LOGGED_PLACES`] + 1).
    pub fn logged_places(&self) -> usize {
        self.places().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_a_counted_miss_other_errors_stay_errors() {
        let d = DamagedReads::new();
        let lost = ReadError::Lost {
            segment: 3,
            offset: 4096,
        };
        assert_eq!(d.as_miss(Err(lost.clone())), Ok(None));
        assert_eq!(d.as_miss(Err(lost)), Ok(None));
        assert_eq!(
            d.as_miss(Err(ReadError::Corrupt {
                segment: 3,
                offset: 24
            })),
            Ok(None)
        );
        assert_eq!(
            d.as_miss(Err(ReadError::MissingSegment(9))),
            Err(ReadError::MissingSegment(9))
        );
        assert_eq!(d.as_miss(Ok(None)), Ok(None));
        assert_eq!(d.count(), 3);
        assert_eq!(d.logged_places(), 2, "the same place is logged once");
    }

    #[test]
    fn logged_places_are_bounded() {
        let d = DamagedReads::new();
        for offset in 0..(LOGGED_PLACES as u64 + 100) {
            assert!(d.absorb(&ReadError::Lost { segment: 1, offset }));
        }
        assert_eq!(d.count(), LOGGED_PLACES as u64 + 100);
        assert_eq!(d.logged_places(), LOGGED_PLACES + 1);
    }
}
