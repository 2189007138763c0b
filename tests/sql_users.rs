//! The SQL user directory (features `sqlite`, `postgres`) against SQLite files and,
//! when `AUTHFLOW_TEST_POSTGRES` is set, PostgreSQL: the assertions of the memory
//! directory's tests (`tests/memory_stores.rs`), run against every backend.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/sql.rs"]
mod sql;

use std::sync::{Arc, Mutex};

use authflow::StoreError;
use authflow::hashing::{Argon2idHasher, PasswordHashing, django_pbkdf2_hash};
use authflow::model::{GroupId, UserField, UserId};
use authflow::secret::Password;
use authflow::sql::{SqlConfig, SqlStore};
use authflow::store::{Group, NewUser, User, UserAdmin, UserDirectory};

// UserDirectory

/// Argon2id, recording every hash it makes and every hash it verifies against, so
/// tests can see what the directory stores.
#[derive(Default)]
struct Recording {
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

async fn recording_directory(db: &sql::Db) -> (SqlStore, Arc<Recording>) {
    let hasher = Arc::new(Recording::default());
    let config = SqlConfig {
        hasher: hasher.clone(),
        ..SqlConfig::default()
    };
    (db.open_with(config).await, hasher)
}

fn imported(username: &str) -> User {
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

fn is_validation_on(err: &StoreError, field: &str) -> bool {
    matches!(err, StoreError::Validation(e) if !e.get(field).is_empty())
}

#[tokio::test]
async fn users_are_found_case_insensitively_by_username_email_and_upn() {
    for db in sql::databases().await {
        let dir = db.open().await;
        let users: &dyn UserDirectory = &dir;
        let mut new = NewUser::new("Alice").email("Alice.Liddell@Example.COM");
        new.attributes
            .insert("upn".into(), "ALICE@corp.example".into());
        let alice = dir.create_user(new).await.unwrap();
        dir.create_user(NewUser::new("bob")).await.unwrap();

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
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_and_verified() {
    for db in sql::databases().await {
        let dir = db.open().await;
        let user = dir
            .create_user(NewUser::new("carol").password("correct horse"))
            .await
            .unwrap();
        assert!(
            dir.verify_password(Some(user.pk.clone()), &Password::new("correct horse"))
                .await
                .unwrap()
        );
        assert!(
            !dir.verify_password(Some(user.pk.clone()), &Password::new("correct horsE"))
                .await
                .unwrap()
        );
        assert!(
            !dir.verify_password(Some(user.pk.clone()), &Password::new(""))
                .await
                .unwrap()
        );

        // What is stored is an argon2id PHC string, never the password.
        let (dir, hasher) = recording_directory(&db).await;
        let user = dir
            .create_user(NewUser::new("dave").password("tr0ub4dor"))
            .await
            .unwrap();
        assert!(
            dir.verify_password(Some(user.pk.clone()), &Password::new("tr0ub4dor"))
                .await
                .unwrap()
        );
        let stored = hasher.last_verified();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("tr0ub4dor"));

        dir.set_password(user.pk.clone(), &Password::new("new secret"))
            .await
            .unwrap();
        assert!(
            !dir.verify_password(Some(user.pk.clone()), &Password::new("tr0ub4dor"))
                .await
                .unwrap()
        );
        assert!(
            dir.verify_password(Some(user.pk.clone()), &Password::new("new secret"))
                .await
                .unwrap()
        );
        assert!(hasher.last_verified().starts_with("$argon2id$"));
        assert_ne!(hasher.last_verified(), stored);
    }
}

#[tokio::test]
async fn django_pbkdf2_hashes_are_imported_verified_and_rehashed_to_argon2id() {
    for db in sql::databases().await {
        let (dir, hasher) = recording_directory(&db).await;
        let user = imported("erin");
        let django = django_pbkdf2_hash("hunter2", "seasalt", 1000);
        assert!(django.starts_with("pbkdf2_sha256$1000$seasalt$"));
        dir.import_user(user.clone(), Some(django.clone()))
            .await
            .unwrap();
        assert_eq!(
            dir.user(user.pk.clone()).await.unwrap().map(|u| u.username),
            Some("erin".to_owned())
        );

        // A wrong password neither verifies nor replaces the imported hash.
        assert!(
            !dir.verify_password(Some(user.pk.clone()), &Password::new("hunter3"))
                .await
                .unwrap()
        );
        assert_eq!(hasher.last_verified(), django);

        // The right one verifies against the Django hash, which is then replaced.
        assert!(
            dir.verify_password(Some(user.pk.clone()), &Password::new("hunter2"))
                .await
                .unwrap()
        );
        assert_eq!(hasher.last_verified(), django);
        assert!(
            dir.verify_password(Some(user.pk.clone()), &Password::new("hunter2"))
                .await
                .unwrap()
        );
        let rehashed = hasher.last_verified();
        assert!(rehashed.starts_with("$argon2id$"), "{rehashed}");
        assert!(
            !dir.verify_password(Some(user.pk.clone()), &Password::new("hunter3"))
                .await
                .unwrap()
        );
        // Once argon2id, a good login does not rehash again.
        let made = hasher.made.lock().unwrap().len();
        assert!(
            dir.verify_password(Some(user.pk.clone()), &Password::new("hunter2"))
                .await
                .unwrap()
        );
        assert_eq!(hasher.made.lock().unwrap().len(), made);
        assert_eq!(hasher.last_verified(), rehashed);
    }
}

#[tokio::test]
async fn unknown_users_and_users_without_password_never_verify() {
    for db in sql::databases().await {
        let (dir, hasher) = recording_directory(&db).await;
        let nopw = dir.create_user(NewUser::new("frank")).await.unwrap();
        for user in [None, Some(UserId::new_v4()), Some(nopw.pk.clone())] {
            let before = hasher.verified.lock().unwrap().len();
            for pw in ["", "anything"] {
                assert!(
                    !dir.verify_password(user.clone(), &Password::new(pw))
                        .await
                        .unwrap(),
                    "{user:?}"
                );
            }
            // The same hashing work as for a real user: no timing oracle.
            assert_eq!(hasher.verified.lock().unwrap().len(), before + 2);
        }
    }
}

#[tokio::test]
async fn groups_of_includes_every_ancestor_once() {
    for db in sql::databases().await {
        let dir = db.open().await;
        let root = Group::new("staff");
        let mid = Group::new("engineering").child_of(root.pk);
        let leaf = Group::new("backend").child_of(mid.pk);
        let other = Group::new("sales").child_of(root.pk);
        let unrelated = Group::new("contractors");
        for g in [&root, &mid, &leaf, &other, &unrelated] {
            dir.put_group(g.clone()).await.unwrap();
        }
        let user = dir
            .create_user(NewUser::new("grace").group(leaf.pk).group(other.pk))
            .await
            .unwrap();

        let mut got: Vec<GroupId> = dir
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

        assert!(dir.groups_of(UserId::new_v4()).await.unwrap().is_empty());
        assert_eq!(
            dir.find_group("engineering").await.unwrap().map(|g| g.pk),
            Some(mid.pk)
        );
        assert_eq!(
            dir.group(leaf.pk).await.unwrap().and_then(|g| g.parent),
            Some(mid.pk)
        );
    }
}

#[tokio::test]
async fn group_cycles_do_not_hang_groups_of() {
    for db in sql::databases().await {
        let dir = db.open().await;
        let a = Group::new("a");
        let b = Group::new("b").child_of(a.pk);
        dir.put_group(a.clone()).await.unwrap();
        dir.put_group(b.clone()).await.unwrap();
        dir.put_group(a.clone().child_of(b.pk)).await.unwrap();
        let user = dir
            .create_user(NewUser::new("heidi").group(b.pk))
            .await
            .unwrap();
        assert_eq!(dir.groups_of(user.pk).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively() {
    for db in sql::databases().await {
        let dir = db.open().await;
        let ivan = dir.create_user(NewUser::new("ivan")).await.unwrap();
        let judy = dir.create_user(NewUser::new("judy")).await.unwrap();

        for taken in ["ivan", "IVAN"] {
            let err = dir.create_user(NewUser::new(taken)).await.unwrap_err();
            assert!(is_validation_on(&err, "username"), "{taken}: {err:?}");
        }
        let err = dir.create_user(NewUser::new("  ")).await.unwrap_err();
        assert!(is_validation_on(&err, "username"), "{err:?}");

        let mut renamed = judy.clone();
        renamed.username = "Ivan".into();
        let err = dir.update_user(&renamed).await.unwrap_err();
        assert!(is_validation_on(&err, "username"), "{err:?}");
        assert_eq!(
            dir.user(judy.pk).await.unwrap().map(|u| u.username),
            Some("judy".to_owned())
        );
        // Keeping one's own username is not a clash.
        let mut same = ivan.clone();
        same.name = "Ivan I.".into();
        dir.update_user(&same).await.unwrap();

        let err = dir.import_user(imported("ivan"), None).await.unwrap_err();
        assert!(is_validation_on(&err, "username"), "{err:?}");
        assert_eq!(dir.user_count().await.unwrap(), 2);
    }
}

// ---------------------------------------------------------------------------------------
// FlowStore
// Unique identifiers (issue 8 part 5)

fn field_error(e: StoreError, field: &str) -> Vec<String> {
    match e {
        StoreError::Validation(v) => v.get(field).to_vec(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn emails_are_unique_case_insensitively_and_across_usernames() {
    for db in sql::databases().await {
        let users = db.open().await;
        users
            .create_user(NewUser::new("alice").email("Alice@Corp.Example"))
            .await
            .unwrap();
        users
            .create_user(NewUser::new("carol@corp.example"))
            .await
            .unwrap();
        // A case variant of a taken email.
        let e = users
            .create_user(NewUser::new("bob").email("alice@corp.example"))
            .await
            .unwrap_err();
        assert_eq!(
            field_error(e, "email"),
            ["Email address is already in use."]
        );
        // An email equal to someone's username (the takeover).
        let e = users
            .create_user(NewUser::new("mallory").email("CAROL@corp.example"))
            .await
            .unwrap_err();
        assert_eq!(
            field_error(e, "email"),
            ["Email address is already in use."]
        );
        // A username equal to someone's email.
        let e = users
            .create_user(NewUser::new("alice@corp.example"))
            .await
            .unwrap_err();
        assert_eq!(field_error(e, "username"), ["Username is already taken."]);
        // Renaming into a taken email is refused too; one's own email is fine.
        let mut bob = users
            .create_user(NewUser::new("bob").email("bob@corp.example"))
            .await
            .unwrap();
        bob.email = "ALICE@corp.example".into();
        let e = users.update_user(&bob).await.unwrap_err();
        assert_eq!(
            field_error(e, "email"),
            ["Email address is already in use."]
        );
        bob.email = "BOB@corp.example".into();
        users.update_user(&bob).await.unwrap();
        // Lookups are unambiguous.
        let found = users
            .find_user(UserField::Email, "alice@CORP.example", true)
            .await
            .unwrap();
        assert_eq!(found.map(|u| u.username), Some("alice".to_owned()));
    }
}

#[tokio::test]
async fn usernames_are_compared_after_nfkc_and_case_folding() {
    for db in sql::databases().await {
        let users = db.open().await;
        let admin = users.create_user(NewUser::new("akadmin")).await.unwrap();
        for variant in ["ＡＫＡＤＭＩＮ", "AKADMIN", " akadmin "] {
            let e = users.create_user(NewUser::new(variant)).await.unwrap_err();
            assert_eq!(
                field_error(e, "username"),
                ["Username is already taken."],
                "{variant}"
            );
            let found = users
                .find_user(UserField::Username, variant, true)
                .await
                .unwrap();
            assert_eq!(found.map(|u| u.pk), Some(admin.pk.clone()), "{variant}");
        }
        for bad in [
            "ak\u{200B}admin",
            "ak\u{202E}x",
            "ak\u{2066}x",
            "a\u{0000}b",
            "a\tb",
            "\u{FEFF}akadmin",
        ] {
            let e = users.create_user(NewUser::new(bad)).await.unwrap_err();
            assert_eq!(
                field_error(e, "username"),
                ["Username contains invisible or control characters."],
                "{bad:?}"
            );
        }
        let e = users
            .create_user(NewUser::new("a".repeat(151)))
            .await
            .unwrap_err();
        assert_eq!(
            field_error(e, "username"),
            ["Ensure this field has no more than 150 characters."]
        );
        users
            .create_user(NewUser::new("a".repeat(150)))
            .await
            .unwrap();
    }
}

/// Uniqueness is enforced by the database with the write: of many concurrent enrollments
/// with one email (in different cases), exactly one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_cannot_share_an_email() {
    for db in sql::databases().await {
        let users = Arc::new(db.open().await);
        let mut handles = Vec::new();
        for i in 0..16 {
            let users = users.clone();
            handles.push(tokio::spawn(async move {
                let email = if i % 2 == 0 {
                    "race@corp.example"
                } else {
                    "RACE@corp.example"
                };
                users
                    .create_user(NewUser::new(format!("racer{i}")).email(email))
                    .await
            }));
        }
        let mut ok = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => ok += 1,
                // The losers are refused by the database's unique index, nothing else.
                Err(e) => assert_eq!(
                    field_error(e, "email"),
                    ["Email address is already in use."],
                    "{}",
                    db.label
                ),
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(users.user_count().await.unwrap(), 1);
    }
}
