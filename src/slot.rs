//! Slots: the unit of placement in a cluster (DESIGN.md "More than one machine"). A request's
//! slot is `crc32(shard key) mod 1024`, the IEEE CRC-32 that HAProxy's `crc32` converter
//! computes. Shard keys: Flash Cache the `ClientId` header (one per tenant), IronCache the
//! project id lower-cased (as HAProxy's `path,field(4,/),url_dec,lower`), Akka Cache the
//! JWT `org` (the tenant).
//!
//! An engine namespace names its tenant, and an IronCache namespace its project, but a Flash
//! namespace does not hold the `ClientId`: [`ClientIds`] finds it in the tenant's registry
//! record (the `--dev` tenant without one has the documents' sample `ClientId`).

use std::collections::HashMap;
use std::ops::RangeInclusive;

use crate::auth::{registry::Registry, DEV_FLASH_CLIENT_ID, DEV_TENANT};
use crate::namespace::Parsed;

/// Number of slots.
pub const SLOTS: u16 = 1024;

/// The slot of a shard key.
pub fn of_key(shard_key: &[u8]) -> u16 {
    // The remainder is below 1024, so it always fits.
    u16::try_from(crc32fast::hash(shard_key) % u32::from(SLOTS)).unwrap_or(0)
}

/// Each tenant's Flash `ClientId`, for the slot of its Flash caches.
#[derive(Debug, Clone, Default)]
pub struct ClientIds(HashMap<String, String>);

impl ClientIds {
    /// The ClientIds of every tenant in `registry`.
    pub fn from_registry(registry: &Registry) -> Self {
        Self(
            registry
                .tenants()
                .map(|t| (t.name.clone(), t.flash_client_id.clone()))
                .collect(),
        )
    }

    /// The `ClientId` that reaches `tenant`'s Flash caches, if any does.
    pub fn of(&self, tenant: &str) -> Option<&str> {
        match self.0.get(tenant) {
            Some(id) => Some(id),
            None if tenant == DEV_TENANT => Some(DEV_FLASH_CLIENT_ID),
            None => None,
        }
    }
}

/// The slot that holds a namespace's data, or `None` for the server's own records (which
/// every node holds) and for a Flash tenant that has no `ClientId` (no request reaches it).
pub fn of_namespace(ns: &Parsed, client_ids: &ClientIds) -> Option<u16> {
    match ns {
        Parsed::Flash { tenant, .. } => client_ids.of(tenant).map(|id| of_key(id.as_bytes())),
        Parsed::Iron { project, .. } => Some(of_key(project.to_ascii_lowercase().as_bytes())),
        Parsed::Akka { tenant, .. } | Parsed::AkkaDescriptions { tenant } => {
            Some(of_key(tenant.as_bytes()))
        }
        Parsed::SystemTenants | Parsed::SystemCredentials => None,
    }
}

/// Parses `A..B` (inclusive) or a single slot `A`.
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("invalid slot range {text:?}: use A..B or A, with 0 <= A <= B < {SLOTS}");
    let (a, b) = text.split_once("..").unwrap_or((text, text));
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a > b || b >= SLOTS {
        return Err(bad());
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_zlib_crc32_mod_1024() {
        // zlib.crc32(b"123456789") == 0xCBF43926, the CRC-32 check value.
        assert_eq!(of_key(b"123456789"), (0xCBF4_3926u32 % 1024) as u16);
        assert_eq!(of_key(b""), 0);
    }

    #[test]
    fn each_api_uses_its_shard_key() {
        let ids = ClientIds::default();
        let project = "4CCF2C5DA3C0F1A4D1000011";
        let iron = Parsed::Iron {
            tenant: "acme".into(),
            project: project.into(),
            cache: "c".into(),
        };
        assert_eq!(
            of_namespace(&iron, &ids),
            Some(of_key(project.to_ascii_lowercase().as_bytes()))
        );
        let akka = Parsed::Akka {
            tenant: "acme".into(),
            cache: "c".into(),
        };
        assert_eq!(of_namespace(&akka, &ids), Some(of_key(b"acme")));
        let flash = |tenant: &str| Parsed::Flash {
            tenant: tenant.into(),
            app: "default".into(),
        };
        assert_eq!(of_namespace(&flash("acme"), &ids), None, "no ClientId");
        assert_eq!(
            of_namespace(&flash(DEV_TENANT), &ids),
            Some(of_key(DEV_FLASH_CLIENT_ID.as_bytes()))
        );
        assert_eq!(of_namespace(&Parsed::SystemTenants, &ids), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0..1023"), Ok(0..=1023));
        assert_eq!(parse_range("7"), Ok(7..=7));
        assert!(parse_range("5..4").is_err());
        assert!(parse_range("0..1024").is_err());
        assert!(parse_range("a..b").is_err());
    }
}
