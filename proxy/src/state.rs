//! The one shared mutable thing: the current Snapshot (with the upstream runtime state that
//! goes with it) and its status, behind `ArcSwap`.

use crate::upstream_state::UpstreamStates;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use waygate_config::{Snapshot, StatusReport};

/// What `/status` shows: the compiled status plus the outcome of the last reload.
#[derive(Debug, Default, Serialize)]
pub struct StatusView {
    /// Status of every object in the serving config.
    pub report: StatusReport,
    /// The error of the last refused reload, if the last attempt failed.
    pub last_error: Option<String>,
    /// How many configs have been applied.
    pub generation: u64,
}

/// A published Snapshot and the upstream state table indexed like its clusters, swapped
/// together so a request never pairs one Snapshot with another's table.
#[derive(Debug, Default)]
pub struct Served {
    /// The Snapshot.
    pub snapshot: Arc<Snapshot>,
    /// Its clusters' runtime state (carried over from the previous table on publish).
    pub upstreams: Arc<UpstreamStates>,
}

/// The live state every listener and the admin server read.
#[derive(Debug, Default)]
pub struct SharedState {
    served: ArcSwap<Served>,
    status: ArcSwap<StatusView>,
    ready: AtomicBool,
    generation: AtomicU64,
}

impl SharedState {
    /// A state with an empty Snapshot, not ready.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The Snapshot requests should start on.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.served.load().snapshot.clone()
    }

    /// The Snapshot and its upstream state table.
    pub fn served(&self) -> Arc<Served> {
        self.served.load_full()
    }

    /// The status view.
    pub fn status(&self) -> Arc<StatusView> {
        self.status.load_full()
    }

    /// Whether a first config is being served.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Swap in a new Snapshot and status; requests in flight keep the old Snapshot.
    pub fn publish(&self, snapshot: Snapshot, report: StatusReport) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        // Publishing is serialised by the reload loop, so the table carried from is the last one.
        let upstreams = UpstreamStates::carry(&snapshot, &self.served.load().upstreams);
        self.served.store(Arc::new(Served {
            snapshot: Arc::new(snapshot),
            upstreams: Arc::new(upstreams),
        }));
        self.status.store(Arc::new(StatusView {
            report,
            last_error: None,
            generation,
        }));
        self.ready.store(true, Ordering::Release);
    }

    /// Record a refused reload: the serving Snapshot stays, `/status` shows the error.
    pub fn record_error(&self, error: String) {
        let old = self.status.load_full();
        self.status.store(Arc::new(StatusView {
            report: old.report.clone(),
            last_error: Some(error),
            generation: old.generation,
        }));
    }

    /// Replace the status report (e.g. to add listener bind failures) without a new Snapshot.
    pub fn update_report(&self, f: impl FnOnce(&mut StatusReport)) {
        let old = self.status.load_full();
        let mut report = old.report.clone();
        f(&mut report);
        self.status.store(Arc::new(StatusView {
            report,
            last_error: old.last_error.clone(),
            generation: old.generation,
        }));
    }
}
