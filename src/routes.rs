//! The route table: every route of the Flash Cache, IronCache, Akka Cache and service APIs,
//! defined once. The router dispatches on it ([`classify`] then [`Route::handler`]), the
//! APIs check methods with [`Route::allows`], a 405 gets its `Allow` header from
//! [`Route::allow`], `/metrics` labels requests by [`Route::label`], and a unit test checks
//! the table against `openapi.json` both ways.
//!
//! Precedence (DESIGN.md): rows are tried in order and the first match wins; a `{param}` in
//! the first segment never matches a name in [`RESERVED_FIRST_SEGMENTS`], so Akka's
//! `/{cacheName}/...` can never shadow (or be shadowed by) another API. The `/...` rows at the end
//! catch the rest of each API's prefix (label `other`). The admin endpoint is one row here:
//! its routes are matched inside [`crate::admin`].
//!
//! Matching is on the raw path, split on `/` (at most [`MAX_SEGMENTS`] segments, no
//! allocation); percent-encoded literal segments (`/%63acheName`) are not decoded to match.

use hyper::Method;

/// Names that the service and the other APIs own at the first path segment; Akka refuses
/// them as cacheNames so that `/{cacheName}/{key}` can never shadow or be shadowed.
pub const RESERVED_FIRST_SEGMENTS: &[&str] = &[
    "v1",
    "1",
    "version",
    "healthz",
    "metrics",
    "openapi.json",
    "admin",
    "cacheName",
    "batch",
    "get",
    "set",
    "list",
];

/// Which API a route belongs to (the `api` label of `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Flash Cache, `/v1/cache/...`.
    Flash,
    /// IronCache, `/1/...` and `/version`.
    Iron,
    /// Akka Cache, everything no other API claims.
    Akka,
    /// `/healthz`, `/metrics`, `/openapi.json`, `/`.
    Service,
    /// `/admin/...`.
    Admin,
}

impl Api {
    /// Every API, in the order of [`Api::index`].
    pub const ALL: [Api; 5] = [Api::Flash, Api::Iron, Api::Akka, Api::Service, Api::Admin];

    /// The `api` label.
    pub const fn label(self) -> &'static str {
        match self {
            Api::Flash => "flash",
            Api::Iron => "iron",
            Api::Akka => "akka",
            Api::Service => "service",
            Api::Admin => "admin",
        }
    }

    /// The position in [`Api::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What serves a route: the router and each API dispatch on this instead of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    FlashAdd,
    FlashUpdate,
    FlashGet,
    FlashDelete,
    IronVersion,
    IronCaches,
    IronCache,
    IronClear,
    IronItem,
    IronIncrement,
    AkkaNames,
    AkkaNameList,
    AkkaName,
    AkkaNameKeys,
    AkkaNameFlush,
    AkkaSet,
    AkkaJsonGet,
    AkkaBatch,
    AkkaBatchGet,
    AkkaItem,
    AkkaItemTtl,
    Healthz,
    Metrics,
    OpenApi,
    StatusPage,
    /// Every `/admin/...` path; [`crate::admin`] routes further.
    Admin,
    /// No route: the API's own "not found" (label `other`).
    NotFound,
}

/// One route: the paths it answers, the methods it accepts, and what serves it.
#[derive(Debug)]
pub struct Route {
    /// The API it belongs to.
    pub api: Api,
    /// Path templates (`{name}` is one segment, a final `...` any number); the first is the
    /// `route` label of `/metrics`, the others are aliases.
    pub paths: &'static [&'static str],
    /// The methods it accepts, as the `Allow` header of a 405 lists them ("" for none).
    pub allow: &'static str,
    /// What serves it.
    pub handler: Handler,
    methods: u8,
    item_read: bool,
    patterns: [Option<Pattern>; MAX_ALIASES],
}

