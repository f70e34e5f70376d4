//! The model lifecycle of one node: the registry of versions, the lock that serialises
//! training and reloads, whether a version is live yet, and the users erased since the live
//! version was trained (whose rows it must not use), with the background scrubber that
//! forgets them in the kept versions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tailor_core::Timestamp;
use tailor_store::Store;

use crate::error::ServerError;
use crate::registry::Registry;

/// Training state (see the module docs).
pub struct Models {
    /// Registered model versions.
    pub registry: Registry,
    training: tokio::sync::Mutex<()>,
    ready: AtomicBool,
    /// Users erased since the live version was trained, with the time of erasure.
    erased: Mutex<HashMap<String, Timestamp>>,
    /// Wakes the scrubber after an erasure.
    scrubs: std::sync::mpsc::Sender<()>,
}

impl Models {
    /// Over `registry`, starting the scrubber thread (it ends when this is dropped).
    pub fn open(store: Arc<dyn Store>, registry: Registry) -> Result<Self, String> {
        let (scrubs, wakes) = std::sync::mpsc::channel();
        let scrub_registry = registry.clone();
        std::thread::Builder::new()
            .name("tailor-model-scrubber".into())
            .spawn(move || scrubber(store.as_ref(), &scrub_registry, &wakes))
            .map_err(|e| format!("starting the model scrubber: {e}"))?;
        Ok(Self {
            registry,
            training: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
            erased: Mutex::new(HashMap::new()),
            scrubs,
        })
    }

    /// The training lock, waiting for it (scheduled retraining).
    pub async fn training(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.training.lock().await
    }

    /// The training lock, unless a training or reload holds it (requests are refused
    /// rather than queued).
    pub fn try_training(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.training.try_lock().ok()
    }

    /// Whether a model version is live.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// A version whose data was read at `snapshot_at` went live: erasures before then are
    /// in its data already.
    pub fn went_live(&self, snapshot_at: Timestamp) {
        self.erased.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, at| *at >= snapshot_at);
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Whether user `id` was erased since the live version was trained.
    pub fn is_erased(&self, id: &str) -> bool {
        self.erased.lock().unwrap_or_else(PoisonError::into_inner).contains_key(id)
    }

    /// Notes an erasure: the live version stops using the user's row, and the kept
    /// versions forget them in the background (several erasures in a moment share one
    /// rewrite of each file).
    pub fn erased_now(&self, id: &str) {
        self.erased.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_string(), Timestamp::now());
        let _ = self.scrubs.send(());
    }
}

/// Rewrites kept model versions without the users erased since they were trained: wakes
/// on an erasure, waits a moment for more, then scrubs every kept version once. Ends when
/// the sender is dropped.
fn scrubber(store: &dyn Store, registry: &Registry, wakes: &std::sync::mpsc::Receiver<()>) {
    while wakes.recv().is_ok() {
        std::thread::sleep(Duration::from_millis(500));
        while wakes.try_recv().is_ok() {}
        let outcome = store.user_names().map_err(ServerError::from).and_then(|names| registry.scrub_all(&names));
        match outcome {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "erased users forgotten in kept model versions"),
            Err(e) => {
                tracing::error!(error = %e, "scrubbing kept model versions failed; retried at the next erasure")
            }
        }
    }
}
