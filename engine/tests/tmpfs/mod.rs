//! A small tmpfs for the tests that fill or starve a real file system (root only; the
//! tests skip loudly where mounting is refused).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A mounted tmpfs, unmounted when dropped, even when the test fails.
pub struct Mount {
    pub point: PathBuf,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.point)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.point).status();
        }
    }
}

/// Whether this process runs as root (mounting needs it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// A tmpfs with mount `options` (`size=4m`, `nr_inodes=64`, …) at `<tmp>/mnt`; the error is
/// `mount`'s message.
pub fn mount(tmp: &Path, options: &str) -> Result<Mount, String> {
    let point = tmp.join("mnt");
    std::fs::create_dir_all(&point).map_err(|e| e.to_string())?;
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(&point)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(Mount { point })
}

/// Remounts `mount` with `options` (`ro`, `rw`); the error is `mount`'s message.
#[allow(
    dead_code,
    reason = "a shared test module: not every test binary remounts"
)]
pub fn remount(mount: &Mount, options: &str) -> Result<(), String> {
    let out = Command::new("mount")
        .args(["-o", &format!("remount,{options}")])
        .arg(&mount.point)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(())
}