/// The table. Order is precedence.
pub const ROUTES: &[Route] = &[
    route(Api::Flash, &["/v1/cache/add"], "POST", Handler::FlashAdd),
    route(
        Api::Flash,
        &["/v1/cache/update"],
        "PUT",
        Handler::FlashUpdate,
    ),
    route(
        Api::Flash,
        &["/v1/cache/get"],
        "GET, HEAD",
        Handler::FlashGet,
    ),
    route(
        Api::Flash,
        &["/v1/cache/delete"],
        "DELETE",
        Handler::FlashDelete,
    ),
    route(Api::Flash, &["/v1/cache/..."], "", Handler::NotFound),
    route(
        Api::Iron,
        &["/1/version", "/version"],
        "GET",
        Handler::IronVersion,
    ),
    route(
        Api::Iron,
        &["/1/projects/{project}/caches"],
        "GET",
        Handler::IronCaches,
    ),
    route(
        Api::Iron,
        &["/1/projects/{project}/caches/{cache}"],
        "GET, DELETE",
        Handler::IronCache,
    ),
    route(
        Api::Iron,
        &["/1/projects/{project}/caches/{cache}/clear"],
        "POST",
        Handler::IronClear,
    ),
    route(
        Api::Iron,
        &["/1/projects/{project}/caches/{cache}/items/{key}"],
        "GET, PUT, DELETE",
        Handler::IronItem,
    ),
    route(
        Api::Iron,
        &["/1/projects/{project}/caches/{cache}/items/{key}/increment"],
        "POST",
        Handler::IronIncrement,
    ),
    route(Api::Iron, &["/1/..."], "", Handler::NotFound),
    route(
        Api::Akka,
        &["/cacheName"],
        "POST, PUT, OPTIONS",
        Handler::AkkaNames,
    ),
    route(
        Api::Akka,
        &["/cacheName/list"],
        "GET, OPTIONS",
        Handler::AkkaNameList,
    ),
    route(
        Api::Akka,
        &["/cacheName/{cacheName}"],
        "GET, DELETE, OPTIONS",
        Handler::AkkaName,
    ),
    route(
        Api::Akka,
        &["/cacheName/{cacheName}/keys"],
        "GET, OPTIONS",
        Handler::AkkaNameKeys,
    ),
    route(
        Api::Akka,
        &["/cacheName/{cacheName}/flush"],
        "POST, PUT, OPTIONS",
        Handler::AkkaNameFlush,
    ),
    route(Api::Akka, &["/set"], "POST, OPTIONS", Handler::AkkaSet),
    route(
        Api::Akka,
        &["/get/{cacheName}/{key}"],
        "GET, OPTIONS",
        Handler::AkkaJsonGet,
    ),
    route(
        Api::Akka,
        &["/batch"],
        "POST, DELETE, OPTIONS",
        Handler::AkkaBatch,
    ),
    route(
        Api::Akka,
        &["/batch/get"],
        "POST, OPTIONS",
        Handler::AkkaBatchGet,
    ),
    route(
        Api::Akka,
        &["/{cacheName}/{key}"],
        "GET, HEAD, POST, DELETE, OPTIONS",
        Handler::AkkaItem,
    ),
    route(
        Api::Akka,
        &["/{cacheName}/{key}/{ttlSeconds}"],
        "POST, OPTIONS",
        Handler::AkkaItemTtl,
    ),
    route(Api::Service, &["/healthz"], "GET, HEAD", Handler::Healthz),
    route(Api::Service, &["/metrics"], "GET, HEAD", Handler::Metrics),
    route(
        Api::Service,
        &["/openapi.json"],
        "GET, HEAD",
        Handler::OpenApi,
    ),
    route(Api::Service, &["/"], "GET, HEAD", Handler::StatusPage),
    route(Api::Admin, &["/admin/..."], "", Handler::Admin),
    // Last: whatever no row above claimed is Akka's (its OPTIONS preflight answers anywhere).
    route(Api::Akka, &["/..."], "", Handler::NotFound),
];

/// The most segments a path template has, plus one: paths are split that far.
pub const MAX_SEGMENTS: usize = 9;
const MAX_ALIASES: usize = 2;

