//! The email flows built in: `default-recovery-flow` and `default-magic-link-flow`
//! (re-exported by [`crate::defaults`]).

use super::{AUTHENTICATION, MAGIC_LINK, RECOVERY, bind, fixed_flow, fixed_id};
use crate::model::*;
use crate::store::{FlowStore, StoreError};

fn identification() -> IdentificationStage {
    IdentificationStage {
        user_fields: vec![UserField::Email, UserField::Username],
        // The same answer for an unknown address (no mail is sent): no enumeration.
        pretend_user_exists: true,
        show_matched_user: false,
        recovery_flow: None,
        ..IdentificationStage::default()
    }
}

/// `default-recovery-flow` (require_unauthenticated; authentik's example blueprint
/// `flows-recovery-email-verification`): identification (email, username; an unknown
/// address gets the same "check your inbox" answer and no mail) → email (a link valid
/// for 30 minutes, once) → prompt (password, password_repeat; at least 8 characters)
/// → user write (never_create) → user login, which ends the user's other sessions.
pub async fn recovery(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(
        Flow::new(RECOVERY, "Reset your password", FlowDesignation::Recovery)
            .with_authentication(AuthenticationRequirement::RequireUnauthenticated),
    );
    store.put_flow(flow.clone()).await?;
    bind(
        store,
        &flow,
        Stage::new("default-recovery-identification", identification()),
        10,
    )
    .await?;
    let email = EmailStage {
        subject: "Reset your password".into(),
        template: PASSWORD_RESET_TEMPLATE.into(),
        ..EmailStage::default()
    };
    bind(
        store,
        &flow,
        Stage::new("default-recovery-email", email),
        20,
    )
    .await?;
    let mut policy = Policy::new(
        "default-recovery-password-policy",
        PolicyKind::Password(PasswordPolicy {
            length_min: 8,
            error_message: "Password needs to be 8 characters or longer.".into(),
            ..PasswordPolicy::default()
        }),
    );
    policy.pk = fixed_id("policy", &policy.name).into();
    let prompt = PromptStage {
        fields: vec![
            Prompt::new("password", "Password", PromptType::Password, 0),
            Prompt::new(
                "password_repeat",
                "Password (repeat)",
                PromptType::Password,
                1,
            ),
        ],
        validation_policies: vec![policy.pk],
    };
    store.put_policy(policy).await?;
    bind(
        store,
        &flow,
        Stage::new("default-recovery-prompt", prompt),
        30,
    )
    .await?;
    let write = UserWriteStage {
        user_creation_mode: UserCreationMode::NeverCreate,
        ..UserWriteStage::default()
    };
    bind(
        store,
        &flow,
        Stage::new("default-recovery-user-write", write),
        40,
    )
    .await?;
    bind(
        store,
        &flow,
        Stage::new("default-recovery-user-login", UserLoginStage::default()),
        100,
    )
    .await?;
    Ok(flow)
}

/// Installs [`recovery`] and links it from the default login flow's identification
/// stage (`recovery_url` in its challenge). The login flow must be installed.
pub async fn install_recovery(store: &dyn FlowStore) -> Result<(), StoreError> {
    recovery(store).await?;
    let Some(def) = store.flow(AUTHENTICATION).await? else {
        return Err(StoreError::NotFound(format!("flow {AUTHENTICATION}")));
    };
    for bound in &def.stages {
        if let StageConfig::Identification(i) = &bound.stage.config {
            let mut stage = (*bound.stage).clone();
            stage.config = StageConfig::Identification(IdentificationStage {
                recovery_flow: Some(RECOVERY.into()),
                ..i.clone()
            });
            store.put_stage(stage).await?;
        }
    }
    Ok(())
}

/// `default-magic-link-flow` (authentication, require_unauthenticated): passwordless
/// login by an emailed link, built from the same stages as authentik's examples:
/// identification (email, username; unknown addresses answered alike, no mail) →
/// email → user login. Opening the link (and confirming) logs the user in, in that
/// browser.
pub async fn magic_link(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(
        Flow::new(
            MAGIC_LINK,
            "Log in by email",
            FlowDesignation::Authentication,
        )
        .with_authentication(AuthenticationRequirement::RequireUnauthenticated),
    );
    store.put_flow(flow.clone()).await?;
    bind(
        store,
        &flow,
        Stage::new("default-magic-link-identification", identification()),
        10,
    )
    .await?;
    let email = EmailStage {
        subject: "Your login link".into(),
        token_expiry: "minutes=10".into(),
        ..EmailStage::default()
    };
    bind(
        store,
        &flow,
        Stage::new("default-magic-link-email", email),
        20,
    )
    .await?;
    bind(
        store,
        &flow,
        Stage::new("default-magic-link-login", UserLoginStage::default()),
        100,
    )
    .await?;
    Ok(flow)
}
