//! References between blueprint entries: primary keys, flow slugs, and the marker a
//! `!KeyOf` to a skipped entry resolves to.

use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::work::Work;

/// The key of the value a `!KeyOf` to a skipped entry resolves to.
pub(crate) const SKIPPED_KEY: &str = "$authflow_skipped";

/// What `!KeyOf` gives for an entry that was skipped as unsupported.
pub(crate) fn skipped_marker(id: &str, model: &str) -> Json {
    json!({ SKIPPED_KEY: { "id": id, "model": model } })
}

fn skipped_message(field: &str, v: &Json) -> Option<String> {
    let s = v.as_object()?.get(SKIPPED_KEY)?;
    Some(format!(
        "`{field}` refers to entry `{}` (model `{}`), which was skipped as unsupported (see the import report), so it cannot be bound safely: remove this entry too",
        s.get("id").and_then(Json::as_str).unwrap_or("?"),
        s.get("model").and_then(Json::as_str).unwrap_or("?"),
    ))
}

/// Whether a value is (or contains, one level down) a skipped-entry marker.
pub(crate) fn is_skipped(v: &Json) -> bool {
    v.as_object().is_some_and(|o| o.contains_key(SKIPPED_KEY))
}

/// A primary key reference (`null` → `None`).
pub(crate) fn ref_uuid(field: &str, v: &Json) -> Result<Option<Uuid>, String> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => Uuid::parse_str(s).map(Some).map_err(|_| {
            format!(
                "`{field}`: `{s}` is not a primary key (a UUID); refer to objects with !KeyOf or !Find"
            )
        }),
        other => Err(skipped_message(field, other).unwrap_or_else(|| {
            format!("`{field}`: expected a primary key (a UUID), got `{other}`")
        })),
    }
}

/// A list of primary keys (`null` → empty).
pub(crate) fn ref_list(field: &str, v: &Json) -> Result<Vec<Uuid>, String> {
    match v {
        Json::Null => Ok(Vec::new()),
        Json::Array(items) => items
            .iter()
            .filter_map(|i| ref_uuid(field, i).transpose())
            .collect(),
        other => Err(skipped_message(field, other)
            .unwrap_or_else(|| format!("`{field}`: expected a list of primary keys"))),
    }
}

/// A reference to a flow, kept by authflow as the flow's slug. Accepts the flow's pk
/// (what `!KeyOf`/`!Find` give), or its slug.
pub(crate) fn flow_ref(work: &Work, field: &str, v: &Json) -> Result<Option<String>, String> {
    if let Json::String(s) = v {
        if Uuid::parse_str(s).is_err() {
            return match work.flow_by_slug(s) {
                Some(f) => Ok(Some(f.slug.clone())),
                None => Err(format!("`{field}`: no flow has the slug `{s}`")),
            };
        }
    }
    let Some(id) = ref_uuid(field, v)? else {
        return Ok(None);
    };
    work.flows
        .get(&crate::model::FlowId::from_uuid(id))
        .or_else(|| {
            work.flows
                .values()
                .find(|f| f.policybindingmodel_ptr_id == id)
        })
        .map(|f| Some(f.slug.clone()))
        .ok_or_else(|| format!("`{field}`: no flow has the pk `{id}`"))
}
