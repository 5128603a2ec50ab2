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
        let mut slots: Vec<Option<(String, usize)>> = vec![None; usize::from(SLOTS)];
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
            let (key, backend) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
            let slot: usize = key.parse().map_err(|_| bad())?;
            // HAProxy looks slots up as text: `0331` or `+331` is never the key `331` it is
            // asked for, and that slot would answer 503 while this count gave it an owner
            // (found from outside).
            if key != slot.to_string() {
                return Err(format!(
                    "map {} line {}: slot `{key}` is not written as HAProxy looks it up (`{slot}`)",
                    path.display(),
                    i + 1
                ));
            }
            let entry = slots.get_mut(slot).ok_or_else(bad)?;
            if let Some((_, first)) = entry {
                // HAProxy takes the first line for a key, a later one here took the last:
                // the two sent the slot to different nodes.
                return Err(format!(
                    "map {} line {}: slot {slot} is listed again (first on line {first})",
                    path.display(),
                    i + 1
                ));
            }
            *entry = Some((backend.trim().to_string(), i + 1));
        }
        slots
            .into_iter()
            .enumerate()
            .map(|(s, b)| {
                b.map(|(backend, _)| backend)
                    .ok_or_else(|| format!("map {} lacks slot {s}", path.display()))
            })
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
        crate::atomic_file::write(path, self.render().as_bytes()).map_err(|e| e.to_string())
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

    /// The slots whose value is neither one of `nodes` nor `paused`, as contiguous ranges
    /// with the name they give (HAProxy answers 503 for them: no node owns them).
    pub fn unknown_names(&self, nodes: &[&str]) -> Vec<(RangeInclusive<u16>, String)> {
        let mut out: Vec<(RangeInclusive<u16>, String)> = Vec::new();
        for (slot, name) in (0..SLOTS).zip(&self.0) {
            if name == super::PAUSED || nodes.contains(&name.as_str()) {
                continue;
            }
            match out.last_mut() {
                Some((r, n)) if n == name && *r.end() + 1 == slot => *r = *r.start()..=slot,
                _ => out.push((slot..=slot, name.clone())),
            }
        }
        out
    }
}

/// Each map value of `map` (read from `path`) that names no node of `nodes`, as
/// `<path>: slots A..B name X` lines; empty when every value is a node or `paused`.
pub fn unknown_names_report(map: &SlotMap, path: &Path, nodes: &[&str]) -> Vec<String> {
    map.unknown_names(nodes)
        .into_iter()
        .map(|(r, name)| {
            format!(
                "{}: slots {}..{} name {name:?}, which is not a node of the cluster file",
                path.display(),
                r.start(),
                r.end()
            )
        })
        .collect()
}

