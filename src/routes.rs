//! The route table: every route of the Flash Cache, IronCache, Akka Cache and service APIs,
//! defined once, as a row of method(s), path template(s), API and handler. The router
//! dispatches on it ([`classify`], then the row's [`Handler`]), the APIs check methods with
//! [`Route::allows`], a 405 gets its `Allow` header from [`Route::allow`], `/metrics` labels
//! requests by [`Route::label`], and unit tests check the table against `openapi.json` both
//! ways. The admin endpoint is one row (`/admin/...`): its routes are matched in
//! [`crate::admin`].
//!
//! Precedence (DESIGN.md): rows are tried in order and the first match wins; a `{param}` as
//! the first segment never matches a name in [`RESERVED_FIRST_SEGMENTS`], so Akka's
//! `/{cacheName}/...` can never shadow (or be shadowed by) another API. The `...` rows catch
//! the rest of an API's prefix (label `other`).
//!
//! Matching is on the raw path split on `/` (at most [`MAX_SEGMENTS`] segments, no
//! allocation), by a `match` that a macro writes from the rows; a percent-encoded literal
//! segment (`/%63acheName`) is not decoded to match.

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
}

route_table! {
    // api     handler        allow                               path segments (| alias)
    Flash   FlashAdd       "POST"                              ["v1" "cache" "add"];
    Flash   FlashUpdate    "PUT"                               ["v1" "cache" "update"];
    Flash   FlashGet       "GET, HEAD"                         ["v1" "cache" "get"];
    Flash   FlashDelete    "DELETE"                            ["v1" "cache" "delete"];
    Flash   NotFound       ""                                  ["v1" "cache" ..];
    Iron    IronVersion    "GET, HEAD"                         ["1" "version"] | ["version"];
    Iron    IronCaches     "GET, HEAD"                         ["1" "projects" {project} "caches"];
    Iron    IronCache      "GET, HEAD, DELETE"                 ["1" "projects" {project} "caches" {cache}];
    Iron    IronClear      "POST"                              ["1" "projects" {project} "caches" {cache} "clear"];
    Iron    IronItem       "GET, HEAD, PUT, DELETE"            ["1" "projects" {project} "caches" {cache} "items" {key}];
    Iron    IronIncrement  "POST"                              ["1" "projects" {project} "caches" {cache} "items" {key} "increment"];
    Iron    NotFound       ""                                  ["1" ..];
    Service Healthz        "GET, HEAD"                         ["healthz"];
    Service Metrics        "GET, HEAD"                         ["metrics"];
    Service OpenApi        "GET, HEAD"                         ["openapi.json"];
    Service StatusPage     "GET, HEAD"                         [""];
    Admin   Admin          ""                                  ["admin" ..];
    Akka    AkkaNames      "POST, PUT, OPTIONS"                ["cacheName"];
    Akka    AkkaNameList   "GET, HEAD, OPTIONS"                ["cacheName" "list"];
    Akka    AkkaName       "GET, HEAD, DELETE, OPTIONS"        ["cacheName" {cacheName}];
    Akka    AkkaNameKeys   "GET, HEAD, OPTIONS"                ["cacheName" {cacheName} "keys"];
    Akka    AkkaNameFlush  "POST, PUT, OPTIONS"                ["cacheName" {cacheName} "flush"];
    Akka    AkkaSet        "POST, OPTIONS"                     ["set"];
    Akka    AkkaJsonGet    "GET, HEAD, OPTIONS"                ["get" {cacheName} {key}];
    Akka    AkkaBatch      "POST, DELETE, OPTIONS"             ["batch"];
    Akka    AkkaBatchGet   "POST, OPTIONS"                     ["batch" "get"];
    Akka    AkkaItem       "GET, HEAD, POST, DELETE, OPTIONS"  [{cacheName} {key}];
    Akka    AkkaItemTtl    "POST, OPTIONS"                     [{cacheName} {key} {ttlSeconds}];
    // Last: whatever no row above claimed is Akka's (its OPTIONS preflight answers anywhere).
    Akka    NotFound       ""                                  [..];
}

/// The most segments a path template has, plus one: paths are split that far.
pub const MAX_SEGMENTS: usize = 9;

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

