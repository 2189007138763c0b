#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Blueprint tags against authentik's semantics (`authentik/blueprints/v1/common.py`):
//! `!File` (the `File` tag: a file's stripped text, or the default when it cannot be
//! read — authflow only below `ImportOptions::file_base`), `!Find` on a model authflow
//! does not have (`Find.resolve` answers `None` when nothing matches), and an entry
//! using an unsupported tag skipping only itself and its dependents under
//! `skip_unsupported`.
#![cfg(feature = "blueprints")]

use authflow::blueprint::{BlueprintError, EntryAction, Importer};
use authflow::memory;
use authflow::model::StageConfig;
use authflow::store::FlowSource;

/// A flow whose title comes from a tag, and a dummy stage bound to it.
fn blueprint(title_tag: &str) -> String {
    format!(
        r#"
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {{slug: tagged}}
    attrs: {{name: tagged, title: {title_tag}, designation: authentication}}
"#
    )
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("authflow-tags-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn title(stores: &memory::Stores) -> Option<String> {
    stores
        .flows
        .flow("tagged")
        .await
        .unwrap()
        .map(|d| d.flow.title.clone())
}

#[tokio::test]
async fn file_reads_below_the_base_stripped_or_falls_back_to_the_default() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("title.txt"), "  From a file\n").unwrap();
    let stores = memory::Stores::new();
    let importer = Importer::for_stores(&stores).file_base(dir.path());

    importer
        .apply_str("a.yaml", &blueprint("!File title.txt"))
        .await
        .unwrap();
    assert_eq!(title(&stores).await.as_deref(), Some("From a file"));

    // An absolute path inside the base reads too.
    let abs = dir.path().join("title.txt");
    importer
        .apply_str("b.yaml", &blueprint(&format!("!File {}", abs.display())))
        .await
        .unwrap();
    assert_eq!(title(&stores).await.as_deref(), Some("From a file"));

    // A missing file: the default, as authentik's `File.resolve` on an OSError.
    importer
        .apply_str("c.yaml", &blueprint("!File [missing.txt, Fallback]"))
        .await
        .unwrap();
    assert_eq!(title(&stores).await.as_deref(), Some("Fallback"));

    // A FIFO is not a file: the default, without blocking the import on opening it.
    #[cfg(unix)]
    if std::process::Command::new("mkfifo")
        .arg(dir.path().join("fifo"))
        .status()
        .is_ok_and(|s| s.success())
    {
        importer
            .apply_str("d.yaml", &blueprint("!File [fifo, NotAFile]"))
            .await
            .unwrap();
        assert_eq!(title(&stores).await.as_deref(), Some("NotAFile"));
    }
}

#[tokio::test]
async fn file_never_reads_outside_the_base() {
    let outer = TempDir::new();
    let base = outer.path().join("base");
    std::fs::create_dir(&base).unwrap();
    std::fs::write(outer.path().join("secret.txt"), "server secret").unwrap();
    let stores = memory::Stores::new();
    let importer = Importer::for_stores(&stores).file_base(&base);

    for path in [
        "../secret.txt".to_owned(),
        outer.path().join("secret.txt").display().to_string(),
        "../nonexistent.txt".to_owned(),
        // The same answer whether or not the file exists: no existence oracle.
        outer.path().join("nonexistent.txt").display().to_string(),
    ] {
        let err = importer
            .apply_str("x.yaml", &blueprint(&format!("!File [{path}, default]")))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("leaves the file base"),
            "{path}: {err}"
        );
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outer.path().join("secret.txt"), base.join("link.txt")).unwrap();
        let err = importer
            .apply_str("y.yaml", &blueprint("!File link.txt"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("leaves the file base"), "{err}");
    }
    assert_eq!(title(&stores).await, None, "nothing was written");
}

#[tokio::test]
async fn file_without_a_base_is_refused_naming_the_option() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("t.txt"), "x").unwrap();
    let stores = memory::Stores::new();
    let abs = dir.path().join("t.txt");
    let err = Importer::for_stores(&stores)
        .apply_str("a.yaml", &blueprint(&format!("!File {}", abs.display())))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlueprintError::Entry { index: 0, message, .. } if message.contains("ImportOptions::file_base")),
        "{err}"
    );
    assert_eq!(title(&stores).await, None);
}

#[tokio::test]
async fn unsupported_tags_skip_only_the_entry_and_its_dependents() {
    let yaml = r#"
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: kept}
    attrs: {name: kept, title: Kept, designation: authentication}
  - model: authentik_stages_dummy.dummystage
    id: dummy
    identifiers: {name: kept-dummy}
  - model: authentik_stages_dummy.dummystage
    id: reads-file
    identifiers: {name: from-file}
    attrs: {throw_error: !File /etc/hostname}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf reads-file, order: 10}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf dummy, order: 20}
  - model: authentik_stages_dummy.dummystage
    identifiers: {name: finds-object}
    attrs: {throw_error: !FindObject [authentik_flows.flow, [slug, kept]]}
