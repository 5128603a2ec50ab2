//! The body of every response: whole bytes (every API route), or a stream of chunks from a
//! channel (`GET /admin/export`, which must not hold a whole store's export in memory).
//!
//! A whole body reports its exact size, so hyper sends `Content-Length`; a streamed body is
//! sent chunked. A streamed body whose producer sends an error ends the response without its
//! last chunk, so the client sees the export as cut short rather than complete.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// A response body: whole, or streamed.
#[derive(Debug)]
pub enum Body {
    /// All of it at once.
    Full(Full<Bytes>),
    /// Chunks as a producer sends them; an `Err` aborts the response.
    Stream(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl Body {
    /// A whole body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Full::new(bytes.into()))
    }

    /// A streamed body and the sender that feeds it; at most `chunks` unsent chunks wait
    /// in between, so a slow client slows the producer instead of filling memory.
    pub fn channel(chunks: usize) -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Self) {
        let (tx, rx) = mpsc::channel(chunks.max(1));
        (tx, Self::Stream(rx))
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::full(Bytes::new())
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Self::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            Self::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(full) => full.is_end_stream(),
            Self::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(full) => full.size_hint(),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_stream_yields_its_chunks_then_ends() {
        let (tx, body) = Body::channel(2);
        tokio::spawn(async move {
            for part in ["a", "bc"] {
                let _ = tx.send(Ok(Bytes::from(part))).await;
            }
        });
        let all = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(all.ok(), Some(Bytes::from("abc")));
    }

    #[tokio::test]
    async fn an_error_aborts_the_stream() {
        let (tx, body) = Body::channel(2);
        let _ = tx.send(Ok(Bytes::from("partial"))).await;
        let _ = tx.send(Err(std::io::Error::other("read failed"))).await;
        drop(tx);
        assert!(body.collect().await.is_err());
    }

    #[test]
    fn a_whole_body_has_an_exact_size() {
        use hyper::body::Body as _;
        assert_eq!(Body::full("abcd").size_hint().exact(), Some(4));
    }
}
