//! Resolving authentik's YAML tags (`!KeyOf`, `!Find`, `!Context`, `!Format`, `!Env`,
//! `!If`, `!Condition`, `!Enumerate`/`!Index`/`!Value`, `!AtIndex`, `!ParseJSON`) into
//! plain JSON values, with authentik's semantics (`authentik/blueprints/v1/common.py`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use serde_json::{Map, Value as Json};
use serde_norway::Value as Yaml;
use serde_norway::value::TaggedValue;

use super::models::{self, Model};
use super::python::{deep_merge, percent_format, truthy};
use super::work::Work;
use crate::store::UserDirectory;

/// Most values one entry's tags may produce (guards `!Enumerate` blow-ups).
pub(crate) const RESOLVE_BUDGET: usize = 1_000_000;
/// Deepest nesting of values and tags (guards `!Context` values that refer to
/// themselves).
pub(crate) const MAX_DEPTH: usize = 128;

type Resolved<'a> = Pin<Box<dyn Future<Output = Result<Json, String>> + Send + 'a>>;

/// Where `!KeyOf` looks: what each entry so far produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct EntryRef {
    /// The object's pk, once the entry was applied.
    pub instance: Option<String>,
    /// Set when the entry was skipped as unsupported: its model.
    pub skipped: Option<String>,
}

/// Where `!Env` reads from.
#[derive(Debug, Clone, Default)]
pub(crate) enum EnvSource {
    /// The process environment.
    #[default]
    Process,
    /// A fixed map.
    Map(BTreeMap<String, String>),
}

impl EnvSource {
    fn get(&self, key: &str) -> Option<String> {
        match self {
            EnvSource::Process => std::env::var(key).ok(),
            EnvSource::Map(m) => m.get(key).cloned(),
        }
    }
}

/// The blueprint context: the caller's values over the file's `context` over
/// authentik's defaults.
pub(crate) struct Context<'a> {
    pub caller: &'a Map<String, Json>,
    pub file: &'a serde_norway::Mapping,
}

/// Resolves tags for one entry.
pub(crate) struct Resolver<'r> {
    pub work: &'r mut Work,
    pub dir: &'r dyn UserDirectory,
    pub entries: &'r [EntryRef],
    /// Entry indexes by `id`.
    pub ids: &'r HashMap<String, Vec<usize>>,
    pub context: &'r Context<'r>,
    pub env: &'r EnvSource,
    /// `!Enumerate` contexts, innermost last (`None` while the iterable resolves).
    stack: Vec<Option<(Json, Json)>>,
    budget: usize,
    depth: usize,
    /// File context keys being resolved (a value referring to itself is an error).
    context_keys: Vec<String>,
    /// Where `!File` may read ([`ImportOptions::file_base`](super::ImportOptions::file_base)).
    file_base: Option<&'r Path>,
    /// Set when a tag authflow does not support (or that is disabled) was met: the
    /// entry is then skipped under `skip_unsupported` instead of failing the import.
    pub unsupported: Option<String>,
}

fn tag_name(t: &TaggedValue) -> String {
    t.tag.to_string().trim_start_matches('!').to_owned()
}

fn seq<'v>(tag: &str, v: &'v Yaml) -> Result<&'v Vec<Yaml>, String> {
    match v {
        Yaml::Sequence(s) => Ok(s),
        _ => Err(format!("!{tag} takes a sequence")),
    }
}

