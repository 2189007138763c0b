//! A conformance suite for user directories ([`UserDirectory`] + [`UserAdmin`]),
//! written once so the memory directory, SQLite and PostgreSQL run the same assertions:
//! lookups by username / email / UPN, password storage and verification (argon2id,
//! imported Django hashes rehashed, no timing oracle for unknown users), groups with
//! parents and memberships, attributes, and the identifier rules (usernames and emails
//! unique across both fields after NFKC and case folding, enforced atomically with the
//! write: concurrent creations).
//!
//! Include it, with its identifier-rule checks, at the root of a test crate:
//! `#[path = "common/directory_conformance.rs"] mod directory_conformance;` and
//! `#[path = "common/directory_identifiers.rs"] mod directory_identifiers;`, then call
//! [`run`] with a function making an empty [`Dir`] per check (from a multi-threaded
//! runtime: one check races real tasks).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use authflow::StoreError;
use authflow::hashing::{Argon2idHasher, PasswordHashing, django_pbkdf2_hash};
use authflow::model::{GroupId, UserField, UserId};
use authflow::secret::Password;
use authflow::store::{Group, NewUser, User, UserAdmin, UserDirectory};

/// A boxed future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Imports a user with an existing password hash (each backend's own `import_user`).
pub type ImportFn =
    Box<dyn Fn(User, Option<String>) -> BoxFuture<Result<(), StoreError>> + Send + Sync>;

/// Counts the users (each backend's own count).
pub type CountFn = Box<dyn Fn() -> BoxFuture<u64> + Send + Sync>;

/// Makes an empty directory hashing with the given hasher.
pub type Fresh<'a> = &'a (dyn Fn(Arc<dyn PasswordHashing>) -> BoxFuture<Dir> + Sync);

/// A directory under test: the two traits, and what each backend offers outside them.
pub struct Dir {
    /// The backend's name, for messages.
    pub label: &'static str,
    /// The directory.
    pub users: Arc<dyn UserDirectory>,
    /// Its management.
    pub admin: Arc<dyn UserAdmin>,
    import: ImportFn,
    count: CountFn,
    /// Whatever must live as long as the directory (a test database).
    _keep: Box<dyn Any + Send + Sync>,
}

impl Dir {
    /// A directory under test.
    pub fn new(
        label: &'static str,
        users: Arc<dyn UserDirectory>,
        admin: Arc<dyn UserAdmin>,
        import: ImportFn,
        count: CountFn,
        keep: Box<dyn Any + Send + Sync>,
    ) -> Self {
        Self {
            label,
            users,
            admin,
            import,
            count,
            _keep: keep,
        }
    }

    /// Imports a user with an existing hash.
    pub async fn import(&self, user: User, hash: Option<String>) -> Result<(), StoreError> {
        (self.import)(user, hash).await
    }

    /// Number of users.
    pub async fn count(&self) -> u64 {
        (self.count)().await
    }
}

/// Every check, each on a fresh directory.
pub async fn run(fresh: Fresh<'_>, label: &str) {
    macro_rules! checks {
        ($($check:ident),* $(,)?) => {$(
            eprintln!("{label}: {}", stringify!($check));
            $check(fresh).await;
        )*};
    }
    use crate::directory_identifiers::*;
    checks!(
        users_are_found_case_insensitively_by_username_email_and_upn,
        passwords_are_stored_as_argon2id_and_verified,
        django_pbkdf2_hashes_are_imported_verified_and_rehashed_to_argon2id,
        unknown_users_and_users_without_password_never_verify,
        groups_of_includes_every_ancestor_once,
        group_cycles_do_not_hang_groups_of,
        attributes_and_memberships_round_trip,
        usernames_are_unique_case_insensitively,
        emails_are_unique_case_insensitively_and_across_usernames,
        usernames_are_compared_after_nfkc_and_case_folding,
        concurrent_creations_cannot_share_an_email,
    );
}

/// Argon2id, recording every hash it makes and every hash it verifies against, so
/// tests can see what the directory stores.
#[derive(Default)]
pub struct Recording {
    made: Mutex<Vec<String>>,
    verified: Mutex<Vec<String>>,
}

impl PasswordHashing for Recording {
    fn hash(&self, password: &str) -> Result<String, String> {
        let h = Argon2idHasher.hash(password)?;
        self.made.lock().unwrap().push(h.clone());
        Ok(h)
    }

