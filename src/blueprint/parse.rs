//! Reading blueprint YAML: size limits, YAML errors with line and column, and the
//! document structure (`version`, `metadata`, `context`, `entries`). Tags stay
//! unresolved until the entry that holds them is applied.

use std::collections::BTreeMap;

use serde_norway::{Mapping, Value as Yaml};

use super::BlueprintError;

/// Largest blueprint accepted, in bytes (4 MiB; authentik's own are a few KiB).
pub const MAX_BLUEPRINT_BYTES: usize = 4 * 1024 * 1024;
/// Most entries one blueprint may have.
pub const MAX_ENTRIES: usize = 10_000;
/// The label that keeps authentik from applying a blueprint on discovery.
pub const LABEL_INSTANTIATE: &str = "blueprints.goauthentik.io/instantiate";

/// A parsed blueprint (authentik's `Blueprint`), ready to be applied.
#[derive(Debug, Clone)]
pub struct Blueprint {
    /// `version` (always 1: other versions are refused when parsing).
    pub version: u64,
    /// `metadata`, if present.
    pub metadata: Option<BlueprintMetadata>,
    pub(crate) context: Mapping,
    pub(crate) entries: Vec<RawEntry>,
}

/// A blueprint's `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlueprintMetadata {
    /// `name`: how `metaapplyblueprint` entries find the blueprint.
    pub name: String,
    /// `labels` (values turned into strings).
    pub labels: BTreeMap<String, String>,
}

impl Blueprint {
    /// `metadata.name`, if there is one.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref().map(|m| m.name.as_str())
    }

    /// Number of entries.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// False when the label `blueprints.goauthentik.io/instantiate` is `"false"`:
    /// authentik does not apply such blueprints on its own (they are examples).
    pub fn instantiate(&self) -> bool {
        self.metadata
            .as_ref()
            .and_then(|m| m.labels.get(LABEL_INSTANTIATE))
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"))
    }
}

/// One entry before its tags are resolved.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub model: Yaml,
    pub state: Yaml,
    pub conditions: Vec<Yaml>,
    pub identifiers: Yaml,
    pub attrs: Yaml,
    pub id: Option<String>,
    pub has_permissions: bool,
    pub unknown_keys: Vec<String>,
}

impl RawEntry {
    /// The model as written, for messages (tags shown as such).
    pub fn model_label(&self) -> String {
        match &self.model {
            Yaml::String(s) => s.clone(),
            Yaml::Tagged(t) => format!("{} …", t.tag),
            other => format!("{other:?}"),
        }
    }
}

fn invalid(file: &str, message: impl Into<String>) -> BlueprintError {
    BlueprintError::Invalid {
        file: file.to_owned(),
        message: message.into(),
    }
}

