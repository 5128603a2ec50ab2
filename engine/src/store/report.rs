//! What opening a store found and repaired: the [`RecoveryReport`] and its damaged ranges.

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments whose index came from a hint file.
    pub segments_from_hints: u64,
    /// Segments that were read record by record.
    pub segments_scanned: u64,
    /// Records indexed.
    pub records: u64,
    /// Torn or corrupt tails cut off: (segment id, offset of the cut, bytes dropped).
    pub truncated: Vec<(u32, u64, u64)>,
    /// Files that were not usable and were left alone, with the reason.
    pub ignored_files: Vec<String>,
    /// Damaged byte ranges found inside segments that were kept (never cut), in segment
    /// and offset order.
    pub damaged: Vec<DamagedRange>,
    /// Keys whose newest record may lie in a damaged range: reads of them return
    /// [`ReadError::Lost`](crate::ReadError::Lost) until they are written again.
    pub keys_lost: u64,
    /// Records read intact from damaged segments (around the damage).
    pub records_salvaged: u64,
}

impl RecoveryReport {
    /// Whether opening found nothing damaged or unusable. What a crash leaves behind is no
    /// damage, as a strict open judges it: a write torn in flight at the end of the segment
    /// being appended to (cut, in `truncated`) and a segment whose header never reached the
    /// disk (removed, in `ignored_files`). Both made an ordinary kill -9 read as "damage
    /// found" (found from outside).
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.ignored_files.iter().all(|f| is_blank_removal(f))
    }

    /// Bytes cut off torn tails.
    pub fn bytes_cut(&self) -> u64 {
        self.truncated.iter().map(|t| t.2).sum()
    }
}

/// Whether an `ignored_files` line is that of a blank segment the open removed (created, its
/// header not on disk yet, at a crash).
pub fn is_blank_removal(line: &str) -> bool {
    line.ends_with(crate::recovery::BLANK_SEGMENT)
}

/// A damaged byte range of a segment, found by recovery or compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// Segment id.
    pub segment: u32,
    /// Offset of the first damaged byte range in the segment file.
    pub offset: u64,
    /// Length of the damaged range in bytes.
    pub len: u64,
    /// Records the range held, where the frame's trailer says; `None` if unknown.
    pub records: Option<u64>,
    /// What was wrong.
    pub problem: String,
}
