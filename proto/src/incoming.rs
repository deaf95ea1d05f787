//! Accepting gRPC connections without trusting the peer to finish its
//! handshake: a connection that has not completed its TLS handshake, or
//! sent its first bytes (the HTTP/2 preface), within [`HANDSHAKE`] is closed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Longest a new connection may take to say who it is (by default).
pub const HANDSHAKE: Duration = Duration::from_secs(10);

/// The HTTP/2 connection preface's length: a peer that sends less in time stalls.
const PREFACE: usize = 24;

/// A connection that must deliver its first bytes before a deadline.
pub struct Deadline<S> {
    inner: S,
    sleep: Option<Pin<Box<Sleep>>>,
    seen: usize,
}

impl<S> Deadline<S> {
    pub fn new(inner: S, within: Duration) -> Deadline<S> {
        Deadline {
            inner,
            sleep: Some(Box::pin(tokio::time::sleep(within))),
            seen: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(sleep) = &mut this.sleep
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stalled in its handshake",
            )));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if r.is_ready() {
            this.seen += buf.filled().len() - before;
            if this.seen >= PREFACE {
                this.sleep = None;
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Deadline<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

/// Accepted connections, each past its handshake (`handshake`: TLS, or
/// nothing) `within`; handshakes run concurrently, so a stalled
/// one holds up nobody.
pub fn accept<T>(
    listener: TcpListener,
    within: Duration,
    handshake: impl Fn(Deadline<TcpStream>) -> T + Send + 'static,
) -> impl Stream<Item = io::Result<T::Output>>
where
    T: std::future::Future + Send + 'static,
    T::Output: Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let shaking = handshake(Deadline::new(tcp, within));
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(within, shaking).await {
                    Ok(io) => {
                        let _ = tx.send(Ok(io)).await;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "closed a connection stalled in its handshake")
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Plain connections (their HTTP/2 preface is due `within`).
pub fn plain(
    listener: TcpListener,
    within: Duration,
) -> impl Stream<Item = io::Result<Deadline<TcpStream>>> {
    accept(listener, within, std::future::ready)
}

/// TLS connections whose handshake completed `within`; failed handshakes
/// (no certificate, another CA, plaintext) are dropped here.
pub fn tls(
    listener: TcpListener,
    within: Duration,
    acceptor: tokio_rustls::TlsAcceptor,
) -> impl Stream<Item = io::Result<tokio_rustls::server::TlsStream<Deadline<TcpStream>>>> {
    use tokio_stream::StreamExt;
    accept(listener, within, move |tcp| {
        let acceptor = acceptor.clone();
        async move { acceptor.accept(tcp).await }
    })
    .filter_map(|r| match r {
        Ok(Ok(s)) => Some(Ok(s)),
        Ok(Err(e)) | Err(e) => {
            tracing::debug!("TLS handshake failed: {e}");
            None
        }
    })
}
