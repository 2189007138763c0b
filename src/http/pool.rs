//! [`HashPool`]: the bounded pool the HTTP adapter runs password hashing on.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::blocking::{Blocking, BlockingJob, PoolBusy};

/// Prefix of the pool's thread names (`authflow-hash-0`, …).
pub const HASH_THREAD_PREFIX: &str = "authflow-hash";

type Queued = (BlockingJob, tokio::sync::oneshot::Sender<()>);

/// A fixed number of dedicated threads with a bounded queue for password hashing
/// (a [`Blocking`] for [`EngineBuilder::blocking`](crate::EngineBuilder::blocking)).
///
/// Argon2id allocates its whole memory cost (19 MiB by default) per hash, so the
/// number of threads bounds the memory hashing can take, and a small fixed set of
/// threads also bounds the allocator arenas that keep memory after a burst (tokio's
/// own blocking pool grows to 512 threads). A job that finds the queue full is
/// refused at once ([`PoolBusy`]): the login answers "Too many logins at once, try
/// again" instead of waiting without bound.
///
/// ```no_run
/// # fn demo(stores: authflow::memory::Stores) {
/// use std::sync::Arc;
/// // Inside the tokio runtime (the threads drive the jobs on its handle):
/// let engine = stores.engine().blocking(Arc::new(authflow::http::HashPool::default())).build();
/// # }
/// ```
pub struct HashPool {
    queue: SyncSender<Queued>,
    threads: usize,
    capacity: usize,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("threads", &self.threads)
            .field("queue", &self.capacity)
            .finish()
    }
}

impl Default for HashPool {
    /// One thread per core, and a queue of 8 jobs per thread.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores, cores * 8)
    }
}

impl HashPool {
    /// `threads` hashing threads (at least 1) and room for `queue` waiting jobs.
    ///
    /// Call it inside the tokio runtime when the user directory does async I/O: the
    /// threads then drive each job on that runtime's handle (otherwise each thread
    /// drives its jobs on a small runtime of its own).
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = sync_channel::<Queued>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let handle = tokio::runtime::Handle::try_current().ok();
        for i in 0..threads {
            let rx = rx.clone();
            let handle = handle.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{HASH_THREAD_PREFIX}-{i}"))
                .spawn(move || worker(&rx, handle));
            if spawned.is_err() && i == 0 {
                // No thread at all: every job is refused (busy), never lost silently.
                break;
            }
        }
        Self {
            queue: tx,
            threads,
            capacity: queue,
        }
    }

    /// Number of hashing threads.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

fn worker(rx: &Mutex<Receiver<Queued>>, handle: Option<tokio::runtime::Handle>) {
    let own = match handle {
        Some(_) => None,
        None => tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok(),
    };
    loop {
        // Hold the lock only to take one job.
        let next = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok((job, done)) = next else {
            return; // the pool was dropped
        };
        match (&handle, &own) {
            (Some(h), _) => h.block_on(job),
            (None, Some(rt)) => rt.block_on(job),
            (None, None) => {}
        }
        let _ = done.send(());
    }
}

#[async_trait]
impl Blocking for HashPool {
    async fn run(&self, job: BlockingJob) -> Result<(), PoolBusy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.queue.try_send((job, tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                return Err(PoolBusy);
            }
        }
        // A dropped sender (a worker gone) also ends the wait; the caller then finds
        // no result and reports the store unavailable.
        let _ = rx.await;
        Ok(())
    }
}
