//! How `!Find` and blueprint identifiers match an object's attributes: equality as
//! authentik compares values, and the Django field lookups of `Model.objects.filter`.

use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::tags::scalar_string;
/// Whether `actual` satisfies an identifier or `!Find` condition `wanted`: equal
/// values (UUIDs compared as UUIDs, numbers and numeric strings alike), or for a
/// mapping, containment (Django's `__contains`).
pub(crate) fn value_matches(actual: Option<&Json>, wanted: &Json) -> bool {
    let Some(actual) = actual else {
        return wanted.is_null();
    };
    match (actual, wanted) {
        (Json::String(a), Json::String(w)) => {
            a == w || matches!((Uuid::parse_str(a), Uuid::parse_str(w)), (Ok(x), Ok(y)) if x == y)
        }
        (Json::Number(a), Json::Number(w)) => a.as_f64() == w.as_f64(),
        (Json::Number(a), Json::String(w)) | (Json::String(w), Json::Number(a)) => {
            w.trim().parse::<f64>().ok() == a.as_f64()
        }
        (Json::Object(a), Json::Object(w)) => w.iter().all(|(k, v)| value_matches(a.get(k), v)),
        (a, w) => a == w,
    }
}

/// Whether every identifier matches an object's attributes (`pk` included).
/// A key may carry a Django lookup (`slug__iexact`, see [`LOOKUPS`]).
pub(crate) fn attrs_match(attrs: &Map<String, Json>, wanted: &Map<String, Json>) -> bool {
    wanted.iter().all(|(k, v)| match split_lookup(k) {
        Some((field, lookup)) => lookup_matches(attrs.get(field), lookup, v),
        None => value_matches(attrs.get(k), v),
    })
}

/// The Django field lookups `!Find` understands (authentik passes the query to
/// `Model.objects.filter(**query)`, `authentik/blueprints/v1/common.py` `Find`).
pub(crate) const LOOKUPS: &[&str] = &[
    "exact",
    "iexact",
    "isnull",
    "in",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
];

/// `field__lookup` split into its parts, when the suffix is a known lookup.
pub(crate) fn split_lookup(key: &str) -> Option<(&str, &str)> {
    let (field, lookup) = key.rsplit_once("__")?;
    LOOKUPS.contains(&lookup).then_some((field, lookup))
}

/// Whether `actual` satisfies `field__<lookup>=wanted` as Django evaluates it.
fn lookup_matches(actual: Option<&Json>, lookup: &str, wanted: &Json) -> bool {
    let actual = actual.filter(|a| !a.is_null());
    if lookup == "isnull" {
        return actual.is_none() == super::python::truthy(wanted);
    }
    if lookup == "exact" {
        return value_matches(actual, wanted);
    }
    if lookup == "in" {
        return match wanted {
            Json::Array(options) => options.iter().any(|w| value_matches(actual, w)),
            _ => false,
        };
    }
    let Some(actual) = actual else {
        return false;
    };
    if lookup == "contains" {
        if let (Json::Array(a), w) = (actual, wanted) {
            return a.iter().any(|x| value_matches(Some(x), w));
        }
        if let (Json::Object(_), Json::Object(_)) = (actual, wanted) {
            return value_matches(Some(actual), wanted);
        }
    }
    let (Some(a), Some(w)) = (scalar_string(actual), scalar_string(wanted)) else {
        return false;
    };
    let (a, w) = if lookup.starts_with('i') {
        (a.to_lowercase(), w.to_lowercase())
    } else {
        (a, w)
    };
    match lookup.trim_start_matches('i') {
        "exact" => a == w,
        "contains" => a.contains(&w),
        "startswith" => a.starts_with(&w),
        "endswith" => a.ends_with(&w),
        _ => false,
    }
}