"#;
    let stores = memory::Stores::new();
    // Without skip_unsupported the import fails and writes nothing.
    let err = Importer::for_stores(&stores)
        .apply_str("a.yaml", yaml)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("!File"), "{err}");
    assert!(stores.flows.flow("kept").await.unwrap().is_none());

    let report = Importer::for_stores(&stores)
        .skip_unsupported(true)
        .apply_str("a.yaml", yaml)
        .await
        .unwrap();
    // The stage that reads a file and the one with `!FindObject` are kept as stages
    // that deny access (a flow must not silently lose a check); the bindings and the
    // other stage apply as written.
    let skipped: Vec<(usize, bool)> = report
        .skipped
        .iter()
        .map(|s| (s.index, s.kept_as_denying_stage))
        .collect();
    assert_eq!(skipped, vec![(2, true), (5, true)], "{report:?}");
    assert!(report.skipped[0].reason.contains("file_base"), "{report:?}");
    assert!(
        report.skipped[1].reason.contains("!FindObject"),
        "{report:?}"
    );
    let action = |i: usize| report.entries.iter().find(|e| e.index == i).unwrap().action;
    assert_eq!(action(2), EntryAction::ImportedAsUnsupported);
    assert_eq!(action(3), EntryAction::Created);
    let def = stores.flows.flow("kept").await.unwrap().unwrap();
    let stages: Vec<&str> = def.stages.iter().map(|s| s.stage.name.as_str()).collect();
    assert_eq!(stages, vec!["from-file", "kept-dummy"]);
    assert!(matches!(
        def.stages[0].stage.config,
        StageConfig::Unsupported(_)
    ));
    assert!(matches!(def.stages[1].stage.config, StageConfig::Dummy(_)));
}

#[tokio::test]
async fn a_binding_of_a_policy_skipped_for_its_tags_is_refused() {
    let yaml = r#"
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: guarded}
    attrs: {name: guarded, title: Guarded, designation: authentication}
  - model: authentik_stages_dummy.dummystage
    id: dummy
    identifiers: {name: guarded}
  - model: authentik_flows.flowstagebinding
    id: binding
    identifiers: {target: !KeyOf flow, stage: !KeyOf dummy, order: 10}
  - model: authentik_policies_dummy.dummypolicy
    id: policy
    identifiers: {name: from-object}
    attrs: {result: !FindObject [authentik_flows.flow, [slug, x]]}
  - model: authentik_policies.policybinding
    identifiers: {target: !KeyOf binding, policy: !KeyOf policy, order: 0}
"#;
    let stores = memory::Stores::new();
    // A binding cannot be left out safely (the stage would run unguarded, or a
    // flow-level check would vanish): the import names the binding and writes nothing.
    let err = Importer::for_stores(&stores)
        .skip_unsupported(true)
        .apply_str("p.yaml", yaml)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlueprintError::Entry { index: 4, message, .. } if message.contains("`policy` refers to entry `policy`") && message.contains("skipped as unsupported")),
        "{err}"
    );
    assert!(stores.flows.catalogue().flows.is_empty());
    // Without the binding, the policy alone is skipped and the rest applies.
    let without_binding = yaml
        .split("  - model: authentik_policies.policybinding")
        .next()
        .unwrap();
    let report = Importer::for_stores(&stores)
        .skip_unsupported(true)
        .apply_str("p.yaml", without_binding)
        .await
        .unwrap();
    let skipped: Vec<usize> = report.skipped.iter().map(|s| s.index).collect();
    assert_eq!(skipped, vec![3], "{report:?}");
    assert_eq!(stores.flows.catalogue().stages.len(), 1);
    assert!(stores.flows.flow("guarded").await.unwrap().is_some());
}

#[tokio::test]
async fn find_on_a_model_authflow_lacks_answers_null() {
    // authentik's `Find.resolve`: `model_class.objects.filter(...).first()` is None →
    // the tag resolves to None. authflow has no such model: nothing can match.
    let stores = memory::Stores::new();
    Importer::for_stores(&stores)
        .apply_str(
            "a.yaml",
            &blueprint(
                "!If [!Find [authentik_providers_oauth2.oauth2provider, [name, x]], found, nothing]",
            ),
        )
        .await
        .unwrap();
    assert_eq!(title(&stores).await.as_deref(), Some("nothing"));
}