    fn verify(&self, hash: &str, password: &str) -> bool {
        self.verified.lock().unwrap().push(hash.to_owned());
        Argon2idHasher.verify(hash, password)
    }

    fn needs_rehash(&self, hash: &str) -> bool {
        Argon2idHasher.needs_rehash(hash)
    }
}

impl Recording {
    fn last_verified(&self) -> String {
        self.verified.lock().unwrap().last().cloned().unwrap()
    }
}

/// A fresh directory hashing with a [`Recording`], and the recording.
pub(crate) async fn recording(fresh: Fresh<'_>) -> (Dir, Arc<Recording>) {
    let hasher = Arc::new(Recording::default());
    (fresh(hasher.clone()).await, hasher)
}

pub(crate) fn imported(username: &str) -> User {
    User {
        pk: UserId::new_v4(),
        username: username.into(),
        name: String::new(),
        email: format!("{username}@example.com"),
        is_active: true,
        path: "users".into(),
        user_type: "internal".into(),
        attributes: Default::default(),
        groups: Vec::new(),
    }
}

pub(crate) fn is_validation_on(err: &StoreError, field: &str) -> bool {
    matches!(err, StoreError::Validation(e) if !e.get(field).is_empty())
}

pub(crate) fn field_error(e: StoreError, field: &str) -> Vec<String> {
    match e {
        StoreError::Validation(v) => v.get(field).to_vec(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

pub async fn users_are_found_case_insensitively_by_username_email_and_upn(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    let users: &dyn UserDirectory = dir.users.as_ref();
    let mut new = NewUser::new("Alice").email("Alice.Liddell@Example.COM");
    new.attributes
        .insert("upn".into(), "ALICE@corp.example".into());
    let alice = dir.admin.create_user(new).await.unwrap();
    dir.admin.create_user(NewUser::new("bob")).await.unwrap();

    for (field, exact, other_case) in [
        (UserField::Username, "Alice", "aLICE"),
        (
            UserField::Email,
            "Alice.Liddell@Example.COM",
            "alice.liddell@example.com",
        ),
        (UserField::Upn, "ALICE@corp.example", "alice@CORP.example"),
    ] {
        let found = |v: &'static str, ci: bool| async move {
            users.find_user(field, v, ci).await.unwrap().map(|u| u.pk)
        };
        assert_eq!(
            found(exact, false).await,
            Some(alice.pk.clone()),
            "{field:?}"
        );
        assert_eq!(
            found(other_case, true).await,
            Some(alice.pk.clone()),
            "{field:?}"
        );
        assert_eq!(found(other_case, false).await, None, "{field:?}");
        assert_eq!(found("nobody", true).await, None, "{field:?}");
    }
    // Other fields do not match: the username is not an email, and an empty email
    // (bob has none) matches nothing.
    assert!(
        users
            .find_user(UserField::Email, "alice", true)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        users
            .find_user(UserField::Email, "", true)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        users
            .find_user(UserField::Upn, "bob", true)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn passwords_are_stored_as_argon2id_and_verified(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    let user = dir
        .admin
        .create_user(NewUser::new("carol").password("correct horse"))
        .await
        .unwrap();
    assert!(
        dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("correct horse"))
            .await
            .unwrap()
    );
    assert!(
        !dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("correct horsE"))
            .await
            .unwrap()
    );
    assert!(
        !dir.users
            .verify_password(Some(user.pk.clone()), &Password::new(""))
            .await
            .unwrap()
    );

    // What is stored is an argon2id PHC string, never the password.
    let (dir, hasher) = recording(fresh).await;
    let user = dir
        .admin
        .create_user(NewUser::new("dave").password("tr0ub4dor"))
        .await
        .unwrap();
    assert!(
        dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("tr0ub4dor"))
            .await
            .unwrap()
    );
    let stored = hasher.last_verified();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains("tr0ub4dor"));

    dir.admin
        .set_password(user.pk.clone(), &Password::new("new secret"))
        .await
        .unwrap();
    assert!(
        !dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("tr0ub4dor"))
            .await
            .unwrap()
    );
    assert!(
        dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("new secret"))
            .await
            .unwrap()
    );
    assert!(hasher.last_verified().starts_with("$argon2id$"));
    assert_ne!(hasher.last_verified(), stored);
}

