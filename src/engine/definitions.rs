//! The engine's flow-definition cache: one loaded [`FlowDefinition`] per flow, reused
//! while the store's [`revision`](crate::store::FlowSource::revision) of the flow is
//! unchanged.
//!
//! By default the revision is asked on every request (one indexed single-row query on
//! a SQL catalogue). With
//! [`EngineBuilder::revision_check_interval`](crate::EngineBuilder::revision_check_interval)
//! a revision checked less than the interval ago is trusted without asking, so the
//! definition is served from memory alone. The staleness bound:
//! - an edit made through **this process's** store handle is seen by the next request
//!   (the store's [`local_writes`](crate::store::FlowSource::local_writes) counter
//!   moved, so the revision is checked again);
//! - an edit made by **another instance** on the shared database is seen within the
//!   interval (the first request after the interval has passed checks the revision).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::Error;
use crate::store::{FlowDefinition, FlowSource};

struct Cached {
    revision: u64,
    def: Arc<FlowDefinition>,
    /// When the revision was last confirmed, microseconds since `Definitions::epoch`.
    checked: AtomicU64,
    /// The store's `local_writes` read before that confirmation.
    writes: AtomicU64,
}

/// Loaded definitions by slug.
pub(crate) struct Definitions {
    cache: RwLock<HashMap<String, Cached>>,
    /// Trust a revision confirmed this recently (`None`: confirm every time).
    interval: Option<Duration>,
    epoch: Instant,
}

impl Definitions {
    /// An empty cache trusting revisions for `interval` (`None` or zero: never).
    pub(crate) fn new(interval: Option<Duration>) -> Self {
        Self {
            cache: RwLock::default(),
            interval: interval.filter(|d| !d.is_zero()),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The definition of `slug`, from the cache when its revision is unchanged (or was
    /// confirmed within the interval and no local write happened since).
    pub(crate) async fn get<F: FlowSource + ?Sized>(
        &self,
        flows: &F,
        slug: &str,
    ) -> Result<Arc<FlowDefinition>, Error> {
        // Read before the revision: a local write landing in between moves the counter
        // past what is recorded, so the next request checks again.
        let writes = flows.local_writes();
        if let Some(interval) = self.interval {
            let fresh_since = self
                .now()
                .saturating_sub(u64::try_from(interval.as_micros()).unwrap_or(u64::MAX));
            if let Ok(cache) = self.cache.read()
                && let Some(c) = cache.get(slug)
                && c.checked.load(Ordering::Relaxed) > fresh_since
                && c.writes.load(Ordering::Relaxed) == writes
            {
                return Ok(c.def.clone());
            }
        }
        let revision = flows
            .revision(slug)
            .await?
            .ok_or_else(|| Error::FlowNotFound(slug.to_owned()))?;
        if let Ok(cache) = self.cache.read()
            && let Some(c) = cache.get(slug).filter(|c| c.revision == revision)
        {
            c.checked.store(self.now(), Ordering::Relaxed);
            c.writes.store(writes, Ordering::Relaxed);
            return Ok(c.def.clone());
        }
        let def = Arc::new(
            flows
                .flow(slug)
                .await?
                .ok_or_else(|| Error::FlowNotFound(slug.to_owned()))?,
        );
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(
                slug.to_owned(),
                Cached {
                    revision,
                    def: def.clone(),
                    checked: AtomicU64::new(self.now()),
                    writes: AtomicU64::new(writes),
                },
            );
        }
        Ok(def)
    }

    /// Whether `slug` is cached.
    pub(crate) fn contains(&self, slug: &str) -> bool {
        self.cache.read().is_ok_and(|c| c.contains_key(slug))
    }

    /// How many definitions are cached.
    pub(crate) fn len(&self) -> usize {
        self.cache.read().map(|c| c.len()).unwrap_or(0)
    }

    /// Drops every cached definition.
    pub(crate) fn clear(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
    }
}
