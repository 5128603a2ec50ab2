//! The slot maps: one line `<slot> <backend>` per slot, read by HAProxy's `map()` converter.
//! The read map routes GET-like requests, the write map the rest; a paused slot's writes
//! go to the `paused` backend while its reads still reach its node.
//!
//! Map files are replaced atomically and never overwritten by `cluster haproxy`: after the
//! first generation, only `cluster move` changes them, so a reload always finds the owners
//! the last move set.

use std::ops::RangeInclusive;
use std::path::Path;

use crate::slot::SLOTS;

/// One map: the backend of each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap(pub Vec<String>);

impl SlotMap {
    /// Slots spread evenly over `nodes` in contiguous ranges (counts differ by at most one).
    pub fn spread(nodes: &[&str]) -> Self {
        let n = nodes.len().max(1);
        Self(
            (0..usize::from(SLOTS))
                .map(|s| {
                    nodes
                        .get(s * n / usize::from(SLOTS))
                        .copied()
                        .unwrap_or(super::PAUSED)
                        .to_string()
                })
                .collect(),
        )
    }

    /// Reads a map file; every slot must be listed.
    ///
    /// # Errors
    /// A message naming the file and line.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read map {}: {e}", path.display()))?;
        let mut slots = vec![None; usize::from(SLOTS)];
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                format!(
                    "map {} line {}: expected `<slot> <backend>`",
                    path.display(),
                    i + 1
                )
            };
            let (slot, backend) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
            let slot: usize = slot.parse().map_err(|_| bad())?;
            *slots.get_mut(slot).ok_or_else(bad)? = Some(backend.trim().to_string());
        }
        slots
            .into_iter()
            .enumerate()
            .map(|(s, b)| b.ok_or_else(|| format!("map {} lacks slot {s}", path.display())))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 12);
        for (slot, backend) in self.0.iter().enumerate() {
            out.push_str(&format!("{slot} {backend}\n"));
        }
        out
    }

    /// Replaces the file atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        crate::atomic_file::write(path, self.render().as_bytes())
    }

    /// Points `range` at `backend`.
    pub fn set(&mut self, range: RangeInclusive<u16>, backend: &str) {
        for s in range {
            if let Some(b) = self.0.get_mut(usize::from(s)) {
                *b = backend.to_string();
            }
        }
    }

    /// The backend of `slot`.
    pub fn get(&self, slot: u16) -> &str {
        self.0
            .get(usize::from(slot))
            .map_or(super::PAUSED, String::as_str)
    }

    /// How many slots point at `backend`.
    pub fn count(&self, backend: &str) -> usize {
        self.0.iter().filter(|b| *b == backend).count()
    }
}

/// Writes a map only if no file is there yet (`cluster haproxy` never overwrites one).
/// Returns whether it wrote.
///
/// # Errors
/// The file cannot be written.
pub fn create_if_missing(path: &Path, map: &SlotMap) -> Result<bool, String> {
    if path.exists() {
        return Ok(false);
    }
    map.write(path).map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_even_and_round_trips() -> Result<(), String> {
        let map = SlotMap::spread(&["a", "b", "c"]);
        let counts = [map.count("a"), map.count("b"), map.count("c")];
        assert!(counts.iter().max() <= Some(&(counts.iter().min().unwrap_or(&0) + 1)));
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("m.map");
        assert!(create_if_missing(&path, &map)?);
        assert!(!create_if_missing(&path, &SlotMap::spread(&["z"]))?);
        assert_eq!(SlotMap::read(&path)?, map);
        Ok(())
    }
}