pub async fn django_pbkdf2_hashes_are_imported_verified_and_rehashed_to_argon2id(fresh: Fresh<'_>) {
    let (dir, hasher) = recording(fresh).await;
    let user = imported("erin");
    let django = django_pbkdf2_hash("hunter2", "seasalt", 1000);
    assert!(django.starts_with("pbkdf2_sha256$1000$seasalt$"));
    dir.import(user.clone(), Some(django.clone()))
        .await
        .unwrap();
    assert_eq!(
        dir.users
            .user(user.pk.clone())
            .await
            .unwrap()
            .map(|u| u.username),
        Some("erin".to_owned())
    );

    // A wrong password neither verifies nor replaces the imported hash.
    assert!(
        !dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("hunter3"))
            .await
            .unwrap()
    );
    assert_eq!(hasher.last_verified(), django);

    // The right one verifies against the Django hash, which is then replaced.
    assert!(
        dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("hunter2"))
            .await
            .unwrap()
    );
    assert_eq!(hasher.last_verified(), django);
    assert!(
        dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("hunter2"))
            .await
            .unwrap()
    );
    let rehashed = hasher.last_verified();
    assert!(rehashed.starts_with("$argon2id$"), "{rehashed}");
    assert!(
        !dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("hunter3"))
            .await
            .unwrap()
    );
    // Once argon2id, a good login does not rehash again.
    let made = hasher.made.lock().unwrap().len();
    assert!(
        dir.users
            .verify_password(Some(user.pk.clone()), &Password::new("hunter2"))
            .await
            .unwrap()
    );
    assert_eq!(hasher.made.lock().unwrap().len(), made);
    assert_eq!(hasher.last_verified(), rehashed);
}

pub async fn unknown_users_and_users_without_password_never_verify(fresh: Fresh<'_>) {
    let (dir, hasher) = recording(fresh).await;
    let nopw = dir.admin.create_user(NewUser::new("frank")).await.unwrap();
    for user in [None, Some(UserId::new_v4()), Some(nopw.pk.clone())] {
        let before = hasher.verified.lock().unwrap().len();
        for pw in ["", "anything"] {
            assert!(
                !dir.users
                    .verify_password(user.clone(), &Password::new(pw))
                    .await
                    .unwrap(),
                "{user:?}"
            );
        }
        // The same hashing work as for a real user: no timing oracle.
        assert_eq!(hasher.verified.lock().unwrap().len(), before + 2);
    }
}

