//! Audit events in SQL: [`SqlEventSink`] queues each event and a background task
//! inserts it into `authflow_events`, so [`EventSink::emit`] never waits for the
//! database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::{SqlStore, int, uint, unavailable};
use crate::events::{Event, EventAction, EventSink};
use crate::store::StoreError;

/// Events waiting for the writer at most; more are dropped (and counted).
pub const EVENT_QUEUE: usize = 4096;

enum Msg {
    Event(Box<Event>, u64),
    Flush(oneshot::Sender<()>),
}

/// An [`EventSink`] writing to the `authflow_events` table of a [`SqlStore`]
/// (made by [`SqlStore::event_sink`]). Events that cannot be written (the database
/// is away, or more than [`EVENT_QUEUE`] are waiting) are dropped and counted in
/// [`SqlEventSink::dropped`]; a flow never fails because of its audit log.
#[derive(Clone)]
pub struct SqlEventSink {
    queue: mpsc::Sender<Msg>,
    store: SqlStore,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for SqlEventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEventSink")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl SqlEventSink {
    /// How many events were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every event emitted before this call has been written (or dropped).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The latest `limit` events, newest first, with when they were recorded
    /// (seconds since the epoch).
    pub async fn recent(&self, limit: u32) -> Result<Vec<(u64, Event)>, StoreError> {
        self.store.recent_events(limit).await
    }
}

impl EventSink for SqlEventSink {
    fn emit(&self, event: Event) {
        let now = self.store.now();
        if self
            .queue
            .try_send(Msg::Event(Box::new(event), now))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn action_name(action: EventAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl SqlStore {
    /// An event sink writing to this database. Must be called inside a Tokio runtime
    /// (it spawns the writer task, which ends when every clone of the sink is gone).
    pub fn event_sink(&self) -> Result<SqlEventSink, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| unavailable("the SQL event sink needs a Tokio runtime"))?;
        let (queue, mut rx) = mpsc::channel(EVENT_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let (store, lost) = (self.clone(), dropped.clone());
        runtime.spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Event(event, at) => {
                        if store.insert_event(&event, at).await.is_err() {
                            lost.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Msg::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Ok(SqlEventSink {
            queue,
            store: self.clone(),
            dropped,
        })
    }

    async fn insert_event(&self, event: &Event, at: u64) -> Result<(), StoreError> {
        let context = serde_json::to_string(&event.context).map_err(unavailable)?;
        self.bounded(
            sqlx::query(
                "INSERT INTO authflow_events (created, action, username, flow, client_ip, context) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(int(at))
            .bind(action_name(event.action))
            .bind(event.user.clone())
            .bind(event.flow.clone())
            .bind(event.client_ip.clone())
            .bind(context)
            .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    /// The latest `limit` audit events, newest first, with when they were recorded.
    pub async fn recent_events(&self, limit: u32) -> Result<Vec<(u64, Event)>, StoreError> {
        let rows = self
            .bounded(
                sqlx::query(
                    "SELECT created, action, username, flow, client_ip, context \
                     FROM authflow_events ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let action: String = r.try_get("action").map_err(unavailable)?;
                let context: String = r.try_get("context").map_err(unavailable)?;
                let event = Event {
                    action: serde_json::from_value(serde_json::Value::String(action))
                        .map_err(|e| super::corrupt("event action", e))?,
                    user: r.try_get("username").map_err(unavailable)?,
                    flow: r.try_get("flow").map_err(unavailable)?,
                    client_ip: r.try_get("client_ip").map_err(unavailable)?,
                    context: serde_json::from_str(&context)
                        .map_err(|e| super::corrupt("event context", e))?,
                };
                Ok((uint(r.try_get("created").map_err(unavailable)?), event))
            })
            .collect()
    }
}
