//! The model lifecycle of one node: the registry of versions, the lock that serialises
//! training and reloads, whether a version is live yet, and the users erased since the live
//! version was trained (whose rows it must not use), with the background scrubber that
//! forgets them in the kept versions; and the one thread that trains and loads models.
//!
//! Every training and reload runs on that long-lived thread ([`Trainer`]), not on tokio's
//! blocking pool: faer's matrix products keep thread-local packing buffers sized from the
//! L3 cache (up to twice its size: 520 MiB on a 260 MiB L3), and each pool thread that
//! happened to run a training kept its own for as long as the pool kept the thread (the
//! soak's RSS grew at every retraining). One thread holds one set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tailor_core::Timestamp;
use tailor_store::Store;

use crate::error::{ServerError, ServerResult};
use crate::registry::Registry;

/// A unit of work for the training thread.
type Job = Box<dyn FnOnce() + Send>;

/// The training thread (see the module docs): runs the jobs sent to it one at a time, in
/// order; a job that panics answers [`ServerError::Trainer`] and the thread goes on. It ends when
/// the last handle is dropped.
pub struct Trainer {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Trainer {
    /// Starts the thread.
    pub fn start() -> Result<Self, String> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tailor-train".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    job();
                }
            })
            .map_err(|e| format!("starting the training thread: {e}"))?;
        Ok(Self { jobs })
    }

    /// Sends `f` to the thread; `answer` receives its result, or the panic as an error.
    fn send<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
        answer: impl FnOnce(ServerResult<T>) + Send + 'static,
    ) -> ServerResult<()> {
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                ServerError::Trainer(format!("a job panicked: {what}"))
            });
            answer(out);
        });
        self.jobs.send(job).map_err(|_| ServerError::Trainer("it has stopped".into()))
    }

    /// Runs `f` on the training thread and waits for it without blocking the runtime.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> ServerResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(f, move |out| {
            let _ = tx.send(out);
        })?;
        rx.await.map_err(|_| ServerError::Trainer("it dropped a job".into()))?
    }

    /// Runs `f` on the training thread and blocks until it is done (startup, CLI).
    pub fn run_blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> ServerResult<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(f, move |out| {
            let _ = tx.send(out);
        })?;
        rx.recv().map_err(|_| ServerError::Trainer("it dropped a job".into()))?
    }
}

/// Training state (see the module docs).
pub struct Models {
    /// Registered model versions.
    pub registry: Registry,
    /// The thread every training and reload runs on.
    pub trainer: Trainer,
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
            trainer: Trainer::start()?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    #[test]
    fn jobs_run_in_order_on_one_named_thread() {
        let trainer = Trainer::start().expect("thread");
        let ids: Vec<_> = (0..4)
            .map(|i| trainer.run_blocking(move || (i, thread_name(), std::thread::current().id())).expect("runs"))
            .collect();
        assert!(ids.iter().enumerate().all(|(i, (j, name, _))| i == *j && name == "tailor-train"));
        assert!(ids.iter().all(|(_, _, id)| *id == ids[0].2), "one thread for every job");
        assert_ne!(ids[0].2, std::thread::current().id());
    }

    #[test]
    fn a_panicking_job_is_an_internal_error_and_the_thread_goes_on() {
        let trainer = Trainer::start().expect("thread");
        let before = trainer.run_blocking(|| std::thread::current().id()).expect("runs");
        let err = trainer.run_blocking::<()>(|| panic!("fit exploded")).expect_err("the panic is an error");
        assert!(matches!(&err, ServerError::Trainer(m) if m.contains("fit exploded")), "{err}");
        assert_eq!(tailor_core::Classified::kind(&err), tailor_core::ErrorKind::Internal);
        let after = trainer.run_blocking(|| std::thread::current().id()).expect("still runs");
        assert_eq!(before, after, "the same thread after the panic");
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        assert_eq!(rt.block_on(trainer.run(|| 7)).expect("async run"), 7);
    }
}
