//! The flow catalogue in SQL: [`FlowSource`] and [`FlowAdmin`] over
//! [`Catalogue`].
//!
//! Each object is one row (`authflow_flows`, `authflow_stages`,
//! `authflow_flow_bindings`, `authflow_policies`, `authflow_policy_bindings`) with its
//! JSON in `body`. A write, in one transaction: bumps the generation in
//! `authflow_catalogue` (which takes the write lock: PostgreSQL's row lock, SQLite's
//! database lock), loads every row into a [`Catalogue`], applies the [`Op`] (so the
//! rules are exactly the memory store's), writes the rows that changed and sets the
//! `revision` of every flow the catalogue bumped to the new generation. Revisions thus
//! never repeat, and [`FlowSource::revision`] is one indexed single-row query, which is
//! all the engine asks per request while its definition cache is fresh — or not even
//! that, with [`EngineBuilder::revision_check_interval`](crate::EngineBuilder::revision_check_interval),
//! for revisions checked within the interval and no write of this process since
//! ([`FlowSource::local_writes`] counts them). Definitions are read from a local copy
//! of the catalogue, reloaded when the generation moved.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use sqlx::{AnyConnection, Row};

use super::{SqlStore, corrupt, uint, unavailable};
use crate::catalogue::{Catalogue, CatalogueSnapshot, Op};
use crate::model::{
    BindingId, Flow, FlowStageBinding, NON_FIELD_ERRORS, Policy, PolicyBinding, PolicyBindingId,
    PolicyId, Stage, StageId, ValidationErrors,
};
use crate::store::{FlowAdmin, FlowDefinition, FlowSource, StoreError};

/// The catalogue as last loaded, with its generation; and the count of writes this
/// process committed ([`FlowSource::local_writes`]).
#[derive(Default)]
pub(crate) struct CatalogueCache(
    RwLock<Option<(i64, Arc<Catalogue>)>>,
    std::sync::atomic::AtomicU64,
);

/// The rows of the catalogue tables: pk → stored JSON, per table.
#[derive(Default)]
struct Rows {
    flows: HashMap<String, String>,
    stages: HashMap<String, String>,
    bindings: HashMap<String, String>,
    policies: HashMap<String, String>,
    policy_bindings: HashMap<String, String>,
}

const TABLES: [&str; 5] = [
    "authflow_flows",
    "authflow_stages",
    "authflow_flow_bindings",
    "authflow_policies",
    "authflow_policy_bindings",
];

async fn generation(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT generation FROM authflow_catalogue WHERE id = 1")
        .fetch_one(conn)
        .await?
        .try_get("generation")
}

async fn load_rows(conn: &mut AnyConnection) -> Result<Rows, sqlx::Error> {
    let mut rows = Rows::default();
    for table in TABLES {
        let found = sqlx::query(&format!("SELECT pk, body FROM {table}"))
            .fetch_all(&mut *conn)
            .await?;
        let map = match table {
            "authflow_flows" => &mut rows.flows,
            "authflow_stages" => &mut rows.stages,
            "authflow_flow_bindings" => &mut rows.bindings,
            "authflow_policies" => &mut rows.policies,
            _ => &mut rows.policy_bindings,
        };
        for r in found {
            map.insert(r.try_get("pk")?, r.try_get("body")?);
        }
    }
    Ok(rows)
}

fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    map: &HashMap<String, String>,
) -> Result<Vec<T>, StoreError> {
    map.values()
        .map(|body| serde_json::from_str(body).map_err(|e| corrupt(what, e)))
        .collect()
}

impl Rows {
    fn snapshot(&self) -> Result<CatalogueSnapshot, StoreError> {
        Ok(CatalogueSnapshot {
            flows: parse("flow", &self.flows)?,
            stages: parse("stage", &self.stages)?,
            bindings: parse("flow-stage binding", &self.bindings)?,
            policies: parse("policy", &self.policies)?,
            policy_bindings: parse("policy binding", &self.policy_bindings)?,
        })
    }
}

fn unserialisable(e: serde_json::Error) -> StoreError {
    StoreError::Validation(ValidationErrors::field(
        NON_FIELD_ERRORS,
        format!(
            "cannot store this object in SQL (host-defined stages and policies are not \
             serialisable): {e}"
        ),
    ))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(unserialisable)
}

/// The rows `after` has that differ from `before` (to upsert) and the pks `before` has
/// that `after` lacks (to delete).
fn diff<'a>(
    before: &HashMap<String, String>,
    after: &'a [(String, String)],
) -> (Vec<&'a (String, String)>, Vec<String>) {
    let changed = after
        .iter()
        .filter(|(pk, body)| before.get(pk) != Some(body))
        .collect();
    let kept: std::collections::HashSet<&str> = after.iter().map(|(pk, _)| pk.as_str()).collect();
    let removed = before
        .keys()
        .filter(|pk| !kept.contains(pk.as_str()))
        .cloned()
        .collect();
    (changed, removed)
}

