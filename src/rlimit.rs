//! The open-file limit: `serve` raises its soft limit to the hard one, as Go programs and
//! nginx's `worker_rlimit_nofile` do, and warns when it is still short of what the
//! connection cap needs.
//!
//! Every connection holds a descriptor, and so do the store's segments, hints and logs.
//! Many shells and container runtimes start a process with a soft limit of 1024, below the
//! default `max_connections` (1024) alone, while the hard limit allows far more. Found from
//! outside: with a soft limit of 128 and 140 idle connections, the store could not open
//! its next segment, and every write was refused until a restart.

/// Descriptors kept for the store and the runtime beyond one per connection.
pub const SPARE_FILES: u64 = 256;

/// The soft limit is never raised past this (some hard limits are 2^30).
const CEILING: u64 = 1 << 20;

/// The open-file limit before and after [`raise_open_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
}

impl OpenFiles {
    /// Whether `max_connections` connections and [`SPARE_FILES`] fit under the limit.
    pub fn fits(&self, max_connections: usize) -> bool {
        self.now >= max_connections as u64 + SPARE_FILES
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (at most 2^20).
///
/// # Errors
/// The system call's error; the limit is then as it was.
pub fn raise_open_files() -> std::io::Result<OpenFiles> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before: u64 = limit.rlim_cur;
    let target = limit.rlim_max.min(CEILING);
    if before >= target {
        return Ok(OpenFiles {
            before,
            now: before,
        });
    }
    limit.rlim_cur = target;
    // SAFETY: `limit` is a valid `rlimit` for the call's duration.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OpenFiles {
        before,
        now: target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one_and_kept_there() {
        let first = raise_open_files().expect("getrlimit");
        assert!(first.now >= first.before, "{first:?}");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, first.now);
        assert_eq!(
            first.now,
            limit.rlim_max.min(CEILING),
            "raised to the hard limit"
        );
        let again = raise_open_files().expect("getrlimit");
        assert_eq!((again.before, again.now), (first.now, first.now));
    }

    #[test]
    fn the_connection_cap_and_the_spare_files_must_fit() {
        let limit = OpenFiles {
            before: 1024,
            now: 1024,
        };
        assert!(limit.fits(1024 - SPARE_FILES as usize));
        assert!(!limit.fits(1024));
    }
}
