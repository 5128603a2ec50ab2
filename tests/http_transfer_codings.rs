//! A request body said to be chunked more than once is refused with 400, and nothing of it
//! is stored (found in a review: hyper decodes one layer, and the request was taken; RFC
//! 9112 section 6.1 forbids applying chunked twice, and a proxy in front that decodes both
//! layers would read another body than this server does).

mod common;

use common::{raw, start_dev, SAMPLE_JWT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_twice_is_refused_and_nothing_is_stored() {
    let (s, _dir) = start_dev().await;
    let bearer = format!("Bearer {SAMPLE_JWT}");
    let put = |key: &str, codings: &[&str]| {
        let mut head = format!(
            "POST /te/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\nContent-Type: application/octet-stream\r\n"
        );
        for c in codings {
            head.push_str(&format!("Transfer-Encoding: {c}\r\n"));
        }
        format!("{head}Connection: close\r\n\r\n2\r\nab\r\n0\r\n\r\n")
    };
    // Once is taken (the control: the request is otherwise good).
    let r = raw(s.addr, put("once", &["chunked"]).as_bytes()).await;
    assert_eq!(r.status, 201, "{r:?}");
    for (key, codings) in [
        ("twice-two-headers", &["chunked", "chunked"][..]),
        ("twice-one-header", &["chunked, chunked"][..]),
        ("twice-case", &["Chunked,CHUNKED"][..]),
    ] {
        let r = raw(s.addr, put(key, codings).as_bytes()).await;
        assert_eq!(r.status, 400, "{codings:?}: {r:?}");
        assert!(r.text().contains("chunked more than once"), "{r:?}");
        let get = s
            .req(
                "GET",
                &format!("/te/{key}"),
                &[("Authorization", &bearer)],
                b"",
            )
            .await;
        assert_eq!(get.status, 404, "{codings:?}: stored");
    }
}