/// The route at `index` (an index from [`classify`]).
pub fn get(index: usize) -> &'static Route {
    &ROUTES[index.min(ROUTES.len() - 1)]
}

/// Writes [`ROUTES`] and [`classify`] from one list of rows: each row's segments become
/// both its path templates (`{name}` is a parameter; `..`, written `...`, any number of
/// segments) and a slice pattern of `classify`'s `match`, which compiles to the compares a
/// hand-written `match` makes (no walk over the table on the request path).
macro_rules! route_table {
    ($($api:ident $handler:ident $allow:literal $([$($seg:tt)*])|+;)*) => {
        /// The table. Order is precedence.
        pub const ROUTES: &[Route] = &[$(
            route(
                Api::$api,
                &[$(concat!($("/", segment_text!($seg)),*)),+],
                $allow,
                Handler::$handler,
            ),
        )*];

        /// The position in [`ROUTES`] of the route `path` belongs to (whatever its method).
        pub fn classify(path: &str) -> usize {
            // Every template has at most 8 segments: the first 9 decide (no allocation).
            let mut buf = [""; MAX_SEGMENTS];
            let mut n = 0;
            let path = path.strip_prefix('/').unwrap_or(path);
            for seg in crate::http::split_slash(path).take(MAX_SEGMENTS) {
                buf[n] = seg;
                n += 1;
            }
            match &buf[..n] {
                $($(
                    [$(segment_pattern!($seg)),*] if first_segment_ok!(buf[0]; $($seg)*) => {
                        const { position(Api::$api, Handler::$handler) }
                    }
                )+)*
                // Not reached (the last row matches anything): the guards hide that.
                _ => ROUTES.len() - 1,
            }
        }
    };
}
use route_table;

/// A template segment as text.
macro_rules! segment_text {
    ($literal:literal) => {
        $literal
    };
    ({$param:ident}) => {
        concat!("{", stringify!($param), "}")
    };
    (..) => {
        "..."
    };
}
use segment_text;

/// A template segment as an element of a slice pattern.
macro_rules! segment_pattern {
    ($literal:literal) => {
        $literal
    };
    ({$param:ident}) => {
        _
    };
    (..) => {
        ..
    };
}
use segment_pattern;

/// A `{param}` first segment never matches a reserved name.
macro_rules! first_segment_ok {
    ($first:expr; {$param:ident} $($rest:tt)*) => {
        !RESERVED_FIRST_SEGMENTS.contains(&$first)
    };
    ($first:expr; $($rest:tt)*) => {
        true
    };
}
use first_segment_ok;

/// The position in [`ROUTES`] of the row of `api` and `handler` (unique: a test checks it).
const fn position(api: Api, handler: Handler) -> usize {
    let mut i = 0;
    while i < ROUTES.len() {
        if ROUTES[i].api as u8 == api as u8 && ROUTES[i].handler as u8 == handler as u8 {
            return i;
        }
        i += 1;
    }
    panic!("no such row")
}

const fn route(
    api: Api,
    paths: &'static [&'static str],
    allow: &'static str,
    handler: Handler,
) -> Route {
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
        let item = get(position(Api::Akka, Handler::AkkaItem));
        assert!(item.allows(&Method::HEAD) && item.allows(&Method::OPTIONS));
        assert!(!item.allows(&Method::PUT) && !item.allows(&Method::PATCH));
        let not_found = get(classify("/v1/cache/zzz"));
        assert!(!not_found.allows(&Method::GET));
        for r in ROUTES {
            for m in r.allow.split(", ").filter(|m| !m.is_empty()) {
                let m = Method::from_bytes(m.as_bytes()).expect("method");
                assert!(r.allows(&m), "{} {m}", r.label());
            }
            // RFC 9110 section 9.1: a resource that answers GET answers HEAD.
            if r.allows(&Method::GET) {
                assert!(
                    r.allows(&Method::HEAD),
                    "{} lists GET but not HEAD",
                    r.label()
                );
            }
        }
    }

    #[test]
    fn each_handler_has_one_row_and_labels_are_unique() {
        let mut labels = std::collections::BTreeSet::new();
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(labels.insert((r.api.label(), r.label())), "{:?}", r.paths);
            assert_eq!(position(r.api, r.handler), i, "{:?}", r.handler);
        }
    }
}
