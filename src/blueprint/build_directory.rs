//! Building users and groups from blueprint entries.

use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::apply::{FileRun, Importer, Instance, Outcome};
use super::attrs::{EntryResult, bool_attr, string_attr};
use super::build::{entry_action, is_memory_users};
use super::models::{self};
use super::report::EntryAction;
use super::work::Op;
use crate::model::{GroupId, UserId};
use crate::secret::Password;
use crate::store::{Group, User};

impl Importer<'_> {
    pub(super) async fn build_group(
        &self,
        f: &mut FileRun,
        index: usize,
        instance: Option<Instance>,
        new_pk: Uuid,
        mut merged: Map<String, Json>,
    ) -> EntryResult<Outcome> {
        let dir = self.users.dir();
        let old = match instance {
            Some(Instance::Group(pk)) => f
                .work
                .users
                .group(dir, pk)
                .await
                .map_err(|e| e.to_string())?,
            _ => None,
        };
        let pk = old.as_ref().map_or(GroupId::from_uuid(new_pk), |o| o.pk);
        let name = models::take_name(&mut merged)?;
        let parent = models::ref_uuid("parent", merged.get("parent").unwrap_or(&Json::Null))?
            .map(GroupId::from_uuid);
        if let Some(p) = parent {
            if p == pk {
                return Err("`parent`: a group cannot be its own parent".into());
            }
            if f.work
                .users
                .group(dir, p)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("`parent`: no group has the pk `{p}`"));
            }
        }
        let attributes = match merged.get("attributes") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(m)) => m.clone(),
            Some(other) => return Err(format!("`attributes`: expected a mapping, got `{other}`")),
        };
        let group = Group {
            pk,
            name,
            parent,
            is_superuser: bool_attr(&merged, "is_superuser")?.unwrap_or(false),
            attributes,
        };
        let changed = old.as_ref() != Some(&group);
        if changed {
            self.apply_op(f, Op::PutGroup(group)).await?;
        }
        // `users`: members to add (authflow cannot list a group's members, so members
        // not listed are not removed).
        let members = models::ref_list("users", merged.get("users").unwrap_or(&Json::Null))?;
        let mut added = false;
        for id in members {
            let uid = UserId::from(id);
            let mut user = f
                .work
                .users
                .user(dir, uid)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("`users`: no user has the pk `{id}`"))?;
            if !user.groups.contains(&pk) {
                user.groups.push(pk);
                self.apply_op(f, Op::UpdateUser(user)).await?;
                added = true;
            }
        }
        if merged.contains_key("users") {
            f.report.warnings.push(format!(
                "entries[{index}]: `users` only adds members in authflow; members not listed are kept"
            ));
        }
        let action = entry_action(old.is_some(), changed || added);
        Ok(Outcome::Done(action, Some(Instance::Group(pk))))
    }

    pub(super) async fn build_user(
        &self,
        f: &mut FileRun,
        instance: Option<Instance>,
        new_pk: Uuid,
        merged: Map<String, Json>,
    ) -> EntryResult<Outcome> {
        let dir = self.users.dir();
        let old = match instance {
            Some(Instance::User(pk)) => f
                .work
                .users
                .user(dir, pk)
                .await
                .map_err(|e| e.to_string())?,
            _ => None,
        };
        let pk = old
            .as_ref()
            .map_or_else(|| UserId::from(new_pk), |o| o.pk.clone());
        let username = match string_attr(&merged, "username")? {
            Some(u) if !u.trim().is_empty() => u,
            _ => return Err("`username`: This field is required.".into()),
        };
        let mut groups = Vec::new();
        for id in models::ref_list("groups", merged.get("groups").unwrap_or(&Json::Null))? {
            let g = GroupId::from_uuid(id);
            if f.work
                .users
                .group(dir, g)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("`groups`: no group has the pk `{id}`"));
            }
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let attributes = match merged.get("attributes") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(m)) => m.clone(),
            Some(other) => return Err(format!("`attributes`: expected a mapping, got `{other}`")),
        };
        let user = User {
            pk: pk.clone(),
            username,
            name: string_attr(&merged, "name")?.unwrap_or_default(),
            email: string_attr(&merged, "email")?.unwrap_or_default(),
            is_active: bool_attr(&merged, "is_active")?.unwrap_or(true),
            path: string_attr(&merged, "path")?.unwrap_or_default(),
            user_type: string_attr(&merged, "type")?.unwrap_or_else(|| "internal".into()),
            attributes,
            groups,
        };
        let password = string_attr(&merged, "password")?.filter(|p| !p.is_empty());
        let hash = string_attr(&merged, "password_hash")?.filter(|h| !h.is_empty());
        if password.is_some() && hash.is_some() {
            return Err("give either `password` or `password_hash`, not both".into());
        }
        if let Some(h) = &hash {
            if !(h.starts_with("pbkdf2_sha256$") || h.starts_with("$argon2")) {
                return Err(
                    "`password_hash`: authflow verifies Django `pbkdf2_sha256$…` and argon2 (`$argon2…`) hashes only"
                        .into(),
                );
            }
            if !is_memory_users(&self.users) {
                return Err(
                    "`password_hash`: this user directory cannot take password hashes (only the in-memory one can); give `password` instead"
                        .into(),
                );
            }
        }
        let Some(old) = old else {
            if let Some(other) = f
                .work
                .users
                .user(dir, pk.clone())
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!(
                    "the user `{}` already has the pk `{pk}` this entry would create its user with; give its current username in `identifiers`",
                    other.username
                ));
            }
            self.apply_op(
                f,
                Op::CreateUser {
                    user,
                    password: password.map(Password::new),
                    hash,
                },
            )
            .await?;
            return Ok(Outcome::Done(
                EntryAction::Created,
                Some(Instance::User(pk.clone())),
            ));
        };
        let mut changed = old != user;
        if changed {
            self.apply_op(f, Op::UpdateUser(user.clone())).await?;
        }
        if let Some(p) = password {
            let p = Password::new(p);
            let current = dir
                .verify_password(Some(pk.clone()), &p)
                .await
                .map_err(|e| e.to_string())?;
            if !current {
                self.apply_op(f, Op::SetPassword(pk.clone(), p)).await?;
                changed = true;
            }
        }
        if let Some(h) = hash {
            self.apply_op(f, Op::SetHash(user, h)).await?;
            changed = true;
        }
        let action = if changed {
            EntryAction::Updated
        } else {
            EntryAction::Unchanged
        };
        Ok(Outcome::Done(action, Some(Instance::User(pk))))
    }
}