/// Parses a blueprint. `file` names it in errors.
///
/// ```
/// let bp = authflow::blueprint::parse("inline.yaml", "version: 1\nmetadata:\n  name: x\nentries: []\n").unwrap();
/// assert_eq!(bp.name(), Some("x"));
/// let err = authflow::blueprint::parse("bad.yaml", "entries: [\n").unwrap_err();
/// assert!(err.to_string().contains("line 2"));
/// ```
pub fn parse(file: &str, text: &str) -> Result<Blueprint, BlueprintError> {
    if text.len() > MAX_BLUEPRINT_BYTES {
        return Err(BlueprintError::TooLarge {
            file: file.to_owned(),
            size: text.len() as u64,
            limit: MAX_BLUEPRINT_BYTES as u64,
        });
    }
    let mut doc: Yaml = serde_norway::from_str(text).map_err(|e| {
        let loc = e.location();
        BlueprintError::Yaml {
            file: file.to_owned(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    })?;
    doc.apply_merge()
        .map_err(|e| invalid(file, format!("invalid YAML merge key: {e}")))?;
    let Yaml::Mapping(mut root) = doc else {
        return Err(invalid(
            file,
            "a blueprint must be a mapping with `version` and `entries`",
        ));
    };
    let version = match root.remove("version") {
        None => 1,
        Some(Yaml::Number(n)) if n.as_u64() == Some(1) => 1,
        Some(other) => {
            return Err(invalid(
                file,
                format!(
                    "unsupported blueprint version {}; authflow reads version 1",
                    scalar_text(&other)
                ),
            ));
        }
    };
    let metadata = match root.remove("metadata") {
        None | Some(Yaml::Null) => None,
        Some(Yaml::Mapping(m)) => Some(metadata(file, m)?),
        Some(_) => return Err(invalid(file, "`metadata` must be a mapping")),
    };
    let context = match root.remove("context") {
        None | Some(Yaml::Null) => Mapping::new(),
        Some(Yaml::Mapping(m)) => m,
        Some(_) => return Err(invalid(file, "`context` must be a mapping")),
    };
    let raw_entries: Vec<Yaml> = match root.remove("entries") {
        None => return Err(invalid(file, "the blueprint has no `entries`")),
        Some(Yaml::Null) => Vec::new(),
        Some(Yaml::Sequence(s)) => s,
        // Newer authentik: entries grouped in named sections.
        Some(Yaml::Mapping(sections)) => {
            let mut all = Vec::new();
            for (name, section) in sections {
                match section {
                    Yaml::Sequence(s) => all.extend(s),
                    Yaml::Null => {}
                    _ => {
                        return Err(invalid(
                            file,
                            format!("entry section `{}` must be a list", scalar_text(&name)),
                        ));
                    }
                }
            }
            all
        }
        Some(_) => return Err(invalid(file, "`entries` must be a list")),
    };
    if raw_entries.len() > MAX_ENTRIES {
        return Err(invalid(
            file,
            format!(
                "the blueprint has {} entries, more than the {MAX_ENTRIES} authflow accepts in one file",
                raw_entries.len()
            ),
        ));
    }
    let entries = raw_entries
        .into_iter()
        .enumerate()
        .map(|(index, e)| entry(file, index, e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Blueprint {
        version,
        metadata,
        context,
        entries,
    })
}

/// A scalar as text (for labels and messages).
pub(crate) fn scalar_text(v: &Yaml) -> String {
    match v {
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => s.clone(),
        Yaml::Tagged(t) => format!("{} {}", t.tag, scalar_text(&t.value)),
        Yaml::Sequence(_) => "[…]".into(),
        Yaml::Mapping(_) => "{…}".into(),
    }
}

fn metadata(file: &str, mut m: Mapping) -> Result<BlueprintMetadata, BlueprintError> {
    let name = match m.remove("name") {
        Some(Yaml::String(s)) => s,
        Some(Yaml::Number(n)) => n.to_string(),
        None | Some(Yaml::Null) => {
            return Err(invalid(
                file,
                "`metadata.name` is required when `metadata` is set",
            ));
        }
        Some(_) => return Err(invalid(file, "`metadata.name` must be a string")),
    };
    let labels = match m.remove("labels") {
        None | Some(Yaml::Null) => BTreeMap::new(),
        Some(Yaml::Mapping(l)) => l
            .into_iter()
            .map(|(k, v)| (scalar_text(&k), scalar_text(&v)))
            .collect(),
        Some(_) => return Err(invalid(file, "`metadata.labels` must be a mapping")),
    };
    Ok(BlueprintMetadata { name, labels })
}

fn entry(file: &str, index: usize, e: Yaml) -> Result<RawEntry, BlueprintError> {
    let entry_err = |model: &str, message: &str| BlueprintError::Entry {
        file: file.to_owned(),
        index,
        model: model.to_owned(),
        id: None,
        message: message.to_owned(),
    };
    let Yaml::Mapping(mut m) = e else {
        return Err(entry_err("?", "an entry must be a mapping with a `model`"));
    };
    let Some(model) = m.remove("model") else {
        return Err(entry_err("?", "the entry has no `model`"));
    };
    let model_text = scalar_text(&model);
    let id = match m.remove("id") {
        None | Some(Yaml::Null) => None,
        Some(Yaml::String(s)) => Some(s),
        Some(Yaml::Number(n)) => Some(n.to_string()),
        Some(Yaml::Bool(b)) => Some(b.to_string()),
        Some(_) => return Err(entry_err(&model_text, "`id` must be a string")),
    };
    let state = m
        .remove("state")
        .unwrap_or_else(|| Yaml::String("present".into()));
    let conditions = match m.remove("conditions") {
        None | Some(Yaml::Null) => Vec::new(),
        Some(Yaml::Sequence(s)) => s,
        Some(_) => return Err(entry_err(&model_text, "`conditions` must be a list")),
    };
    let identifiers = m.remove("identifiers").unwrap_or(Yaml::Null);
    let attrs = m.remove("attrs").unwrap_or(Yaml::Null);
    let has_permissions = match m.remove("permissions") {
        None | Some(Yaml::Null) => false,
        Some(Yaml::Sequence(s)) => !s.is_empty(),
        Some(_) => true,
    };
    let unknown_keys = m.keys().map(scalar_text).collect();
    Ok(RawEntry {
        model,
        state,
        conditions,
        identifiers,
        attrs,
        id,
        has_permissions,
        unknown_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure() {
        let bp = parse(
            "t.yaml",
            "version: 1\nmetadata:\n  name: n\n  labels:\n    blueprints.goauthentik.io/instantiate: false\ncontext:\n  a: 1\nentries:\n  - model: x.y\n    id: e\n    extra: 1\n",
        )
        .unwrap();
        assert_eq!(bp.name(), Some("n"));
        assert!(!bp.instantiate());
        assert_eq!(bp.entries.len(), 1);
        assert_eq!(bp.entries[0].id.as_deref(), Some("e"));
        assert_eq!(bp.entries[0].unknown_keys, vec!["extra".to_owned()]);
    }

    #[test]
    fn sections_and_errors() {
        let bp = parse(
            "t.yaml",
            "entries:\n  a:\n    - model: x.y\n  b:\n    - model: x.z\n",
        )
        .unwrap();
        assert_eq!(bp.entries.len(), 2);
        assert!(matches!(
            parse("t.yaml", "version: 2\nentries: []"),
            Err(BlueprintError::Invalid { .. })
        ));
        assert!(matches!(
            parse("t.yaml", "version: 1"),
            Err(BlueprintError::Invalid { .. })
        ));
        let Err(BlueprintError::Yaml { line, column, .. }) =
            parse("t.yaml", "version: 1\nentries:\n  - model: [x\n")
        else {
            panic!("expected a YAML error");
        };
        assert_eq!(line, Some(4));
        assert!(column.is_some());
    }
}
