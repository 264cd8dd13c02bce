//! `waygate-echo`: runs the conformance echo backend on one address until Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use waygate_conformance::echo::{EchoIdentity, EchoServer, PodMemory, tls::server_config};
use waygate_conformance::pki::Issued;

/// Command-line flags; identity flags fall back to the upstream echo server's environment variables.
#[derive(Debug, Parser)]
#[command(
    name = "waygate-echo",
    version,
    about = "Gateway API conformance echo backend (HTTP/1.1 and h2c)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Namespace reported in responses [env: NAMESPACE].
    #[arg(long)]
    namespace: Option<String>,
    /// Service name reported in responses [env: SERVICE_NAME].
    #[arg(long)]
    service: Option<String>,
    /// Pod name reported in responses [env: POD_NAME].
    #[arg(long)]
    pod: Option<String>,
    /// Serve HTTPS with this certificate (PEM) instead of plain HTTP; needs `--tls-key`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

/// Uses the flag if given, else the environment variable, else an empty string.
fn flag_or_env(flag: Option<String>, var: &str) -> String {
    flag.or_else(|| std::env::var(var).ok()).unwrap_or_default()
}

/// Resolves once Ctrl-C (or SIGTERM on Unix) is received.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let identity = EchoIdentity {
        namespace: flag_or_env(args.namespace, "NAMESPACE"),
        service: flag_or_env(args.service, "SERVICE_NAME"),
        pod: flag_or_env(args.pod, "POD_NAME"),
    };
    let (server, protocols) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |p: &std::path::PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let issued = Issued {
                cert_pem: read(cert)?,
                key_pem: read(key)?,
            };
            let config = server_config(&issued, None).context("loading the TLS certificate")?;
            let server = EchoServer::start_tls(args.listen, identity, config, PodMemory::new())
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            (server, "https: http/1.1 + h2")
        }
        _ => {
            let server = EchoServer::start(args.listen, identity)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            (server, "http/1.1 + h2c")
        }
    };
    eprintln!("waygate-echo listening on {} ({protocols})", server.addr);
    shutdown_signal().await?;
    server.shutdown().await;
    Ok(())
}
