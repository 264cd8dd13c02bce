//! Hot reload: watch the config path and rebuild the Snapshot when files change.

use crate::gateway::Gateway;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

/// How long to wait for a burst of file events to settle before reloading.
const SETTLE: Duration = Duration::from_millis(25);

/// Watch `path` and reload `gateway` on every change until the gateway is dropped.
pub fn watch(path: PathBuf, gateway: Weak<Gateway>) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let target = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let is_file = target.is_file();
    // Watch a file's folder: editors and `mv` replace the file, which a file watch would lose.
    let watched = if is_file {
        target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| target.clone())
    } else {
        target.clone()
    };
    let file = target.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        let relevant = if is_file {
            ev.paths.iter().any(|p| p == &file)
        } else {
            ev.paths
                .iter()
                .any(|p| waygate_config::load::is_config_file(p) || p.is_dir())
        };
        if relevant {
            let _ = tx.send(());
        }
    })?;
    let mode = if is_file {
        RecursiveMode::NonRecursive
    } else {
        RecursiveMode::Recursive
    };
    watcher.watch(&watched, mode)?;
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let Some(gw) = gateway.upgrade() else { break };
            // A refused reload is logged and shown in /status by `reload` itself.
            let _ = gw.reload().await;
        }
    });
    Ok(())
}
