//! User write (silent): creates or updates a user from `prompt_data`: the stage checks
//! the identifier rules and queues the write as an [`Effect`], which the engine applies
//! once after the session was saved ([`crate::effects`]).
//!
//! Runs directly after the prompt POST that gathered the data; reached any other way
//! (a GET) it asks "Save your account details?" first ([`StageKind::confirmation`]).

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{Effect, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::events::{Event, EventAction};
use crate::model::{GroupId, UserCreationMode, UserField, UserId, UserWriteStage};
use crate::plan::{PendingUser, keys};
use crate::secret::Password;
use crate::store::{NewUser, User, operation, validate_username};

/// Keys of `prompt_data` that are never written to the user: the response's
/// `component`, the passwords (written through the directory's `set_password`, like
/// authentik's `set_password` setter), and fields that grant privileges or identify the
/// record. authentik writes any prompt key naming a user field (`hasattr`/`setattr`) and
/// discards only `groups`; authflow also refuses the privileged ones, so a prompt field
/// (even a hidden one) can never make a user active, a superuser or another type, change
/// their id or group memberships, or set a password hash.
const DENIED: &[&str] = &[
    "component",
    "password",
    "password_repeat",
    "groups",
    "ak_groups",
    "pk",
    "id",
    "uuid",
    "is_active",
    "is_superuser",
    "is_staff",
    "type",
    "user_type",
    "password_hash",
    "password_change_date",
    "last_login",
    "date_joined",
];

/// Prompt keys written to the user field of the same name (every other non-attribute
/// key is dropped, as authentik drops keys that are not user fields).
const USER_FIELDS: &[&str] = &["username", "name", "email", "path"];

fn set_nested(attributes: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            attributes.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = attributes
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(m) = entry {
                set_nested(m, rest, value);
            }
        }
    }
}

/// authentik's `UserWriteStageView.write_attribute`: the key with every `_` read as `.`
/// (so `attributes_a_b` and `attributes.a_b` both write `a.b`), the leading
/// `attributes` dropped, the rest a nested path.
fn write_attribute(user: &mut User, key: &str, value: Value) {
    let dotted = key.replace('_', ".");
    let mut parts: Vec<&str> = dotted.split('.').collect();
    if parts.first() == Some(&"attributes") {
        parts.remove(0);
    }
    parts.retain(|p| !p.is_empty());
    set_nested(&mut user.attributes, &parts, value);
}

/// Applies prompt data to a user's fields and attributes (authentik's
/// `UserWriteStageView.update_user`).
fn apply(user: &mut User, data: &Map<String, Value>) {
    for (key, value) in data {
        let key = key.as_str();
        if DENIED.contains(&key) {
            continue;
        }
        if key == "attributes" {
            if let Value::Object(m) = value {
                for (k, v) in m {
                    user.attributes.insert(k.clone(), v.clone());
                }
            }
        } else if key.starts_with("attributes.") || key.starts_with("attributes_") {
            write_attribute(user, key, value.clone());
        } else if USER_FIELDS.contains(&key) {
            let Some(text) = value.as_str() else {
                continue;
            };
            match key {
                // A blank username is never written (the stage refuses to create one).
                "username" if !text.is_empty() => user.username = text.to_owned(),
                "name" => user.name = text.to_owned(),
                "email" => user.email = text.to_owned(),
                "path" if !text.is_empty() => user.path = text.to_owned(),
                _ => {}
            }
        }
        // Other keys are not user fields: dropped, as in authentik.
    }
}