/// A scalar's text (strings as they are, numbers and booleans formatted).
pub(crate) fn scalar_string(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A YAML mapping key as a JSON key.
fn key_string(k: &Json) -> Result<String, String> {
    match k {
        Json::Null => Ok("None".into()),
        other => scalar_string(other)
            .ok_or_else(|| format!("mapping keys must be scalars, got `{other}`")),
    }
}

impl<'r> Resolver<'r> {
    pub fn new(
        work: &'r mut Work,
        dir: &'r dyn UserDirectory,
        entries: &'r [EntryRef],
        ids: &'r HashMap<String, Vec<usize>>,
        context: &'r Context<'r>,
        env: &'r EnvSource,
    ) -> Self {
        Self {
            work,
            dir,
            entries,
            ids,
            context,
            env,
            stack: Vec::new(),
            budget: RESOLVE_BUDGET,
            depth: 0,
            context_keys: Vec::new(),
            file_base: None,
            unsupported: None,
        }
    }

    /// Lets `!File` read files under `base`.
    pub fn with_file_base(mut self, base: Option<&'r Path>) -> Self {
        self.file_base = base;
        self
    }

    /// Records an unsupported tag and returns its error.
    fn unsupported_tag(&mut self, message: String) -> Result<Json, String> {
        self.unsupported = Some(message.clone());
        Err(message)
    }

    fn spend(&mut self) -> Result<(), String> {
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| format!("tags expand to more than {RESOLVE_BUDGET} values; refusing"))?;
        Ok(())
    }

    /// Resolves every tag in `v`.
    pub fn resolve<'s>(&'s mut self, v: &'s Yaml) -> Resolved<'s> {
        Box::pin(async move {
            self.spend()?;
            if self.depth >= MAX_DEPTH {
                return Err(format!(
                    "values and tags nest deeper than {MAX_DEPTH} levels (does a `!Context` value refer to itself?)"
                ));
            }
            self.depth += 1;
            let result = self.resolve_inner(v).await;
            self.depth -= 1;
            result
        })
    }

    async fn resolve_inner(&mut self, v: &Yaml) -> Result<Json, String> {
        Ok(match v {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => Json::Bool(*b),
            Yaml::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Json::from(i)
                } else if let Some(u) = n.as_u64() {
                    Json::from(u)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    serde_json::Number::from_f64(f)
                        .map(Json::Number)
                        .ok_or_else(|| format!("`{n}` cannot be represented"))?
                }
            }
            Yaml::String(s) => Json::String(s.clone()),
            Yaml::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.resolve(i).await?);
                }
                Json::Array(out)
            }
            Yaml::Mapping(m) => {
                let mut out = Map::new();
                for (k, val) in m {
                    let key = self.resolve(k).await?;
                    let key = key_string(&key)?;
                    let val = self.resolve(val).await?;
                    out.insert(key, val);
                }
                Json::Object(out)
            }
            Yaml::Tagged(t) => self.tag(t).await?,
        })
    }

    async fn tag(&mut self, t: &TaggedValue) -> Result<Json, String> {
        let name = tag_name(t);
        match name.as_str() {
            "KeyOf" => self.key_of(&t.value).await,
            "Env" => self.env_tag(&t.value).await,
            "Context" => self.context_tag(&t.value).await,
            "Format" => {
                let items = seq(&name, &t.value)?;
                let Some((fmt, args)) = items.split_first() else {
                    return Err("!Format needs a format string".into());
                };
                let fmt = self.resolve(fmt).await?;
                let Json::String(fmt) = fmt else {
                    return Err("!Format: the format must be a string".into());
                };
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.resolve(a).await?);
                }
                percent_format(&fmt, &values)
                    .map(Json::String)
                    .map_err(|e| format!("!Format: {e}"))
            }
            "Find" => self.find_tag(&t.value).await,
            "Condition" => {
                let items = seq(&name, &t.value)?;
                let Some((mode, args)) = items.split_first() else {
                    return Err("!Condition needs a mode".into());
                };
                let mode = self.resolve(mode).await?;
                let mode = mode
                    .as_str()
                    .map(str::to_ascii_uppercase)
                    .unwrap_or_default();
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(truthy(&self.resolve(a).await?));
                }
                if values.is_empty() {
                    return Err(
                        "!Condition: At least one value is required after mode selection.".into(),
                    );
                }
                let parity = values.iter().filter(|v| **v).count() % 2 == 1;
                let r = match mode.as_str() {
                    "AND" => values.iter().all(|v| *v),
                    "NAND" => !values.iter().all(|v| *v),
                    "OR" => values.iter().any(|v| *v),
                    "NOR" => !values.iter().any(|v| *v),
                    "XOR" => parity,
                    "XNOR" => !parity,
                    _ => {
                        return Err(format!(
                            "!Condition: unknown mode `{mode}` (AND, NAND, OR, NOR, XOR, XNOR)"
                        ));
                    }
                };
                Ok(Json::Bool(r))
            }
            "If" => {
                let items = seq(&name, &t.value)?;
                let (cond, branches) = match items.as_slice() {
                    [c] => (c, None),
                    [c, yes, no] => (c, Some((yes, no))),
                    _ => {
                        return Err(
                            "!If takes [condition] or [condition, when_true, when_false]".into(),
                        );
                    }
                };
                let cond = truthy(&self.resolve(cond).await?);
                match branches {
                    None => Ok(Json::Bool(cond)),
                    Some((yes, no)) => self.resolve(if cond { yes } else { no }).await,
                }
            }
            "Enumerate" => self.enumerate(&t.value).await,
            "Index" | "Value" => {
                let depth = self.resolve(&t.value).await?;
                let depth = depth
                    .as_u64()
                    .or_else(|| depth.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| format!("!{name} takes a depth (0, 1, …)"))?;
                let pos = usize::try_from(depth)
                    .ok()
                    .and_then(|d| self.stack.len().checked_sub(d + 1));
                let Some(pos) = pos else {
                    return Err(if depth == 0 {
                        format!("!{name} tags are only usable inside an !Enumerate tag")
                    } else {
                        format!(
                            "!{name}: invalid depth {depth}; there are {} enclosing !Enumerate tags",
                            self.stack.len()
                        )
                    });
                };
                match self.stack.get(pos).cloned().flatten() {
                    Some((index, value)) => Ok(if name == "Index" { index } else { value }),
                    None => Err(format!("!{name}: empty/invalid context")),
                }
            }
            "AtIndex" => {
                let items = seq(&name, &t.value)?;
                let (obj, attr, default) = match items.as_slice() {
                    [o, a] => (o, a, None),
                    [o, a, d] => (o, a, Some(d)),
                    _ => {
                        return Err(
                            "!AtIndex takes [object, index] or [object, index, default]".into()
                        );
                    }
                };
                let obj = self.resolve(obj).await?;
                let attr = self.resolve(attr).await?;
                let found = match &obj {
                    Json::Array(list) => {
                        let i = attr
                            .as_i64()
                            .ok_or_else(|| format!("!AtIndex: invalid index for list: {attr}"))?;
                        let len = i64::try_from(list.len()).unwrap_or(i64::MAX);
                        let i = if i < 0 { i + len } else { i };
                        usize::try_from(i).ok().and_then(|i| list.get(i)).cloned()
                    }
                    Json::Object(map) => map.get(&key_string(&attr)?).cloned(),
                    _ => return Err("!AtIndex needs a sequence or a mapping".into()),
                };
                match (found, default) {
                    (Some(v), _) => Ok(v),
                    (None, Some(d)) => self.resolve(d).await,
                    (None, None) => Err(format!("!AtIndex: index or key does not exist: {attr}")),
                }
            }
            "ParseJSON" => {
                let raw = self.resolve(&t.value).await?;
                let Json::String(raw) = raw else {
                    return Err("!ParseJSON takes a string".into());
                };
                serde_json::from_str(&raw).map_err(|e| format!("!ParseJSON: {e}"))
            }
            "File" => self.file_tag(&t.value).await,
            "FindObject" => self.unsupported_tag(
                "!FindObject is not supported by authflow; put the value in the blueprint or its context"
                    .into(),
            ),
            other => Err(format!("unknown tag `!{other}`")),
        }
    }

    async fn key_of(&mut self, v: &Yaml) -> Result<Json, String> {
        let id = self.resolve(v).await?;
        let id = scalar_string(&id).ok_or("!KeyOf takes the `id` of an entry")?;
        let positions = self.ids.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        for e in positions.iter().filter_map(|i| self.entries.get(*i)) {
            if let Some(pk) = &e.instance {
                return Ok(Json::String(pk.clone()));
            }
            if let Some(model) = &e.skipped {
                return Ok(models::skipped_marker(&id, model));
            }
        }
        Err(format!(
            "KeyOf: failed to find entry with `id` of `{id}` and a model instance (an entry can only refer to entries before it)"
        ))
    }

    async fn key_and_default(&mut self, tag: &str, v: &Yaml) -> Result<(String, Json), String> {
        match v {
            Yaml::Sequence(items) => {
                let (key, default) = match items.as_slice() {
                    [k] => (k, None),
                    [k, d] => (k, Some(d)),
                    _ => return Err(format!("!{tag} takes a key or [key, default]")),
                };
                let key = self.resolve(key).await?;
                let key = scalar_string(&key).ok_or(format!("!{tag}: the key must be a string"))?;
                let default = match default {
                    Some(d) => self.resolve(d).await?,
                    None => Json::Null,
                };
                Ok((key, default))
            }
            other => {
                let key = self.resolve(other).await?;
                let key = scalar_string(&key).ok_or(format!("!{tag}: the key must be a string"))?;
                Ok((key, Json::Null))
            }
        }
    }

    async fn env_tag(&mut self, v: &Yaml) -> Result<Json, String> {
        let (key, default) = self.key_and_default("Env", v).await?;
        Ok(match self.env.get(&key) {
            Some(value) if !value.is_empty() => Json::String(value),
            _ => default,
        })
    }

    /// `!File path` / `!File [path, default]`: the file's text with surrounding
    /// whitespace stripped, or the default when it cannot be read (authentik's
    /// `File.resolve` in `authentik/blueprints/v1/common.py`). authflow reads only
    /// below [`ImportOptions::file_base`](super::ImportOptions::file_base): without
    /// one the tag is refused, and a path that leaves the base (`..`, a symlink out)
    /// is an error, not the default — a blueprint must not read the server's files.
    async fn file_tag(&mut self, v: &Yaml) -> Result<Json, String> {
        let (path, default) = self.key_and_default("File", v).await?;
        let Some(base) = self.file_base else {
            return self.unsupported_tag(format!(
                "!File `{path}`: reading files is off; set `ImportOptions::file_base` to the directory blueprints may read from"
            ));
        };
        let given = base;
        let base = given
            .canonicalize()
            .map_err(|e| format!("!File: the file base cannot be read: {e}"))?;
        // Decided from the path's text first, so the answer is the same whether or not
        // a file exists out there (no existence oracle).
        let requested = Path::new(&path);
        let outside = requested
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
            || (requested.is_absolute()
                && !requested.starts_with(given)
                && !requested.starts_with(&base));
        if outside {
            return Err(format!("!File `{path}`: the path leaves the file base"));
        }
        let resolved = match base.join(requested).canonicalize() {
            Ok(p) => p,
            Err(_) => return Ok(default),
        };
        if !resolved.starts_with(&base) {
            // A symlink inside the base pointing out of it.
            return Err(format!("!File `{path}`: the path leaves the file base"));
        }
        match read_text(&resolved) {
            Some(text) => Ok(Json::String(text.trim().to_owned())),
            None => Ok(default),
        }
    }

    async fn context_tag(&mut self, v: &Yaml) -> Result<Json, String> {
        let (key, default) = self.key_and_default("Context", v).await?;
        let context = self.context;
        let file = match context.file.get(key.as_str()) {
            Some(y) => {
                if self.context_keys.contains(&key) {
                    return Err(format!(
                        "!Context: the context value `{key}` refers to itself ({} -> {key})",
                        self.context_keys.join(" -> ")
                    ));
                }
                self.context_keys.push(key.clone());
                let value = self.resolve(y).await;
                self.context_keys.pop();
                Some(value?)
            }
            None => None,
        };
        let value = match (file, context.caller.get(&key)) {
            (Some(mut f), Some(c)) => {
                deep_merge(&mut f, c.clone());
                Some(f)
            }
            (Some(f), None) => Some(f),
            (None, Some(c)) => Some(c.clone()),
            (None, None) => match key.as_str() {
                // authentik's default context.
                "goauthentik.io/enterprise/licensed" => Some(Json::Bool(false)),
                "goauthentik.io/rbac/models" => Some(Json::Object(Map::new())),
                _ => None,
            },
        };
        Ok(value.unwrap_or(default))
    }

    async fn enumerate(&mut self, v: &Yaml) -> Result<Json, String> {
        let items = seq("Enumerate", v)?;
        let [iterable, output, body] = items.as_slice() else {
            return Err("!Enumerate takes [iterable, SEQ|MAP, item body]".into());
        };
        if let Yaml::Tagged(t) = iterable {
            let n = tag_name(t);
            let zero = matches!(&t.value, Yaml::Number(d) if d.as_u64() == Some(0));
            if (n == "Index" || n == "Value") && zero {
                return Err(
                    "!Enumerate's iterable refers to this tag's own context; use a depth above 0"
                        .into(),
                );
            }
        }
        self.stack.push(None);
        let result = self.enumerate_inner(iterable, output, body).await;
        self.stack.pop();
        result
    }

    async fn enumerate_inner(
        &mut self,
        iterable: &Yaml,
        output: &Yaml,
        body: &Yaml,
    ) -> Result<Json, String> {
        let iterable = self.resolve(iterable).await?;
        let output = self.resolve(output).await?;
        let items: Vec<(Json, Json)> = match iterable {
            Json::Array(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Json::from(i), v))
                .collect(),
            Json::Object(map) => map.into_iter().map(|(k, v)| (Json::String(k), v)).collect(),
            Json::String(s) => s
                .chars()
                .enumerate()
                .map(|(i, c)| (Json::from(i), Json::String(c.to_string())))
                .collect(),
            _ => {
                return Err(
                    "!Enumerate's iterable must be an iterable such as a sequence or a mapping"
                        .into(),
                );
            }
        };
        let mode = output
            .as_str()
            .map(str::to_ascii_uppercase)
            .unwrap_or_default();
        let mut seq_out = Vec::new();
        let mut map_out = Json::Object(Map::new());
        for item in items {
            if let Some(top) = self.stack.last_mut() {
                *top = Some(item);
            }
            let resolved = self.resolve(body).await?;
            match mode.as_str() {
                "SEQ" => seq_out.push(resolved),
                "MAP" => {
                    let addition = match resolved {
                        Json::Array(pair) if pair.len() >= 2 => {
                            let mut pair = pair.into_iter();
                            let k = pair.next().unwrap_or(Json::Null);
                            let v = pair.next().unwrap_or(Json::Null);
                            let mut m = Map::new();
                            m.insert(key_string(&k)?, v);
                            Json::Object(m)
                        }
                        Json::Object(m) => Json::Object(m),
                        other => {
                            return Err(format!("invalid !Enumerate item found: {other}"));
                        }
                    };
                    deep_merge(&mut map_out, addition);
                }
                other => {
                    return Err(format!(
                        "!Enumerate: unknown output body `{other}` (SEQ or MAP)"
                    ));
                }
            }
        }
        Ok(if mode == "SEQ" {
            Json::Array(seq_out)
        } else {
            map_out
        })
    }

    async fn find_tag(&mut self, v: &Yaml) -> Result<Json, String> {
        let items = seq("Find", v)?;
        let Some((model, conds)) = items.split_first() else {
            return Err("!Find takes [model, [field, value], …]".into());
        };
        let model = self.resolve(model).await?;
        let model = model
            .as_str()
            .ok_or("!Find: the model must be a string")?
            .to_owned();
        let mut wanted = Map::new();
        for c in conds {
            let pair = self.resolve(c).await?;
            let Json::Array(pair) = pair else {
                return Err("!Find: each condition is a [field, value] pair".into());
            };
            let [k, val] = pair.as_slice() else {
                return Err("!Find: each condition is a [field, value] pair".into());
            };
            let k = scalar_string(k).ok_or("!Find: a field name must be a string")?;
            let k = match k.strip_suffix("__exact") {
                Some(base) => base.to_owned(),
                None => k,
            };
            if k.contains("__") && models::split_lookup(&k).is_none() {
                return Err(format!(
                    "!Find: the lookup `{k}` is not supported by authflow (supported: {})",
                    models::LOOKUPS.join(", ")
                ));
            }
            wanted.insert(k, val.clone());
        }
        let Some(m) = models::lookup(&model).or_else(|| {
            models::is_stage_model(&model).then(|| Model::UnsupportedStage(model.clone()))
        }) else {
            // authentik's `Find` answers None when nothing matches; a model
            // authflow does not have holds nothing authflow could match.
            return Ok(Json::Null);
        };
        super::find::find(self.work, self.dir, &m, &wanted).await
    }
}

/// Most bytes `!File` reads (a secret or a certificate, not a disk image).
pub(crate) const MAX_FILE_BYTES: u64 = 1 << 20;

/// A file's UTF-8 text, `None` when it cannot be read, is not UTF-8 or is larger
/// than [`MAX_FILE_BYTES`].
fn read_text(path: &Path) -> Option<String> {
    use std::io::Read;
    // Checked before opening: opening a FIFO would block the import.
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() as u64 <= MAX_FILE_BYTES).then_some(text)
}
