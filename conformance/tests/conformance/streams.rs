//! TLS streams through the gateway to the TCP echo, as upstream's TLSRoute tests dial them: a
//! TLS client with a server name and the generated CAs, then the echo's line protocol. A
//! refused stream must end in EOF or a reset, never a TLS alert.

use crate::case::StreamCheck;
use crate::fixtures;
use crate::traffic::target;
use crate::world::World;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use waygate::gateway::Gateway;
use waygate_conformance::pki;
use waygate_conformance::tcp_echo::{GREETING, TcpEchoReport};

/// A bound for one whole stream check.
const STREAM_TIMEOUT: Duration = Duration::from_secs(20);
/// Tries before a failure counts (as for requests).
const TRIES: usize = 3;

/// A one-line description for failure messages.
pub fn describe(s: &StreamCheck, default_gw: &str) -> String {
    format!(
        "TLS stream SNI {} via {}:{}",
        s.sni,
        s.gateway.as_deref().unwrap_or(default_gw),
        s.port.map_or("-".into(), |p| p.to_string())
    )
}

/// Run one stream check.
pub async fn stream(
    gateway: &Gateway,
    world: &World,
    default_gw: &str,
    s: &StreamCheck,
) -> Result<(), String> {
    let gw = s.gateway.as_deref().unwrap_or(default_gw);
    let (addr, _) = target(gateway, world, gw, s.port)?;
    let mut outcome = Err(String::new());
    for i in 0..TRIES {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        outcome = match tokio::time::timeout(STREAM_TIMEOUT, once(addr, s)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}s", STREAM_TIMEOUT.as_secs())),
        };
        if outcome.is_ok() {
            break;
        }
    }
    outcome.map_err(|e| format!("{e} (failed {TRIES} times)"))
}

async fn once(addr: std::net::SocketAddr, s: &StreamCheck) -> Result<(), String> {
    let config =
        pki::client_config(&fixtures::get().trust_pem, None, &[]).map_err(|e| e.to_string())?;
    let connected = pki::connect(addr, Some(&s.sni), &s.sni, config).await;
    if s.rejected {
        return match connected {
            Ok(_) => Err("the TLS handshake completed; want the connection refused".into()),
            Err(e) => match e.kind() {
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => Ok(()),
                _ => Err(format!("want EOF or a reset, got {e}")),
            },
        };
    }
    let stream = connected.map_err(|e| format!("TLS connect: {e}"))?;
    let mut lines = BufReader::new(stream);
    let greeting = ask(&mut lines, "").await?;
    if greeting != GREETING {
        return Err(format!("greeting {greeting:?}, want {GREETING:?}"));
    }
    let pong = ask(&mut lines, "PING").await?;
    if pong != "PONG" {
        return Err(format!("PING answered {pong:?}"));
    }
    let is_tls = ask(&mut lines, "IS_TLS").await?;
    if let Some(want) = s.backend_tls
        && is_tls != want.to_string()
    {
        return Err(format!("IS_TLS {is_tls}, want {want}"));
    }
    let test = ask(&mut lines, "TEST").await?;
    let report: TcpEchoReport =
        serde_json::from_str(&test).map_err(|e| format!("TEST answer {test:?}: {e}"))?;
    if let Some(ns) = &s.namespace
        && report.namespace != *ns
    {
        return Err(format!("namespace {}, want {ns}", report.namespace));
    }
    if let Some(b) = &s.backend
        && !report.pod.starts_with(&format!("{b}-"))
    {
        return Err(format!("pod {}, want one of {b}", report.pod));
    }
    if let Some(sni) = &s.backend_sni
        && report.server_name != *sni
    {
        return Err(format!(
            "the backend saw SNI {:?}, want {sni:?}",
            report.server_name
        ));
    }
    Ok(())
}

/// Send a command line (none for `""`) and read one answer line.
async fn ask<S>(lines: &mut BufReader<S>, cmd: &str) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if !cmd.is_empty() {
        lines
            .get_mut()
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(|e| format!("send {cmd}: {e}"))?;
    }
    let mut line = String::new();
    lines
        .read_line(&mut line)
        .await
        .map_err(|e| format!("read after {cmd:?}: {e}"))?;
    Ok(line.trim_end().to_string())
}
