//! authentik's `Group` and `User` models as authflow maps them: their attributes as
//! authentik's serializers show them, and their defaults.

use serde_json::{Map, Value as Json, json};

use crate::store::{Group, User};

/// A group's attributes.
pub(crate) fn group_attrs(g: &Group) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("name".into(), json!(g.name));
    m.insert("is_superuser".into(), json!(g.is_superuser));
    m.insert(
        "parent".into(),
        g.parent.map_or(Json::Null, |p| json!(p.to_string())),
    );
    m.insert("attributes".into(), Json::Object(g.attributes.clone()));
    m
}

/// Default attributes of a new group.
pub(crate) fn group_defaults() -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("is_superuser".into(), json!(false));
    m.insert("parent".into(), Json::Null);
    m.insert("attributes".into(), json!({}));
    m
}

/// A user's attributes (authentik calls the type `type`).
pub(crate) fn user_attrs(u: &User) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("username".into(), json!(u.username));
    m.insert("name".into(), json!(u.name));
    m.insert("email".into(), json!(u.email));
    m.insert("is_active".into(), json!(u.is_active));
    m.insert("path".into(), json!(u.path));
    m.insert("type".into(), json!(u.user_type));
    m.insert("attributes".into(), Json::Object(u.attributes.clone()));
    let groups: Vec<Json> = u.groups.iter().map(|g| json!(g.to_string())).collect();
    m.insert("groups".into(), Json::Array(groups));
    m
}

/// Default attributes of a new user (authentik's model defaults).
pub(crate) fn user_defaults() -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("name".into(), json!(""));
    m.insert("email".into(), json!(""));
    m.insert("is_active".into(), json!(true));
    m.insert("path".into(), json!("users"));
    m.insert("type".into(), json!("internal"));
    m.insert("attributes".into(), json!({}));
    m.insert("groups".into(), json!([]));
    m
}
