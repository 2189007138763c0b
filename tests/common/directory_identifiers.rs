//! The identifier rules of the user-directory conformance suite (see
//! `directory_conformance.rs`, whose [`run`](crate::directory_conformance::run) calls
//! these): usernames and emails unique across both fields after NFKC and case folding,
//! username validation, and uniqueness under concurrent creation.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use authflow::model::UserField;
use authflow::store::NewUser;

use crate::directory_conformance::{Fresh, field_error, imported, is_validation_on, recording};

pub async fn usernames_are_unique_case_insensitively(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    let ivan = dir.admin.create_user(NewUser::new("ivan")).await.unwrap();
    let judy = dir.admin.create_user(NewUser::new("judy")).await.unwrap();

    for taken in ["ivan", "IVAN"] {
        let err = dir
            .admin
            .create_user(NewUser::new(taken))
            .await
            .unwrap_err();
        assert!(is_validation_on(&err, "username"), "{taken}: {err:?}");
    }
    let err = dir.admin.create_user(NewUser::new("  ")).await.unwrap_err();
    assert!(is_validation_on(&err, "username"), "{err:?}");

    let mut renamed = judy.clone();
    renamed.username = "Ivan".into();
    let err = dir.admin.update_user(&renamed).await.unwrap_err();
    assert!(is_validation_on(&err, "username"), "{err:?}");
    assert_eq!(
        dir.users.user(judy.pk).await.unwrap().map(|u| u.username),
        Some("judy".to_owned())
    );
    // Keeping one's own username is not a clash.
    let mut same = ivan.clone();
    same.name = "Ivan I.".into();
    dir.admin.update_user(&same).await.unwrap();

    let err = dir.import(imported("ivan"), None).await.unwrap_err();
    assert!(is_validation_on(&err, "username"), "{err:?}");
    assert_eq!(dir.count().await, 2);
}

pub async fn emails_are_unique_case_insensitively_and_across_usernames(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    dir.admin
        .create_user(NewUser::new("alice").email("Alice@Corp.Example"))
        .await
        .unwrap();
    dir.admin
        .create_user(NewUser::new("carol@corp.example"))
        .await
        .unwrap();
    // A case variant of a taken email.
    let e = dir
        .admin
        .create_user(NewUser::new("bob").email("alice@corp.example"))
        .await
        .unwrap_err();
    assert_eq!(
        field_error(e, "email"),
        ["Email address is already in use."]
    );
    // An email equal to someone's username (the takeover).
    let e = dir
        .admin
        .create_user(NewUser::new("mallory").email("CAROL@corp.example"))
        .await
        .unwrap_err();
    assert_eq!(
        field_error(e, "email"),
        ["Email address is already in use."]
    );
    // A username equal to someone's email.
    let e = dir
        .admin
        .create_user(NewUser::new("alice@corp.example"))
        .await
        .unwrap_err();
    assert_eq!(field_error(e, "username"), ["Username is already taken."]);
    // Renaming into a taken email is refused too; one's own email is fine.
    let mut bob = dir
        .admin
        .create_user(NewUser::new("bob").email("bob@corp.example"))
        .await
        .unwrap();
    bob.email = "ALICE@corp.example".into();
    let e = dir.admin.update_user(&bob).await.unwrap_err();
    assert_eq!(
        field_error(e, "email"),
        ["Email address is already in use."]
    );
    bob.email = "BOB@corp.example".into();
    dir.admin.update_user(&bob).await.unwrap();
    // Lookups are unambiguous.
    let found = dir
        .users
        .find_user(UserField::Email, "alice@CORP.example", true)
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.username), Some("alice".to_owned()));
}

pub async fn usernames_are_compared_after_nfkc_and_case_folding(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    let admin = dir
        .admin
        .create_user(NewUser::new("akadmin"))
        .await
        .unwrap();
    for variant in ["ＡＫＡＤＭＩＮ", "AKADMIN", " akadmin "] {
        let e = dir
            .admin
            .create_user(NewUser::new(variant))
            .await
            .unwrap_err();
        assert_eq!(
            field_error(e, "username"),
            ["Username is already taken."],
            "{variant}"
        );
        let found = dir
            .users
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
        let e = dir.admin.create_user(NewUser::new(bad)).await.unwrap_err();
        assert_eq!(
            field_error(e, "username"),
            ["Username contains invisible or control characters."],
            "{bad:?}"
        );
    }
    let e = dir
        .admin
        .create_user(NewUser::new("a".repeat(151)))
        .await
        .unwrap_err();
    assert_eq!(
        field_error(e, "username"),
        ["Ensure this field has no more than 150 characters."]
    );
    dir.admin
        .create_user(NewUser::new("a".repeat(150)))
        .await
        .unwrap();
}

/// Uniqueness is enforced atomically with the write (the database's unique index; the
/// memory directory's write lock): of many concurrent enrollments with one email (in
/// different cases), exactly one succeeds.
pub async fn concurrent_creations_cannot_share_an_email(fresh: Fresh<'_>) {
    let (dir, _) = recording(fresh).await;
    let mut handles = Vec::new();
    for i in 0..16 {
        let admin = dir.admin.clone();
        handles.push(tokio::spawn(async move {
            let email = if i % 2 == 0 {
                "race@corp.example"
            } else {
                "RACE@corp.example"
            };
            admin
                .create_user(NewUser::new(format!("racer{i}")).email(email))
                .await
        }));
    }
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            // The losers are refused by the uniqueness rule, nothing else.
            Err(e) => assert_eq!(
                field_error(e, "email"),
                ["Email address is already in use."],
                "{}",
                dir.label
            ),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(dir.count().await, 1);
}