/// `cluster haproxy`'s side of the maps: checks the existing map files against the cluster
/// file's nodes and writes both with the initial layout when neither exists. Returns a line
/// per map saying which it did.
///
/// # Errors
/// Only one of the maps exists (a new one could disagree with moves the other records:
/// found from outside, twelfth session), a map names a node the cluster file lacks, a map
/// cannot be read, or one cannot be written. Nothing is written then.
pub fn prepare(file: &super::ClusterFile) -> Result<Vec<String>, String> {
    let names: Vec<&str> = file.nodes.iter().map(|n| n.name.as_str()).collect();
    let (read, write) = (&file.read_map, &file.write_map);
    let lone = |there: &Path, missing: &Path| {
        format!(
            "the slot map {there} exists but {missing} does not: a new one would send any slot moved since the first run back to its first owner. Copy the one that is left (cp {there} {missing}); if it names `paused` slots (a move was under way), make the read map name the node they were moving from, then run that move again. Nothing was written.",
            there = there.display(),
            missing = missing.display(),
        )
    };
    match (read.exists(), write.exists()) {
        (true, false) => return Err(lone(read, write)),
        (false, true) => return Err(lone(write, read)),
        _ => {}
    }
    let mut unknown = Vec::new();
    for path in [&file.read_map, &file.write_map] {
        if path.exists() {
            unknown.extend(unknown_names_report(&SlotMap::read(path)?, path, &names));
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "the slot maps name nodes that are not in the cluster file (nodes: {}):\n  {}\nNo node would own those slots (HAProxy answers 503 for them). If a node was renamed, give it its old name again in the cluster file; if a map was edited, make both maps name the node that holds those slots' data. Nothing was written.",
            names.join(", "),
            unknown.join("\n  ")
        ));
    }
    let spread = SlotMap::spread(&names);
    let mut done = Vec::new();
    for path in [&file.read_map, &file.write_map] {
        done.push(if create_if_missing(path, &spread)? {
            format!("wrote the slot map {}", path.display())
        } else {
            format!("kept the existing slot map {}", path.display())
        });
    }
    Ok(done)
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

    /// Found from outside (nineteenth session): HAProxy looks a slot up as text and takes
    /// the first line of a key, so a slot written `0331`, or listed twice, went elsewhere
    /// through the proxy than this reading said. Both are refused, naming the line; what
    /// HAProxy reads alike (spaces, tabs, comments) is still taken.
    #[test]
    fn slots_haproxy_would_read_otherwise_are_refused() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("m.map");
        let good = SlotMap::spread(&["a", "b"]).render();
        let edit = |from: &str, to: &str| good.replacen(from, to, 1);
        for (text, says) in [
            (edit("\n331 ", "\n0331 "), "`0331`"),
            (edit("\n331 ", "\n+331 "), "`+331`"),
            (
                edit("\n331 a\n", "\n331 a\n331 b\n"),
                "listed again (first on line 332)",
            ),
        ] {
            std::fs::write(&path, &text).map_err(|e| e.to_string())?;
            let refused = SlotMap::read(&path).err().ok_or("taken")?;
            assert!(refused.contains(says), "{refused}");
            assert!(refused.contains("line 332"), "{refused}");
        }
        let spaced = edit("\n331 a", "\n  331\ta  ") + "# a comment\n";
        std::fs::write(&path, spaced).map_err(|e| e.to_string())?;
        assert_eq!(SlotMap::read(&path)?, SlotMap::spread(&["a", "b"]));
        Ok(())
    }

    /// Found from outside (twelfth session): with one map lost, `cluster haproxy` wrote it
    /// anew from the initial layout while the other recorded moved slots.
    #[test]
    fn a_lone_map_is_not_joined_by_a_new_one() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let toml = dir.path().join("cluster.toml");
        std::fs::write(
            &toml,
            "haproxy_socket = \"s.sock\"\nread_map = \"read.map\"\nwrite_map = \"write.map\"\n[[nodes]]\nname = \"a\"\naddress = \"127.0.0.1:9001\"\nadmin_token = \"t\"\n[[nodes]]\nname = \"b\"\naddress = \"127.0.0.1:9002\"\nadmin_token = \"t\"\n",
        )
        .map_err(|e| e.to_string())?;
        let file = super::super::ClusterFile::load(&toml)?;
        assert_eq!(prepare(&file)?.len(), 2);
        let mut moved = SlotMap::read(&file.read_map)?;
        moved.set(0..=9, "b");
        for (there, missing) in [
            (&file.read_map, &file.write_map),
            (&file.write_map, &file.read_map),
        ] {
            moved.write(there)?;
            std::fs::remove_file(missing).map_err(|e| e.to_string())?;
            let refused = prepare(&file).err().ok_or("a lone map was joined")?;
            assert!(!missing.exists(), "{refused}");
            assert!(
                refused.contains(&format!("cp {} {}", there.display(), missing.display())),
                "{refused}"
            );
            assert_eq!(SlotMap::read(there)?, moved);
            std::fs::copy(there, missing).map_err(|e| e.to_string())?;
            assert!(prepare(&file)?.iter().all(|l| l.starts_with("kept")));
        }
        Ok(())
    }

    #[test]
    fn unknown_names_are_listed_as_ranges() {
        let mut map = SlotMap::spread(&["a", "b"]);
        map.set(3..=5, "c");
        map.set(6..=6, "paused");
        map.set(7..=7, "c");
        map.set(1000..=1023, "any");
        let found = map.unknown_names(&["a", "b"]);
        assert_eq!(
            found,
            [
                (3..=5, "c".to_string()),
                (7..=7, "c".to_string()),
                (1000..=1023, "any".to_string())
            ]
        );
        assert!(map.unknown_names(&["a", "b", "c", "any"]).is_empty());
    }
}