fn context_groups(ctx: &StageContext<'_>) -> Vec<GroupId> {
    ctx.context
        .get(keys::GROUPS)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The directory's identifier rules, checked before the write is queued (the
/// directory checks them again atomically with the write, after the commit): a valid
/// username, and a username and email that no *other* user has as username or email
/// (compared as [`canonical_identifier`](crate::store::canonical_identifier)). The
/// denial message, if any.
async fn identifiers_taken(
    ctx: &StageContext<'_>,
    user: &User,
) -> Result<Option<String>, StageError> {
    if let Err(m) = validate_username(&user.username) {
        return Ok(Some(m.to_owned()));
    }
    let mut messages = Vec::new();
    let values = [
        (user.username.as_str(), "Username is already taken."),
        (user.email.as_str(), "Email address is already in use."),
    ];
    for (value, message) in values {
        if value.trim().is_empty() {
            continue;
        }
        for field in [UserField::Username, UserField::Email] {
            let other = ctx.env.users.find_user(field, value, true).await?;
            if other.is_some_and(|o| o.pk != user.pk) {
                messages.push(message);
                break;
            }
        }
    }
    Ok((!messages.is_empty()).then(|| messages.join(" ")))
}

#[async_trait]
impl StageKind for UserWriteStage {
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_user_write.userwritestage",
            verbose_name: "User Write Stage",
            form_component: "ak-stage-user-write-form",
        }
    }

    fn confirmation(&self, _ctx: &StageContext<'_>) -> Option<String> {
        Some("Save your account details?".into())
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let Some(data) = ctx.context.prompt_data().cloned() else {
            return Ok(StageOutcome::Deny("No Pending data.".into()));
        };
        let pending = match ctx.pending_user_record().await? {
            Some(u) => Some(u),
            None if ctx.pending_user().is_none() => ctx.request_user.cloned(),
            None => None,
        };
        let create = match self.user_creation_mode {
            UserCreationMode::AlwaysCreate => true,
            UserCreationMode::CreateWhenRequired => pending.is_none(),
            UserCreationMode::NeverCreate => {
                if pending.is_none() {
                    return Ok(StageOutcome::Deny(
                        "No user found and can't create new user.".into(),
                    ));
                }
                false
            }
        };
        let password = data
            .get("password")
            .and_then(Value::as_str)
            .map(Password::new);
        let user = if create {
            let username = data
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_owned();
            if username.is_empty() {
                return Ok(StageOutcome::Deny("Username cannot be empty.".into()));
            }
            let mut groups = context_groups(ctx);
            groups.extend(self.create_users_group);
            let template = User {
                // Drawn now so that later stages of this request (user login) can name
                // the user before the engine creates it after the commit.
                pk: UserId::from(ctx.env.random.uuid()),
                username: username.clone(),
                name: String::new(),
                email: String::new(),
                is_active: !self.create_users_as_inactive,
                // authentik's `ensure_user`: context `user_path`, else the template;
                // blank means the default path.
                path: match ctx
                    .context
                    .get_str("user_path")
                    .unwrap_or(&self.user_path_template)
                {
                    "" => "users".into(),
                    p => p.to_owned(),
                },
                user_type: ctx
                    .context
                    .get_str("user_type")
                    .unwrap_or(&self.user_type)
                    .to_owned(),
                attributes: Map::new(),
                groups,
            };
            let mut filled = template;
            apply(&mut filled, &data);
            if let Some(message) = identifiers_taken(ctx, &filled).await? {
                return Ok(StageOutcome::Deny(message));
            }
            let new = NewUser {
                pk: Some(filled.pk.clone()),
                username: filled.username.clone(),
                name: filled.name.clone(),
                email: filled.email.clone(),
                is_active: filled.is_active,
                path: filled.path.clone(),
                user_type: filled.user_type.clone(),
                attributes: filled.attributes.clone(),
                groups: filled.groups.clone(),
                password,
            };
            // Fails (denies clearly) on a directory without management.
            ctx.env.users.require_admin(operation::CREATE_USER)?;
            // A single-use invitation is consumed with the account, atomically.
            if let Some(message) = super::invitation::consume_on_create(ctx).await? {
                return Ok(StageOutcome::Deny(message.into()));
            }
            ctx.effects.push(Effect::CreateUser(new));
            filled
        } else {
            let Some(mut user) = pending else {
                return Ok(StageOutcome::Deny(
                    "No user found and can't create new user.".into(),
                ));
            };
            apply(&mut user, &data);
            // authentik adds `create_users_group` on every write, not only on create.
            for g in context_groups(ctx)
                .into_iter()
                .chain(self.create_users_group)
            {
                if !user.groups.contains(&g) {
                    user.groups.push(g);
                }
            }
            ctx.env.users.require_admin(operation::UPDATE_USER)?;
            if let Some(message) = identifiers_taken(ctx, &user).await? {
                return Ok(StageOutcome::Deny(message));
            }
            ctx.effects.push(Effect::UpdateUser(user.clone()));
            if let Some(pw) = password {
                ctx.effects.push(Effect::SetPassword {
                    user: user.pk.clone(),
                    password: pw,
                });
            }
            user
        };
        ctx.context.set_pending_user(&PendingUser::of(&user));
        let mut event = Event::new(EventAction::UserWrite).with("created", create);
        event.user = Some(user.username.clone());
        event.flow = Some(ctx.flow.slug.clone());
        event.client_ip = ctx.request.client_ip.clone();
        ctx.effects.emit(event);
        Ok(StageOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes() {
        let mut user = User {
            pk: UserId::from(1_i64),
            username: "a".into(),
            name: String::new(),
            email: String::new(),
            is_active: true,
            path: String::new(),
            user_type: String::new(),
            attributes: Map::new(),
            groups: vec![],
        };
        let data = serde_json::json!({"attributes.settings.locale": "de", "attributes_x": 1, "attributes_a_b": 2, "password": "s", "name": "N", "is_active": false});
        apply(&mut user, data.as_object().unwrap());
        assert_eq!(user.attributes["settings"]["locale"], "de");
        assert_eq!(user.attributes["x"], 1);
        assert_eq!(user.attributes["a"]["b"], 2);
        assert!(user.is_active);
        assert_eq!(user.name, "N");
        assert!(!user.attributes.contains_key("password"));
    }
}
