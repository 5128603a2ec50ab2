//! How (tenant, API, cache) maps to engine namespace bytes, collision-free.
//!
//! | bytes | meaning |
//! |---|---|
//! | `T` | tenant data |
//! | 1 byte | tenant name length (tenant names are 1..=64 bytes) |
//! | n bytes | tenant name |
//! | 1 byte | API: `f` Flash app, `i` IronCache cache, `a` Akka cacheName, `d` Akka descriptions |
//! | rest | Flash: app name · Iron: 24-byte lowercase project id + cache name · Akka: cacheName |
//!
//! The length prefix keeps tenants apart (`("tt","orgc")` never equals `("ttorg","c")`), the
//! fixed-width project id keeps projects apart, and the reserved `S` prefix holds the
//! server's own tenants and credentials, which no API can name.

/// Longest tenant name.
pub const MAX_TENANT_LEN: usize = 64;
/// Length of an IronCache project id.
pub const IRON_PROJECT_LEN: usize = 24;

/// Namespace of the server's tenant records.
pub const SYSTEM_TENANTS: &[u8] = b"S\x00tenants";
/// Namespace of the server's credential records.
pub const SYSTEM_CREDENTIALS: &[u8] = b"S\x00credentials";

/// Whether `name` can be a tenant: 1..=64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TENANT_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn tenant_api(tenant: &str, api: u8) -> Vec<u8> {
    let mut ns = Vec::with_capacity(3 + tenant.len() + 32);
    ns.push(b'T');
    // Tenant names are validated to at most 64 bytes before they get here.
    ns.push(u8::try_from(tenant.len()).unwrap_or(u8::MAX));
    ns.extend_from_slice(tenant.as_bytes());
    ns.push(api);
    ns
}

/// A Flash Cache app's namespace.
pub fn flash(tenant: &str, app: &str) -> Vec<u8> {
    let mut ns = tenant_api(tenant, b'f');
    ns.extend_from_slice(app.as_bytes());
    ns
}

/// The prefix of every cache of an IronCache project (`project` is 24 lowercase hex digits).
pub fn iron_project(tenant: &str, project: &str) -> Vec<u8> {
    let mut ns = tenant_api(tenant, b'i');
    ns.extend_from_slice(project.as_bytes());
    ns
}

/// An IronCache cache's namespace.
pub fn iron_cache(tenant: &str, project: &str, cache: &str) -> Vec<u8> {
    let mut ns = iron_project(tenant, project);
    ns.extend_from_slice(cache.as_bytes());
    ns
}

/// The prefix of every Akka cacheName of a tenant.
pub fn akka_prefix(tenant: &str) -> Vec<u8> {
    tenant_api(tenant, b'a')
}

/// An Akka cacheName's namespace.
pub fn akka_cache(tenant: &str, cache_name: &str) -> Vec<u8> {
    let mut ns = akka_prefix(tenant);
    ns.extend_from_slice(cache_name.as_bytes());
    ns
}

/// The namespace holding a tenant's Akka cacheName descriptions (key = cacheName).
pub fn akka_descriptions(tenant: &str) -> Vec<u8> {
    tenant_api(tenant, b'd')
}

/// What an engine namespace is, read back from its bytes (for export, stats and the
/// status page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A Flash Cache app.
    Flash {
        /// Owning tenant.
        tenant: String,
        /// App name.
        app: String,
    },
    /// An IronCache cache.
    Iron {
        /// Owning tenant.
        tenant: String,
        /// 24-digit project id.
        project: String,
        /// Cache name.
        cache: String,
    },
    /// An Akka cacheName.
    Akka {
        /// Owning tenant.
        tenant: String,
        /// cacheName.
        cache: String,
    },
    /// A tenant's Akka cacheName descriptions.
    AkkaDescriptions {
        /// Owning tenant.
        tenant: String,
    },
    /// The server's tenant records.
    SystemTenants,
    /// The server's credential records.
    SystemCredentials,
}

impl Parsed {
    /// The owning tenant, if any.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Flash { tenant, .. }
            | Self::Iron { tenant, .. }
            | Self::Akka { tenant, .. }
            | Self::AkkaDescriptions { tenant } => Some(tenant),
            Self::SystemTenants | Self::SystemCredentials => None,
        }
    }

    /// The namespace bytes this names (the inverse of [`parse`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Flash { tenant, app } => flash(tenant, app),
            Self::Iron {
                tenant,
                project,
                cache,
            } => iron_cache(tenant, project, cache),
            Self::Akka { tenant, cache } => akka_cache(tenant, cache),
            Self::AkkaDescriptions { tenant } => akka_descriptions(tenant),
            Self::SystemTenants => SYSTEM_TENANTS.to_vec(),
            Self::SystemCredentials => SYSTEM_CREDENTIALS.to_vec(),
        }
    }
}

/// Reads namespace bytes back; `None` for bytes no ttlcask server writes.
pub fn parse(ns: &[u8]) -> Option<Parsed> {
    if ns == SYSTEM_TENANTS {
        return Some(Parsed::SystemTenants);
    }
    if ns == SYSTEM_CREDENTIALS {
        return Some(Parsed::SystemCredentials);
    }
    let (&tag, rest) = ns.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if tag != b'T' || rest.len() < usize::from(len) + 1 {
        return None;
    }
    let (tenant, rest) = rest.split_at(usize::from(len));
    let tenant = std::str::from_utf8(tenant).ok()?.to_string();
    let (&api, rest) = rest.split_first()?;
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
    Some(match api {
        b'f' => Parsed::Flash {
            tenant,
            app: text(rest)?,
        },
        b'i' if rest.len() >= IRON_PROJECT_LEN => Parsed::Iron {
            tenant,
            project: text(&rest[..IRON_PROJECT_LEN])?,
            cache: text(&rest[IRON_PROJECT_LEN..])?,
        },
        b'a' => Parsed::Akka {
            tenant,
            cache: text(rest)?,
        },
        b'd' if rest.is_empty() => Parsed::AkkaDescriptions { tenant },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_inverts_every_constructor() {
        let project = "4ccf2c5da3c0f1a4d1000011";
        for p in [
            Parsed::Flash {
                tenant: "t".into(),
                app: "default".into(),
            },
            Parsed::Iron {
                tenant: "t".into(),
                project: project.into(),
                cache: "c/é".into(),
            },
            Parsed::Akka {
                tenant: "ttorg".into(),
                cache: "".into(),
            },
            Parsed::AkkaDescriptions { tenant: "t".into() },
            Parsed::SystemTenants,
            Parsed::SystemCredentials,
        ] {
            assert_eq!(parse(&p.to_bytes()), Some(p));
        }
        assert_eq!(parse(b"Tx"), None);
        assert_eq!(parse(b"other"), None);
    }

    #[test]
    fn tenants_cannot_collide_by_concatenation() {
        assert_ne!(akka_cache("tt", "orgc"), akka_cache("ttorg", "c"));
        assert_ne!(flash("a", "b"), iron_project("a", "b"));
        assert!(!akka_cache("t", "x").starts_with(&akka_descriptions("t")));
        assert!(!akka_cache("t", "x").starts_with(SYSTEM_TENANTS));
    }

    #[test]
    fn tenant_names() {
        assert!(valid_tenant("ttorg"));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a/b"));
        assert!(!valid_tenant(&"x".repeat(65)));
    }
}
