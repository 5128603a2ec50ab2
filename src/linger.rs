//! Lingering close: a connection the server closes while its client is still sending is read
//! to its end (within bounds) before the socket is closed, so that the client gets the
//! response it was sent.
//!
//! A request refused before its body is read (a wrong token, a body over the limit) is
//! answered, and hyper then closes the connection with the rest of the body unread. Closing
//! a TCP socket with unread bytes in its receive queue makes the kernel send a reset instead
//! of a FIN, and a reset makes the peer drop what it had received but not yet read: the
//! response. Directly, curl usually read the 401 first; through HAProxy, 5 to 30% of such
//! PUTs got no response at all (found from outside: HAProxy logged them `SD--`, status -1,
//! and the IronCache Python client raised a connection error instead of the 401).
//!
//! [`Lingering`] wraps a connection's socket and notes whether the client closed its sending
//! side (a read of 0 bytes). When hyper drops the socket and it had not, a task takes the
//! socket over: it shuts down the sending side (the client sees the end of the response) and
//! reads and discards what still comes until the client closes, for at most
//! [`LINGER_TIME`] and [`LINGER_BYTES`], as web servers do (nginx's `lingering_close`). A
//! client that closed first, the usual end of a keep-alive connection, costs nothing more.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The longest a closed connection is read after the server's last byte.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// The most a closed connection is read: a client still sending more than this gets the
/// reset.
pub const LINGER_BYTES: usize = 64 << 20;

/// A connection's socket, read to the client's end before it is closed (module doc).
#[derive(Debug)]
pub struct Lingering {
    stream: Option<TcpStream>,
    client_closed: bool,
}

impl Lingering {
    /// `stream`, lingered on when dropped before its client closed.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream: Some(stream),
            client_closed: false,
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.stream.as_mut().expect("taken only by drop"))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        if self.client_closed {
            return;
        }
        let Some(stream) = self.stream.take() else {
            return;
        };
        // Outside a runtime (it is shutting down) the socket is simply closed.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

/// Ends the response (a FIN), then reads and discards until the client closes or a bound is
/// reached; the socket is closed when this returns.
async fn linger(mut stream: TcpStream) {
    // Already shut down when hyper closed the connection gracefully; not when its task was
    // aborted (the header read timeout). A second shutdown is harmless.
    let _ = stream.shutdown().await;
    let mut buf = vec![0u8; 64 << 10];
    let drained = async {
        let mut read = 0;
        while read < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drained).await;
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let (room, before) = (buf.remaining(), buf.filled().len());
        let r = self.stream().poll_read(cx, buf);
        if room > 0 && matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before {
            self.client_closed = true;
        }
        r
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|stream| stream.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}