impl Route {
    /// The `route` label of `/metrics`: the first path, or `other` for an API's not-found.
    pub const fn label(&self) -> &'static str {
        match self.handler {
            Handler::NotFound => "other",
            _ => self.paths[0],
        }
    }

    /// Whether the route accepts `method`.
    pub fn allows(&self, method: &Method) -> bool {
        self.methods & method_bit(method) != 0
    }

    /// Whether a `method` request answered 200 or 404 is an item lookup (a hit or a miss).
    pub fn is_item_read(&self, method: &Method) -> bool {
        self.item_read && (*method == Method::GET || self.handler == Handler::FlashGet)
    }
}

/// The position in [`ROUTES`] of the route `path` belongs to (whatever its method).
pub fn classify(path: &str) -> usize {
    let mut segs = [""; MAX_SEGMENTS];
    let mut n = 0;
    for seg in crate::http::split_slash(path.strip_prefix('/').unwrap_or(path)).take(MAX_SEGMENTS) {
        segs[n] = seg;
        n += 1;
    }
    let segs = &segs[..n];
    let candidates = &CANDIDATES[n];
    let first = segs[0];
    for c in &candidates.at[..candidates.len] {
        // Most candidates differ in the first segment: test it before the pattern's others.
        let first_ok = match c.first {
            Seg::Literal(lit) => first.as_bytes() == lit,
            Seg::Param => !RESERVED_FIRST_SEGMENTS.contains(&first),
            Seg::None => true,
        };
        if first_ok && c.pattern.matches(segs) {
            return usize::from(c.row);
        }
    }
    ROUTES.len() - 1
}

/// The patterns that can match a path of `n` segments, as `(row, alias)`, in table order:
/// [`classify`] tries only these (a handful) instead of every row.
static CANDIDATES: [Candidates; MAX_SEGMENTS + 1] = {
    let mut by_len = [Candidates {
        len: 0,
        at: [Candidate {
            row: 0,
            first: Seg::None,
            pattern: &NO_PATTERN,
        }; MAX_CANDIDATES],
    }; MAX_SEGMENTS + 1];
    let mut n = 0;
    while n <= MAX_SEGMENTS {
        let c = &mut by_len[n];
        let mut row = 0;
        while row < ROUTES.len() {
            let mut alias = 0;
            while alias < MAX_ALIASES {
                if let Some(p) = &ROUTES[row].patterns[alias] {
                    if p.len == n || (p.prefix && p.len < n) {
                        assert!(c.len < MAX_CANDIDATES, "raise MAX_CANDIDATES");
                        c.at[c.len] = Candidate {
                            row: row as u8,
                            first: if p.len > 0 { p.segs[0] } else { Seg::None },
                            pattern: p,
                        };
                        c.len += 1;
                    }
                }
                alias += 1;
            }
            row += 1;
        }
        n += 1;
    }
    by_len
};
const MAX_CANDIDATES: usize = 16;

const NO_PATTERN: Pattern = Pattern {
    segs: [Seg::None; MAX_SEGMENTS],
    len: 0,
    prefix: true,
};

#[derive(Clone, Copy)]
struct Candidates {
    len: usize,
    at: [Candidate; MAX_CANDIDATES],
}

/// A pattern [`classify`] may try, with its first segment at hand.
#[derive(Clone, Copy)]
struct Candidate {
    row: u8,
    first: Seg,
    pattern: &'static Pattern,
}

/// The route at `index` (an index from [`classify`]).
pub fn get(index: usize) -> &'static Route {
    &ROUTES[index.min(ROUTES.len() - 1)]
}

/// The position of `handler`'s row in [`ROUTES`], found when compiling.
pub const fn index_of(handler: Handler) -> usize {
    let mut i = 0;
    while i < ROUTES.len() {
        if ROUTES[i].handler as u8 == handler as u8 {
            return i;
        }
        i += 1;
    }
    panic!("no route has this handler")
}

/// One path template, split into segments when compiling.
#[derive(Debug, Clone, Copy)]
struct Pattern {
    segs: [Seg; MAX_SEGMENTS],
    len: usize,
    /// Ends in `...`: matches paths with at least `len` segments.
    prefix: bool,
}

