//! The TCP echo backend of the TLSRoute tests, in the upstream `tcp-backend`'s words: on
//! connect (after its own TLS handshake on a TLS port) it greets first, then answers one
//! command per line: `PING` → `PONG`, `IS_TLS` → `true`/`false` (whether *its* connection is
//! TLS), `TEST` → one JSON line naming the pod and, over TLS, the SNI it received.

use crate::echo::EchoIdentity;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The first line the server sends.
pub const GREETING: &str = "Gateway API Test TCP Server";

/// The `TEST` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpEchoReport {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Whether the connection to this server is TLS.
    #[serde(rename = "isTLS")]
    pub is_tls: bool,
    /// The SNI received, over TLS.
    #[serde(default)]
    pub server_name: String,
}

/// A running TCP echo; dropping it stops accepting.
#[derive(Debug)]
pub struct TcpEchoServer {
    /// The bound address.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TcpEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpEchoServer {
    /// Serve on `bind`; with `tls`, every connection is TLS first.
    pub async fn start(
        bind: SocketAddr,
        identity: EchoIdentity,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<TcpEchoServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let identity = Arc::new(identity);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let identity = identity.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => {
                            let report = report(&identity, false, String::new());
                            let _ = converse(stream, report).await;
                        }
                        Some(a) => {
                            let Ok(tls) = a.accept(stream).await else {
                                return;
                            };
                            let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
                            let _ = converse(tls, report(&identity, true, sni)).await;
                        }
                    }
                });
            }
        });
        Ok(TcpEchoServer { addr, task })
    }
}

fn report(identity: &EchoIdentity, is_tls: bool, server_name: String) -> TcpEchoReport {
    TcpEchoReport {
        namespace: identity.namespace.clone(),
        pod: identity.pod.clone(),
        is_tls,
        server_name,
    }
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    report: TcpEchoReport,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    write.write_all(format!("{GREETING}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match line.trim() {
            "PING" => "PONG".to_string(),
            "IS_TLS" => report.is_tls.to_string(),
            "TEST" => serde_json::to_string(&report).map_err(std::io::Error::other)?,
            other => format!("unknown command {other:?}"),
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn greets_then_answers_each_command() {
        let s = TcpEchoServer::start(
            "127.0.0.1:0".parse().unwrap(),
            EchoIdentity::new("ns", "svc", "svc-pod-1"),
            None,
        )
        .await
        .unwrap();
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"PING\nIS_TLS\nTEST\n").await.unwrap();
        c.shutdown().await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[..3], [GREETING, "PONG", "false"]);
        let r: TcpEchoReport = serde_json::from_str(lines[3]).unwrap();
        assert_eq!((r.pod.as_str(), r.is_tls), ("svc-pod-1", false));
    }
}
