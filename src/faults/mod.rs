//! What the server does when the disk misbehaves (DESIGN.md "Faults: damaged files and full
//! disks"): how a refused write is answered in every API ([`write_status`]), reads of damaged
//! records answered as misses ([`DamagedReads`]), `/healthz` ([`healthz`]), and what the
//! operator sees of the store's state: the recovery report in the log, `/metrics`, the status
//! page and `ttlcask stats` ([`StorageState`]).

mod damaged_reads;
mod stall_watch;
mod state;

use hyper::StatusCode;
use serde_json::json;
use ttlcask_engine::{Health, WriteError};

pub use damaged_reads::{DamagedReads, LOGGED_PLACES};
pub use stall_watch::StallWatch;
pub use state::{log_recovery, recovery_lines, StorageState};

use crate::http::{self, Resp};

/// The status every API answers a refused write with; each API wraps it in its own error
/// shape. A full disk is 507 Insufficient Storage (nothing was stored, and the client may
/// retry once space is freed), a data dir that refuses new files (an operator's `chmod` or
/// read-only mount, which passes) or a process out of file descriptors is 503, a value over the engine's limit is the client's
/// 400, and a failed or poisoned store is 500.
pub fn write_status(e: &WriteError) -> StatusCode {
    match e {
        WriteError::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        WriteError::DirNotWritable(_) | WriteError::OutOfDescriptors(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        WriteError::TooLarge { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status of a failed write of a file of the server's own (the fence file): 507 when
/// the disk or the quota is full, as [`write_status`] answers the engine's `DiskFull`, else 500.
pub fn io_status(e: &std::io::Error) -> StatusCode {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `GET /healthz`: 200 `{"status":"ok","disk_full":…}` while the store takes requests (a full
/// disk stays 200: reads and deletes still work, and a load balancer must keep sending
/// deletes; so does a data dir that refuses new files for a while, with
/// `"dir_not_writable":` its reason added, and a process out of file descriptors with
/// `"out_of_descriptors"`; and a write that has waited a second or more for the
/// disk, with `"disk_waiting_ms"`: writes wait, reads go on), 503 `{"status":"poisoned","reason":…}` once an
/// I/O failure poisoned the store.
pub fn healthz(health: &Health) -> Resp {
    match &health.poisoned {
        Some(reason) => http::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({
                "status": "poisoned",
                "reason": format!("the store refuses writes after an I/O failure ({reason}); fix the disk and restart the server"),
                "disk_full": health.disk_full,
            }),
        ),
        None => {
            let mut body = json!({ "status": "ok", "disk_full": health.disk_full });
            if let Some(reason) = &health.dir_not_writable {
                body["dir_not_writable"] = json!(format!(
                    "the data dir refuses new files ({reason}): writes that need a new segment are refused until it is writable again"
                ));
            }
            if let Some(reason) = &health.out_of_descriptors {
                body["out_of_descriptors"] = json!(format!(
                    "the server has no file descriptor left for a new segment ({reason}): writes that need one are refused until one is free (close connections, or raise the open-file limit)"
                ));
            }
            if let Some(ms) = health.disk_waiting_ms {
                body["disk_waiting_ms"] = json!(ms);
                body["disk_waiting"] = json!(format!(
                    "a write has waited {ms} ms for the disk (a frozen file system, a stalled device): writes wait until it answers, reads go on"
                ));
            }
            http::json(StatusCode::OK, &body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_error_has_its_status() {
        assert_eq!(
            write_status(&WriteError::DiskFull("no space left on device".into())),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            write_status(&WriteError::TooLarge {
                what: "value",
                size: 2,
                limit: 1
            }),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            write_status(&WriteError::DirNotWritable("EACCES".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            write_status(&WriteError::Poisoned("EIO".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            write_status(&WriteError::Io("EIO".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn a_full_disk_under_a_file_write_is_507() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(io_status(&enospc), StatusCode::INSUFFICIENT_STORAGE);
        let edquot = std::io::Error::from_raw_os_error(122);
        assert_eq!(io_status(&edquot), StatusCode::INSUFFICIENT_STORAGE);
        let eio = std::io::Error::from_raw_os_error(5);
        assert_eq!(io_status(&eio), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn healthz_is_503_only_when_poisoned() {
        let ok = healthz(&Health::default());
        assert_eq!(ok.status(), StatusCode::OK);
        let full = healthz(&Health {
            disk_full: true,
            ..Health::default()
        });
        assert_eq!(full.status(), StatusCode::OK);
        let denied = healthz(&Health {
            dir_not_writable: Some("Permission denied (os error 13)".into()),
            ..Health::default()
        });
        assert_eq!(denied.status(), StatusCode::OK);
        let no_files = healthz(&Health {
            out_of_descriptors: Some("Too many open files (os error 24)".into()),
            ..Health::default()
        });
        assert_eq!(no_files.status(), StatusCode::OK);
        let stalled = healthz(&Health {
            disk_waiting_ms: Some(1500),
            ..Health::default()
        });
        assert_eq!(stalled.status(), StatusCode::OK);
        let poisoned = healthz(&Health {
            poisoned: Some("fsync failed: EIO".into()),
            ..Health::default()
        });
        assert_eq!(poisoned.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
