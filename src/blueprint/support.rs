//! The drift check of `docs/authentik-support.md`: every field the blueprint importer
//! accepts for a model is in the support matrix, every field in the matrix is accepted,
//! an implemented field is read by the engine, and a refused one is refused by name.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::super::models::{self, Model, POLICIES, STAGES};
    use super::super::objects::known_keys;

    const MATRIX: &str = include_str!("../../docs/authentik-support.md");

    /// Every model the importer has, by its authentik name.
    fn models() -> Vec<(String, Model)> {
        let mut out: Vec<(String, Model)> = [
            "authentik_flows.flow",
            "authentik_flows.flowstagebinding",
            "authentik_policies.policybinding",
            "authentik_stages_prompt.prompt",
            "authentik_core.group",
            "authentik_core.user",
        ]
        .iter()
        .filter_map(|n| models::lookup(n).map(|m| ((*n).to_owned(), m)))
        .collect();
        out.extend(
            STAGES
                .iter()
                .map(|(n, k)| ((*n).to_owned(), Model::Stage(*k))),
        );
        out.extend(
            POLICIES
                .iter()
                .map(|(n, k)| ((*n).to_owned(), Model::Policy(*k))),
        );
        out
    }

    /// `## `model`` sections with `| `field` | status | … |` rows.
    fn matrix() -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in MATRIX.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                current = h
                    .trim()
                    .strip_prefix('`')
                    .and_then(|h| h.strip_suffix('`'))
                    .map(str::to_owned);
                continue;
            }
            let Some(model) = &current else { continue };
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 4 || !cells[1].starts_with('`') {
                continue;
            }
            let field = cells[1].trim_matches('`').to_owned();
            let status = cells[2].to_ascii_lowercase();
            let previous = out
                .entry(model.clone())
                .or_default()
                .insert(field.clone(), status);
            assert!(previous.is_none(), "{model}: `{field}` listed twice");
        }
        out
    }

    const STATUSES: &[&str] = &["implemented", "improved", "refused", "cosmetic", "warned"];

    /// The engine's sources (not the model or the importer, which only carry fields).
    fn engine_sources() -> String {
        fn walk(dir: &std::path::Path, out: &mut String) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    if !p.ends_with("model") && !p.ends_with("blueprint") {
                        walk(&p, out);
                    }
                } else if p.extension().is_some_and(|x| x == "rs" || x == "html") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    for line in text.lines() {
                        let code = line.trim_start();
                        if !code.starts_with("//") {
                            out.push_str(line);
                            out.push('\n');
                        }
                    }
                }
            }
        }
        let mut out = String::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    #[test]
    fn the_support_matrix_matches_the_code() {
        let matrix = matrix();
        let engine = engine_sources();
        let model_src = [
            include_str!("../model/stage.rs"),
            include_str!("../model/stage_authenticator_webauthn.rs"),
            include_str!("../model/stage_email.rs"),
            include_str!("../model/validation.rs"),
            include_str!("../model/flow.rs"),
            include_str!("../model/policy.rs"),
            include_str!("../model/prompt.rs"),
            include_str!("build.rs"),
            include_str!("models.rs"),
            include_str!("objects.rs"),
        ]
        .concat();
        let mut problems = Vec::new();
        let names: BTreeSet<String> = models().into_iter().map(|(n, _)| n).collect();
        for name in matrix.keys() {
            if !names.contains(name) {
                problems.push(format!(
                    "the matrix lists `{name}`, which the importer does not have"
                ));
            }
        }
        for (name, model) in models() {
            let accepted: BTreeSet<String> = known_keys(&model).into_iter().collect();
            let Some(rows) = matrix.get(&name) else {
                problems.push(format!(
                    "`{name}` is missing from docs/authentik-support.md"
                ));
                continue;
            };
            for field in &accepted {
                if !rows.contains_key(field) {
                    problems.push(format!(
                        "{name}: accepted field `{field}` is not in the matrix"
                    ));
                }
            }
            for (field, status) in rows {
                let status = status.split_whitespace().next().unwrap_or("");
                if !STATUSES.contains(&status) {
                    problems.push(format!("{name}: `{field}` has unknown status `{status}`"));
                }
                if status == "warned"
                    && !model_src.contains(&format!("`{field}`"))
                    && !model_src.contains(&format!("\"{field}\""))
                {
                    problems.push(format!(
                        "{name}: `{field}` is listed as warned but no warning names it"
                    ));
                }
                if !accepted.contains(field) && status != "refused" {
                    problems.push(format!(
                        "{name}: `{field}` is not accepted by the importer but listed as {status}"
                    ));
                }
                let read = engine.contains(&format!(".{field}"))
                    || engine.contains(&format!("\"{field}\""));
                if (status == "implemented" || status == "improved")
                    && !read
                    && !matches!(field.as_str(), "name" | "pk")
                {
                    problems.push(format!(
                        "{name}: `{field}` is listed as {status} but the engine never reads it"
                    ));
                }
                if status == "refused"
                    && accepted.contains(field)
                    && !model_src.contains(&format!("\"{field}\""))
                {
                    problems.push(format!(
                        "{name}: `{field}` is listed as refused but no validation names it"
                    ));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "docs/authentik-support.md drifted:\n{}",
            problems.join("\n")
        );
    }
}