#[derive(Debug, Clone, Copy)]
enum Seg {
    Literal(&'static [u8]),
    Param,
    /// Past the end of a pattern.
    None,
}

impl Pattern {
    /// Whether `segs` (as many as the pattern has, or more for a prefix) match.
    fn matches(&self, segs: &[&str]) -> bool {
        for (i, (want, got)) in self.segs[..self.len].iter().zip(segs).enumerate() {
            let ok = match want {
                Seg::Literal(lit) => got.as_bytes() == *lit,
                Seg::Param => i > 0 || !RESERVED_FIRST_SEGMENTS.contains(got),
                Seg::None => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    const fn parse(template: &'static str) -> Pattern {
        let Some((b'/', mut rest)) = template.as_bytes().split_first() else {
            panic!("a path template starts with /")
        };
        let mut p = Pattern {
            segs: [Seg::None; MAX_SEGMENTS],
            len: 0,
            prefix: false,
        };
        loop {
            let mut end = 0;
            while end < rest.len() && rest[end] != b'/' {
                end += 1;
            }
            let (seg, tail) = rest.split_at(end);
            if matches!(seg, b"...") {
                assert!(tail.is_empty(), "... ends a path template");
                p.prefix = true;
                return p;
            }
            assert!(p.len < MAX_SEGMENTS - 1, "a path template is too long");
            p.segs[p.len] = match seg {
                [b'{', .., b'}'] => Seg::Param,
                _ => Seg::Literal(seg),
            };
            p.len += 1;
            match tail.split_first() {
                Some((_, t)) => rest = t,
                None => return p,
            }
        }
    }
}

const fn route(
    api: Api,
    paths: &'static [&'static str],
    allow: &'static str,
    handler: Handler,
) -> Route {
    assert!(!paths.is_empty() && paths.len() <= MAX_ALIASES);
    let mut patterns = [None; MAX_ALIASES];
    let mut i = 0;
    while i < paths.len() {
        patterns[i] = Some(Pattern::parse(paths[i]));
        i += 1;
    }
    Route {
        api,
        paths,
        allow,
        handler,
        methods: parse_methods(allow),
        item_read: matches!(
            handler,
            Handler::FlashGet | Handler::IronItem | Handler::AkkaItem
        ),
        patterns,
    }
}

/// The methods an `Allow` list may name; bit `i` of [`Route`]'s mask is `METHOD_NAMES[i]`.
const METHOD_NAMES: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"];

/// `method`'s bit (positions in [`METHOD_NAMES`]); 0 for any other method.
fn method_bit(method: &Method) -> u8 {
    match *method {
        Method::GET => 1,
        Method::HEAD => 1 << 1,
        Method::POST => 1 << 2,
        Method::PUT => 1 << 3,
        Method::DELETE => 1 << 4,
        Method::OPTIONS => 1 << 5,
        _ => 0,
    }
}

/// `"GET, HEAD"` as bits of [`METHOD_NAMES`]; an unknown name fails the build.
const fn parse_methods(allow: &str) -> u8 {
    let mut rest = allow.as_bytes();
    let mut bits = 0;
    while !rest.is_empty() {
        let mut end = 0;
        while end < rest.len() && rest[end] != b',' {
            end += 1;
        }
        let (name, tail) = rest.split_at(end);
        let mut m = 0;
        loop {
            assert!(m < METHOD_NAMES.len(), "unknown method in an Allow list");
            if bytes_eq(METHOD_NAMES[m].as_bytes(), name) {
                break;
            }
            m += 1;
        }
        bits |= 1 << m;
        rest = match tail {
            [b',', b' ', t @ ..] => t,
            [] => tail,
            _ => panic!("an Allow list is \"A, B\""),
        };
    }
    bits
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A template with its `{names}` blanked: OpenAPI and the labels name parameters apart.
    fn shape(template: &str) -> String {
        template
            .split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A request path for a template: each parameter becomes `x`.
    fn sample(template: &str) -> String {
        template
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn openapi() -> BTreeMap<String, (String, Vec<String>)> {
        let doc: serde_json::Value =
            serde_json::from_str(crate::router::OPENAPI_JSON).expect("openapi.json");
        let paths = doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .map(|(p, ops)| {
                let mut methods: Vec<String> = ops
                    .as_object()
                    .expect("operations")
                    .keys()
                    .filter(|m| m.as_str() != "parameters")
                    .map(|m| m.to_uppercase())
                    .collect();
                methods.sort();
                (shape(p), (p.clone(), methods))
            })
            .collect()
    }

    /// The methods of `allow` as OpenAPI documents them: HEAD and Akka's CORS preflight
    /// are left out of the document.
    fn documented(allow: &str) -> Vec<String> {
        let mut m: Vec<String> = allow
            .split(", ")
            .filter(|m| !matches!(*m, "HEAD" | "OPTIONS"))
            .map(str::to_string)
            .collect();
        m.sort();
        m
    }

    #[test]
    fn every_route_is_in_the_openapi_document_with_its_methods() {
        let doc = openapi();
        for r in ROUTES {
            if matches!(r.handler, Handler::NotFound | Handler::Admin) {
                continue;
            }
            for p in r.paths {
                let (documented_as, methods) = doc
                    .get(&shape(p))
                    .unwrap_or_else(|| panic!("{p} is routed but not in openapi.json"));
                assert_eq!(methods, &documented(r.allow), "{documented_as}");
            }
        }
    }

    #[test]
    fn every_openapi_path_is_routed() {
        for (shape_of, (p, _)) in openapi() {
            let r = get(classify(&sample(&p)));
            if p.starts_with("/admin/") {
                // Matched inside `admin`; `tests/operating_endpoints.rs` calls each one.
                assert_eq!(r.handler, Handler::Admin, "{p}");
                continue;
            }
            assert!(
                r.paths.iter().any(|t| shape(t) == shape_of),
                "{p} is documented but routed to {:?}",
                r.paths
            );
        }
    }

    #[test]
    fn every_path_of_every_route_reaches_it() {
        for (i, r) in ROUTES.iter().enumerate() {
            for p in r.paths {
                let path = sample(p).replace("...", "z");
                assert_eq!(classify(&path), i, "{path}");
            }
        }
    }

    #[test]
    fn reserved_names_are_never_a_cache_name() {
        for name in RESERVED_FIRST_SEGMENTS {
            let r = get(classify(&format!("/{name}/k")));
            assert!(
                !matches!(r.handler, Handler::AkkaItem | Handler::AkkaItemTtl),
                "{name}"
            );
        }
        assert_eq!(get(classify("/healthz/x")).label(), "other");
        assert_eq!(get(classify("/a/b/c/d")).api, Api::Akka);
        assert_eq!(get(classify("/v1/cache")).api, Api::Flash);
        assert_eq!(get(classify("/v1")).api, Api::Akka);
        assert_eq!(get(classify("/1")).api, Api::Iron);
        assert_eq!(get(classify("/admin")).handler, Handler::Admin);
        assert_eq!(get(classify("/c/k/1/2/3/4/5/6/7/8/9")).label(), "other");
    }

    #[test]
    fn methods_follow_the_allow_lists() {
        let item = get(index_of(Handler::AkkaItem));
        assert!(item.allows(&Method::HEAD) && item.allows(&Method::OPTIONS));
        assert!(!item.allows(&Method::PUT) && !item.allows(&Method::PATCH));
        let not_found = get(classify("/v1/cache/zzz"));
        assert!(!not_found.allows(&Method::GET));
        for r in ROUTES {
            for m in r.allow.split(", ").filter(|m| !m.is_empty()) {
                let m = Method::from_bytes(m.as_bytes()).expect("method");
                assert!(r.allows(&m), "{} {m}", r.label());
            }
        }
    }

    #[test]
    fn each_handler_has_one_row_and_labels_are_unique() {
        let mut labels = std::collections::BTreeSet::new();
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(labels.insert((r.api.label(), r.label())), "{:?}", r.paths);
            if r.handler != Handler::NotFound {
                assert_eq!(index_of(r.handler), i, "{:?}", r.handler);
            }
        }
    }
}
