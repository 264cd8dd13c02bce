//! One HBONE stream as a connection Pingora can serve: the bytes of an HTTP/2 `CONNECT` stream,
//! carrying the outer mTLS session's digest (so the request path sees the peer's identity) and a
//! socket digest whose original destination is the `CONNECT` authority.

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Ids for tunnels, apart from file descriptors (negative, counting down).
static NEXT_ID: AtomicI32 = AtomicI32::new(-2);

/// The most bytes asked of the HTTP/2 flow-control window at a time.
const WRITE_CHUNK: usize = 64 * 1024;

/// The bytes of an HTTP/2 stream, both ways, with flow control given back as they are read.
/// Dropping it ends our half cleanly (a reset stream counts against the peer's reset-flood
/// protection, which closes the whole connection).
pub struct H2Duplex {
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// Data received but not yet read.
    pending: Bytes,
}

impl H2Duplex {
    /// Both halves of a stream.
    pub fn new(recv: RecvStream, send: SendStream<Bytes>) -> Self {
        Self {
            recv,
            send,
            pending: Bytes::new(),
        }
    }
}

impl std::fmt::Debug for H2Duplex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H2Duplex")
    }
}

impl Drop for H2Duplex {
    fn drop(&mut self) {
        let _ = self.send.send_data(Bytes::new(), true);
    }
}

/// A `CONNECT` stream served by the request path.
pub struct H2Tunnel {
    io: H2Duplex,
    ssl: Option<Arc<SslDigest>>,
    socket: Arc<SocketDigest>,
    id: UniqueIDType,
}

impl std::fmt::Debug for H2Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Tunnel").field("id", &self.id).finish()
    }
}

impl H2Tunnel {
    /// A tunnel over an accepted stream: `ssl` is the outer connection's, `socket` names the
    /// client and the destination.
    pub fn new(
        recv: RecvStream,
        send: SendStream<Bytes>,
        ssl: Option<Arc<SslDigest>>,
        socket: SocketDigest,
    ) -> Self {
        Self {
            io: H2Duplex::new(recv, send),
            ssl,
            socket: Arc::new(socket),
            id: NEXT_ID.fetch_sub(1, Ordering::Relaxed),
        }
    }
}

impl AsyncRead for H2Duplex {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                // Give the window back as the bytes are consumed.
                let _ = self.recv.flow_control().release_capacity(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => self.pending = data,
                Some(Err(e)) => return Poll::Ready(Err(std::io::Error::other(e))),
                // End of stream: EOF.
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for H2Duplex {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(buf.len().min(WRITE_CHUNK));
        loop {
            match ready!(self.send.poll_capacity(cx)) {
                None => return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
                Some(Err(e)) => return Poll::Ready(Err(std::io::Error::other(e))),
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let n = n.min(buf.len());
                    self.send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                        .map_err(std::io::Error::other)?;
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // h2 writes frames out on its own connection task.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for H2Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for H2Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for H2Tunnel {
    async fn shutdown(&mut self) {
        let _ = self.io.send.send_data(Bytes::new(), true);
    }
}

impl UniqueID for H2Tunnel {
    fn id(&self) -> UniqueIDType {
        self.id
    }
}

impl Ssl for H2Tunnel {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.ssl.clone()
    }
}

impl GetTimingDigest for H2Tunnel {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for H2Tunnel {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for H2Tunnel {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(self.socket.clone())
    }
}

#[async_trait]
impl Peek for H2Tunnel {}
