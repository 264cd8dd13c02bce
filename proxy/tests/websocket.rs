//! WebSocket upgrades through the gateway to a real WebSocket echo, many in a row: the tunnel
//! must carry messages both ways every time, including when the backend answers the upgrade
//! faster than the proxy forwards the request (the race of cloudflare/pingora#946).

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const UPGRADES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upgrade_becomes_a_working_tunnel() {
    let backend = echo("apps", "ws", "ws-pod").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "ws", &[backend.addr])
        + &route(
            "apps",
            "r",
            "  rules:\n  - backendRefs: [{name: ws, port: 8080}]\n",
        );
    let gw = start_inline(yaml).await;
    let url = format!("ws://{}/ws", gw_addr(&gw));
    let mut broken = Vec::new();
    for i in 0..UPGRADES {
        let (mut ws, resp) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("upgrade {i}: {e}"));
        assert_eq!(resp.status(), 101);
        let text = format!("hello {i}");
        let echoed = async {
            ws.send(Message::text(text.clone())).await.ok()?;
            match ws.next().await? {
                Ok(Message::Text(t)) => Some(t.to_string()),
                _ => None,
            }
        };
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), echoed)
            .await
            .ok()
            .flatten();
        if got.as_deref() != Some(text.as_str()) {
            broken.push(i);
        }
        let _ = ws.close(None).await;
    }
    assert!(
        broken.is_empty(),
        "tunnels closed after the 101: {broken:?}"
    );
}
