//! A workaround for HTTP/1 upgrades (WebSocket) in Pingora 0.9.1: the proxy loop ends an
//! upgraded tunnel when it reads the upstream's `101` before it has passed on the upgrade
//! request's own empty body (cloudflare/pingora#946), which happens when the backend answers
//! fast. For upgrade requests the upstream connection is ours (a Pingora custom connector) and
//! holds back its first read for a moment, so the empty body always goes first and the tunnel
//! stays open. Upgraded connections are never pooled, so nothing else sees the delay.

use async_trait::async_trait;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora::{Error, ErrorType};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How long the first upstream read waits. The request body's end is queued within
/// microseconds of the request header going out; this leaves the proxy loop ample time to
/// pass it on first, even on a loaded machine.
const HOLD: Duration = Duration::from_millis(10);

/// The peer `group_key` of upgrade connections: never matches a pooled connection.
pub const UPGRADE_GROUP: u64 = 0x5747_5550_4752_4144;

/// Connects plain TCP whose first read is held back by [`HOLD`].
#[derive(Debug)]
pub struct UpgradeConnector;

#[async_trait]
impl L4Connect for UpgradeConnector {
    async fn connect(&self, addr: &PingoraAddr) -> pingora::Result<Stream> {
        let Some(inet) = addr.as_inet() else {
            return Error::e_explain(ErrorType::ConnectError, "upgrades need an IP peer");
        };
        let tcp = TcpStream::connect(inet).await.map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                _ => ErrorType::ConnectError,
            };
            Error::explain(kind, format!("connect {inet}: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        Ok(VirtualSocketStream::new(Box::new(HeldFirstRead {
            inner: tcp,
            hold: None,
            released: false,
        }))
        .into())
    }
}

/// A TCP stream whose first read completes no earlier than [`HOLD`] after it was first tried.
#[derive(Debug)]
struct HeldFirstRead {
    inner: TcpStream,
    hold: Option<Pin<Box<Sleep>>>,
    released: bool,
}

impl VirtualSocket for HeldFirstRead {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> std::io::Result<()> {
        match opt {
            VirtualSockOpt::NoDelay => self.inner.set_nodelay(true),
            // Keep-alive probes and anything newer are not needed on a short-lived upgrade leg.
            _ => Ok(()),
        }
    }
}

impl AsyncRead for HeldFirstRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.released {
            let hold = self
                .hold
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(HOLD)));
            if hold.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.released = true;
            self.hold = None;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for HeldFirstRead {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
