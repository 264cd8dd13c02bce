//! Load through a waypoint over HBONE, for `benches/load/hbone.sh`: one mTLS HTTP/2
//! connection, then either keep-alive HTTP/1.1 requests over long-lived tunnels (`reuse`) or a
//! new tunnel per request (`new`). Prints what completed and how fast.

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use waygate_conformance::hbone::{HboneClient, client_config};
use waygate_conformance::pki::Issued;

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Long-lived tunnels, keep-alive requests over each.
    Reuse,
    /// A new tunnel for every request.
    New,
}

#[derive(Parser)]
struct Args {
    /// The waypoint's HBONE address.
    #[arg(long)]
    addr: SocketAddr,
    /// The destination `VIP:port` to CONNECT to.
    #[arg(long)]
    dest: SocketAddr,
    /// Trust bundle (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// Client certificate and key (PEM).
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// The waypoint's SPIFFE ID.
    #[arg(long)]
    server_id: String,
    /// Concurrent tunnels (reuse) or workers (new).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, value_enum, default_value_t = Mode::Reuse)]
    mode: Mode,
    /// The request's method.
    #[arg(long, default_value = "GET")]
    method: http::Method,
    /// The request's path (and query).
    #[arg(long, default_value = "/")]
    path: String,
    /// The request's Host header.
    #[arg(long, default_value = "bench.svc")]
    host: String,
}

/// What each request asks for.
#[derive(Clone)]
struct Target {
    method: http::Method,
    path: String,
    host: String,
}

async fn one_request(
    send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    target: &Target,
) -> anyhow::Result<bool> {
    send.ready().await?;
    let req = http::Request::builder()
        .method(target.method.clone())
        .uri(target.path.as_str())
        .header("host", target.host.as_str())
        .body(Empty::new())?;
    let resp = send.send_request(req).await?;
    let ok = resp.status().is_success();
    resp.into_body().collect().await?;
    Ok(ok)
}

async fn tunnel_sender(
    client: &HboneClient,
    dest: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let tunnel = client
        .open(dest)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel)).await?;
    tokio::spawn(conn);
    Ok(send)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ca = std::fs::read_to_string(&args.ca)?;
    let id = Issued {
        cert_pem: std::fs::read_to_string(&args.cert)?,
        key_pem: std::fs::read_to_string(&args.key)?,
    };
    let config = client_config(&ca, Some(&id), &args.server_id)?;
    let client = HboneClient::connect(args.addr, "waypoint", config).await?;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let target = Target {
        method: args.method.clone(),
        path: args.path.clone(),
        host: args.host.clone(),
    };
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, ok, failed, dest, mode, target) = (
            client.clone(),
            ok.clone(),
            failed.clone(),
            args.dest,
            args.mode,
            target.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut reused = None;
            while Instant::now() < end {
                let outcome = match mode {
                    Mode::New => match tunnel_sender(&client, dest).await {
                        Ok(mut s) => one_request(&mut s, &target).await,
                        Err(e) => Err(e),
                    },
                    Mode::Reuse => {
                        if reused.is_none() {
                            reused = tunnel_sender(&client, dest).await.ok();
                        }
                        match reused.as_mut() {
                            Some(s) => one_request(s, &target).await,
                            None => Err(anyhow::anyhow!("no tunnel")),
                        }
                    }
                };
                match outcome {
                    Ok(true) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => {
                        reused = None;
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = ok.load(Ordering::Relaxed);
    println!(
        "completed: {n} failed: {} seconds: {secs:.3} rate: {:.0}",
        failed.load(Ordering::Relaxed),
        n as f64 / secs
    );
    Ok(())
}
