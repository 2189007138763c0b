//! The first GET of a flow by a visitor without a session — the anonymous hot path
//! (every login page load) — answered from a cache of its serialised challenge.
//!
//! That request stores nothing (its plan is reproducible from the request, see
//! [`Engine::plan`](crate::Engine::plan)), and for a flow without policies whose first
//! stage is an identification stage or a prompt stage without expressions, its
//! challenge depends only on the flow's definition, the `query` and the mount path —
//! not on the visitor (no IP, user agent, reputation or time is consulted). So the
//! engine answers the first such request, its JSON is kept, and later ones get the same
//! bytes with a fresh session id, without planning or serialising again.
//!
//! The entry is tied to the definition the engine's cache holds (the same `Arc`), so an
//! edit of the flow (a new revision, a new definition) is seen by the next request. The
//! cache is bounded ([`CAPACITY`] entries, emptied when full): `query` is the
//! visitor's, so it must not grow memory without bound.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::challenge::{Challenge, ChallengeBody};
use crate::model::{PromptStage, StageConfig};
use crate::store::FlowDefinition;

/// Most cached challenges (distinct flow and `query` pairs).
pub(crate) const CAPACITY: usize = 1024;

struct Entry {
    def: Arc<FlowDefinition>,
    json: Bytes,
}

/// Serialised first challenges by flow slug, then `query`.
#[derive(Default)]
pub(crate) struct FirstGetCache {
    entries: RwLock<HashMap<String, HashMap<String, Entry>>>,
    len: std::sync::atomic::AtomicUsize,
}

impl FirstGetCache {
    /// The cached JSON for this flow and query, if it was made from `def`.
    pub(crate) fn get(&self, def: &Arc<FlowDefinition>, slug: &str, query: &str) -> Option<Bytes> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(slug)?.get(query)?;
        Arc::ptr_eq(&entry.def, def).then(|| entry.json.clone())
    }

    /// Keeps `challenge` for later requests when it cannot depend on the visitor.
    pub(crate) fn offer(
        &self,
        def: &Arc<FlowDefinition>,
        slug: &str,
        query: &str,
        challenge: &Challenge,
    ) -> Option<Bytes> {
        if !cacheable(def, challenge) {
            return None;
        }
        let json = Bytes::from(serde_json::to_vec(challenge).ok()?);
        if let Ok(mut entries) = self.entries.write() {
            use std::sync::atomic::Ordering::Relaxed;
            if self.len.load(Relaxed) >= CAPACITY {
                entries.clear();
                self.len.store(0, Relaxed);
            }
            let previous = entries.entry(slug.to_owned()).or_default().insert(
                query.to_owned(),
                Entry {
                    def: def.clone(),
                    json: json.clone(),
                },
            );
            if previous.is_none() {
                self.len.fetch_add(1, Relaxed);
            }
        }
        Some(json)
    }
}

/// Whether the first challenge of `def` is the same for every visitor without a
/// session: no policy is bound anywhere in the flow (flow, stage bindings, prompt
/// validation), the first stage is identification or a prompt without expressions,
/// and the engine answered with that stage's challenge (not a denial or redirect).
fn cacheable(def: &FlowDefinition, challenge: &Challenge) -> bool {
    let Some(first) = def.stages.first() else {
        return false;
    };
    let static_stage = match &first.stage.config {
        StageConfig::Identification(_) => {
            matches!(challenge.body, ChallengeBody::Identification(_))
        }
        StageConfig::Prompt(p) => {
            !has_expressions(p) && matches!(challenge.body, ChallengeBody::Prompt(_))
        }
        _ => false,
    };
    static_stage
        && challenge.response_errors.is_empty()
        && def.policies.is_empty()
        && def.stages.iter().all(|s| s.policies.is_empty())
        && def.validation_policies.is_empty()
}

fn has_expressions(p: &PromptStage) -> bool {
    !p.validation_policies.is_empty()
        || p.fields
            .iter()
            .any(|f| f.placeholder_expression || f.initial_value_expression)
}

/// The 200 answer with cached JSON.
pub(crate) fn json_response(json: Bytes) -> Response {
    let mut response = (StatusCode::OK, json).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