pub async fn groups_of_includes_every_ancestor_once(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    let root = Group::new("staff");
    let mid = Group::new("engineering").child_of(root.pk);
    let leaf = Group::new("backend").child_of(mid.pk);
    let other = Group::new("sales").child_of(root.pk);
    let unrelated = Group::new("contractors");
    for g in [&root, &mid, &leaf, &other, &unrelated] {
        dir.admin.put_group(g.clone()).await.unwrap();
    }
    let user = dir
        .admin
        .create_user(NewUser::new("grace").group(leaf.pk).group(other.pk))
        .await
        .unwrap();

    let mut got: Vec<GroupId> = dir
        .users
        .groups_of(user.pk)
        .await
        .unwrap()
        .iter()
        .map(|g| g.pk)
        .collect();
    got.sort();
    let mut want = vec![root.pk, mid.pk, leaf.pk, other.pk];
    want.sort();
    assert_eq!(got, want);

    assert!(
        dir.users
            .groups_of(UserId::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        dir.users
            .find_group("engineering")
            .await
            .unwrap()
            .map(|g| g.pk),
        Some(mid.pk)
    );
    assert_eq!(
        dir.users
            .group(leaf.pk)
            .await
            .unwrap()
            .and_then(|g| g.parent),
        Some(mid.pk)
    );
}

pub async fn group_cycles_do_not_hang_groups_of(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    let a = Group::new("a");
    let b = Group::new("b").child_of(a.pk);
    dir.admin.put_group(a.clone()).await.unwrap();
    dir.admin.put_group(b.clone()).await.unwrap();
    dir.admin.put_group(a.clone().child_of(b.pk)).await.unwrap();
    let user = dir
        .admin
        .create_user(NewUser::new("heidi").group(b.pk))
        .await
        .unwrap();
    assert_eq!(dir.users.groups_of(user.pk).await.unwrap().len(), 2);
}

/// A user's attributes (nested JSON) and ordered group memberships, and a group's
/// parent, superuser flag and attributes, come back as written, after updates too;
/// a deleted user is gone and frees its identifiers; a group name is unique.
pub async fn attributes_and_memberships_round_trip(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    let label = dir.label;
    let mut admins = Group::new("admins");
    admins.is_superuser = true;
    admins
        .attributes
        .insert("notes".into(), serde_json::json!({"k": [1, "two", null]}));
    let staff = Group::new("staff");
    let ops = Group::new("ops").child_of(staff.pk);
    for g in [&admins, &staff, &ops] {
        dir.admin.put_group(g.clone()).await.unwrap();
    }
    let got = dir.users.group(admins.pk).await.unwrap().expect("stored");
    assert!(got.is_superuser, "{label}");
    assert_eq!(got.attributes, admins.attributes, "{label}");
    assert_eq!(got.parent, None, "{label}");
    // Another group with a taken name is refused; the same group may be rewritten.
    let err = dir.admin.put_group(Group::new("staff")).await.unwrap_err();
    assert!(is_validation_on(&err, "name"), "{label}: {err:?}");
    let mut renamed = ops.clone();
    renamed.attributes.insert("floor".into(), 3.into());
    dir.admin.put_group(renamed.clone()).await.unwrap();
    assert_eq!(
        dir.users.group(ops.pk).await.unwrap().unwrap().attributes,
        renamed.attributes,
        "{label}"
    );

    let mut new = NewUser::new("kim").email("kim@example.com");
    new.name = "Kim K.".into();
    new.attributes.insert(
        "settings".into(),
        serde_json::json!({"locale": "de", "nested": {"a": [true, 1.5]}}),
    );
    new.groups = vec![ops.pk, admins.pk];
    let kim = dir.admin.create_user(new.clone()).await.unwrap();
    let got = dir
        .users
        .user(kim.pk.clone())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.username, "kim", "{label}");
    assert_eq!(got.name, "Kim K.", "{label}");
    assert_eq!(got.email, "kim@example.com", "{label}");
    assert!(got.is_active, "{label}");
    assert_eq!(got.attributes, new.attributes, "{label}");
    assert_eq!(got.groups, [ops.pk, admins.pk], "{label}: in order");
    let mut of: Vec<GroupId> = dir
        .users
        .groups_of(kim.pk.clone())
        .await
        .unwrap()
        .iter()
        .map(|g| g.pk)
        .collect();
    of.sort();
    let mut want = vec![ops.pk, staff.pk, admins.pk];
    want.sort();
    assert_eq!(of, want, "{label}: direct groups and their parent");

    // An update replaces fields, attributes and memberships.
    let mut changed = got.clone();
    changed.is_active = false;
    changed.attributes.remove("settings");
    changed.attributes.insert(
        "goauthentik.io/user/sources".into(),
        serde_json::json!(["ldap"]),
    );
    changed.groups = vec![admins.pk];
    dir.admin.update_user(&changed).await.unwrap();
    let got = dir.users.user(kim.pk.clone()).await.unwrap().unwrap();
    assert!(!got.is_active, "{label}");
    assert_eq!(got.attributes, changed.attributes, "{label}");
    assert_eq!(got.groups, [admins.pk], "{label}");
    assert_eq!(
        dir.users.groups_of(kim.pk.clone()).await.unwrap().len(),
        1,
        "{label}"
    );

    // Updating a user that does not exist is refused.
    let mut ghost = changed.clone();
    ghost.pk = UserId::new_v4();
    ghost.username = "ghost".into();
    ghost.email = String::new();
    assert!(dir.admin.update_user(&ghost).await.is_err(), "{label}");
    assert!(dir.users.user(ghost.pk).await.unwrap().is_none(), "{label}");

    // Deleting: gone, and its username and email are free again.
    assert!(
        dir.admin.delete_user(kim.pk.clone()).await.unwrap(),
        "{label}"
    );
    assert!(
        !dir.admin.delete_user(kim.pk.clone()).await.unwrap(),
        "{label}"
    );
    assert!(
        dir.users.user(kim.pk.clone()).await.unwrap().is_none(),
        "{label}"
    );
    assert!(
        dir.users
            .find_user(UserField::Username, "kim", true)
            .await
            .unwrap()
            .is_none(),
        "{label}"
    );
    assert!(
        dir.users.groups_of(kim.pk).await.unwrap().is_empty(),
        "{label}"
    );
    dir.admin
        .create_user(NewUser::new("KIM").email("Kim@Example.com"))
        .await
        .unwrap();
    assert_eq!(dir.count().await, 1, "{label}");
}