impl SqlStore {
    /// The catalogue at the current generation (loaded once per generation).
    async fn catalogue(&self) -> Result<Arc<Catalogue>, StoreError> {
        self.deadline(async {
            let mut conn = self.pool.acquire().await.map_err(unavailable)?;
            for _ in 0..3 {
                let g = generation(&mut conn).await.map_err(unavailable)?;
                if let Ok(cache) = self.catalogue.0.read() {
                    if let Some((_, c)) = cache.as_ref().filter(|(cg, _)| *cg == g) {
                        return Ok(c.clone());
                    }
                }
                let rows = load_rows(&mut conn).await.map_err(unavailable)?;
                // A write committed meanwhile: the rows may mix two generations.
                if generation(&mut conn).await.map_err(unavailable)? != g {
                    continue;
                }
                let c = Arc::new(Catalogue::from_snapshot(rows.snapshot()?));
                if let Ok(mut cache) = self.catalogue.0.write() {
                    *cache = Some((g, c.clone()));
                }
                return Ok(c);
            }
            Err(StoreError::Conflict)
        })
        .await
    }

    /// Applies one write in a transaction (see the module docs).
    async fn apply(&self, op: Op) -> Result<bool, StoreError> {
        self.deadline(async {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            let g: i64 = sqlx::query(
                "UPDATE authflow_catalogue SET generation = generation + 1 WHERE id = 1 \
                 RETURNING generation",
            )
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get("generation"))
            .map_err(unavailable)?;
            let before = load_rows(&mut tx).await.map_err(unavailable)?;
            let mut catalogue = Catalogue::from_snapshot(before.snapshot()?);
            // An error or no change drops `tx`: rolled back, generation included.
            if !catalogue.apply(op)? {
                return Ok(false);
            }
            let after = catalogue.snapshot();
            self.write_rows(&mut tx, &before, &after, &catalogue, g)
                .await?;
            let committed = tx.commit().await.map_err(unavailable);
            // Counted even when the commit's outcome is unknown: a needless recheck.
            self.catalogue
                .1
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            committed?;
            if let Ok(mut cache) = self.catalogue.0.write() {
                *cache = Some((g, Arc::new(catalogue)));
            }
            Ok(true)
        })
        .await
    }

    async fn write_rows(
        &self,
        conn: &mut AnyConnection,
        before: &Rows,
        after: &CatalogueSnapshot,
        catalogue: &Catalogue,
        g: i64,
    ) -> Result<(), StoreError> {
        let bodies = |items: Result<Vec<(String, String)>, StoreError>| items;
        let flows = bodies(
            after
                .flows
                .iter()
                .map(|f| Ok((f.pk.to_string(), json(f)?)))
                .collect(),
        )?;
        let stages = bodies(
            after
                .stages
                .iter()
                .map(|s| Ok((s.pk.to_string(), json(s)?)))
                .collect(),
        )?;
        let bindings = bodies(
            after
                .bindings
                .iter()
                .map(|b| Ok((b.pk.to_string(), json(b)?)))
                .collect(),
        )?;
        let policies = bodies(
            after
                .policies
                .iter()
                .map(|p| Ok((p.pk.to_string(), json(p)?)))
                .collect(),
        )?;
        let policy_bindings = bodies(
            after
                .policy_bindings
                .iter()
                .map(|b| Ok((b.pk.to_string(), json(b)?)))
                .collect(),
        )?;
        // Deletes first, so a name freed by one object can be taken by another.
        let plan = [
            (
                "authflow_policy_bindings",
                diff(&before.policy_bindings, &policy_bindings),
            ),
            ("authflow_flow_bindings", diff(&before.bindings, &bindings)),
            ("authflow_flows", diff(&before.flows, &flows)),
            ("authflow_stages", diff(&before.stages, &stages)),
            ("authflow_policies", diff(&before.policies, &policies)),
        ];
        for (table, (_, removed)) in &plan {
            for pk in removed {
                sqlx::query(&format!("DELETE FROM {table} WHERE pk = $1"))
                    .bind(pk)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
            }
        }
        let by_pk = |pk: &str| after.flows.iter().find(|f| f.pk.to_string() == pk);
        let stage_of = |pk: &str| after.stages.iter().find(|s| s.pk.to_string() == pk);
        let policy_of = |pk: &str| after.policies.iter().find(|p| p.pk.to_string() == pk);
        let binding_of = |pk: &str| after.bindings.iter().find(|b| b.pk.to_string() == pk);
        for (table, (changed, _)) in &plan {
            for (pk, body) in changed {
                let q = match *table {
                    "authflow_flows" => {
                        let Some(f) = by_pk(pk) else { continue };
                        let designation = serde_json::to_value(f.designation)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        sqlx::query(
                            "INSERT INTO authflow_flows (pk, slug, designation, revision, body) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pk) DO UPDATE SET \
                             slug = excluded.slug, designation = excluded.designation, \
                             revision = excluded.revision, body = excluded.body",
                        )
                        .bind(pk)
                        .bind(f.slug.clone())
                        .bind(designation)
                        .bind(g)
                        .bind(body)
                    }
                    "authflow_stages" | "authflow_policies" => {
                        let name = match *table {
                            "authflow_stages" => stage_of(pk).map(|s| s.name.clone()),
                            _ => policy_of(pk).map(|p| p.name.clone()),
                        };
                        let Some(name) = name else { continue };
                        sqlx::query(if *table == "authflow_stages" {
                            "INSERT INTO authflow_stages (pk, name, body) VALUES ($1, $2, $3) \
                             ON CONFLICT (pk) DO UPDATE SET name = excluded.name, body = excluded.body"
                        } else {
                            "INSERT INTO authflow_policies (pk, name, body) VALUES ($1, $2, $3) \
                             ON CONFLICT (pk) DO UPDATE SET name = excluded.name, body = excluded.body"
                        })
                        .bind(pk)
                        .bind(name)
                        .bind(body)
                    }
                    "authflow_flow_bindings" => {
                        let Some(b) = binding_of(pk) else { continue };
                        sqlx::query(
                            "INSERT INTO authflow_flow_bindings (pk, flow_pk, stage_pk, body) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (pk) DO UPDATE SET \
                             flow_pk = excluded.flow_pk, stage_pk = excluded.stage_pk, \
                             body = excluded.body",
                        )
                        .bind(pk)
                        .bind(b.target.to_string())
                        .bind(b.stage.to_string())
                        .bind(body)
                    }
                    _ => sqlx::query(
                        "INSERT INTO authflow_policy_bindings (pk, body) VALUES ($1, $2) \
                         ON CONFLICT (pk) DO UPDATE SET body = excluded.body",
                    )
                    .bind(pk)
                    .bind(body),
                };
                q.execute(&mut *conn).await.map_err(unavailable)?;
            }
        }
        // Every flow the catalogue bumped gets the new generation as its revision.
        for f in &after.flows {
            if catalogue.revision(&f.slug).is_some_and(|r| r > 0) {
                sqlx::query("UPDATE authflow_flows SET revision = $1 WHERE pk = $2")
                    .bind(g)
                    .bind(f.pk.to_string())
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl FlowSource for SqlStore {
    async fn flow(&self, slug: &str) -> Result<Option<FlowDefinition>, StoreError> {
        Ok(self.catalogue().await?.definition(slug))
    }

    async fn revision(&self, slug: &str) -> Result<Option<u64>, StoreError> {
        let row = self
            .bounded(
                sqlx::query("SELECT revision FROM authflow_flows WHERE slug = $1")
                    .bind(slug)
                    .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| r.try_get::<i64, _>("revision").map(uint))
            .transpose()
            .map_err(unavailable)
    }

    async fn flows(&self) -> Result<Vec<Flow>, StoreError> {
        Ok(self.catalogue().await?.flows())
    }

    fn local_writes(&self) -> u64 {
        self.catalogue.1.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl FlowAdmin for SqlStore {
    async fn put_flow(&self, flow: Flow) -> Result<(), StoreError> {
        self.apply(Op::PutFlow(flow)).await.map(|_| ())
    }

    async fn delete_flow(&self, slug: &str) -> Result<bool, StoreError> {
        self.apply(Op::DeleteFlow(slug.to_owned())).await
    }

    async fn put_stage(&self, stage: Stage) -> Result<(), StoreError> {
        self.apply(Op::PutStage(stage)).await.map(|_| ())
    }

    async fn delete_stage(&self, pk: StageId) -> Result<bool, StoreError> {
        self.apply(Op::DeleteStage(pk)).await
    }

    async fn put_binding(&self, binding: FlowStageBinding) -> Result<(), StoreError> {
        self.apply(Op::PutBinding(binding)).await.map(|_| ())
    }

    async fn delete_binding(&self, pk: BindingId) -> Result<bool, StoreError> {
        self.apply(Op::DeleteBinding(pk)).await
    }

    async fn put_policy(&self, policy: Policy) -> Result<(), StoreError> {
        self.apply(Op::PutPolicy(policy)).await.map(|_| ())
    }

    async fn delete_policy(&self, pk: PolicyId) -> Result<bool, StoreError> {
        self.apply(Op::DeletePolicy(pk)).await
    }

    async fn put_policy_binding(&self, binding: PolicyBinding) -> Result<(), StoreError> {
        self.apply(Op::PutPolicyBinding(binding)).await.map(|_| ())
    }

    async fn delete_policy_binding(&self, pk: PolicyBindingId) -> Result<bool, StoreError> {
        self.apply(Op::DeletePolicyBinding(pk)).await
    }
}
