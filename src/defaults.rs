//! The default flows (DESIGN.md §7), built in code, and the bootstrap admin.
//!
//! They mirror authentik's default and example blueprints: same slugs, stage order and
//! prompt field keys, so authentik clients and the recorded transcripts apply.
//! [`install`] installs no recovery flow: [`install_recovery`] adds one (its email
//! stage needs the engine's mailer, and without one denies), and [`magic_link`] a
//! passwordless login by emailed link.

#[path = "defaults_recovery.rs"]
mod recovery_flows;
use crate::model::*;
use crate::secret::Password;
use crate::store::{FlowStore, Group, NewUser, StoreError, User, UserDirectory, operation};
pub use recovery_flows::{install_recovery, magic_link, recovery};

/// Slug of the default login flow.
pub const AUTHENTICATION: &str = "default-authentication-flow";
/// Slug of the default logout flow.
pub const INVALIDATION: &str = "default-invalidation-flow";
/// Slug of the default enrollment flow.
pub const ENROLLMENT: &str = "default-enrollment-flow";
/// Slug of the default password-change flow.
pub const PASSWORD_CHANGE: &str = "default-password-change";
/// Slug of the default account-deletion flow.
pub const UNENROLLMENT: &str = "default-unenrollment-flow";
/// Slug of the default TOTP setup flow.
pub const TOTP_SETUP: &str = "default-authenticator-totp-setup";
/// Slug of the default static (recovery code) setup flow.
pub const STATIC_SETUP: &str = "default-authenticator-static-setup";
/// Slug of the WebAuthn setup flow (authentik's `flow-default-authenticator-webauthn-setup`).
pub const WEBAUTHN_SETUP: &str = "default-authenticator-webauthn-setup";
/// Name of the superuser group the bootstrap admin joins.
pub const ADMIN_GROUP: &str = "authentik Admins";
/// Slug of the default recovery flow.
pub const RECOVERY: &str = "default-recovery-flow";
/// Slug of the login-by-emailed-link flow.
pub const MAGIC_LINK: &str = "default-magic-link-flow";
/// The bootstrap admin's username.
pub const ADMIN_USERNAME: &str = "akadmin";

/// Ids of the default objects are derived from their names (UUID v5), so every server
/// instance that installs the defaults has identical flows: a plan started on one
/// instance continues on another.
pub(crate) fn fixed_id(kind: &str, name: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("urn:authflow:default:{kind}:{name}").as_bytes(),
    )
}

pub(crate) fn fixed_flow(mut flow: Flow) -> Flow {
    flow.pk = fixed_id("flow", &flow.slug).into();
    flow.policybindingmodel_ptr_id = fixed_id("flow-pbm", &flow.slug);
    flow
}

pub(crate) async fn bind(
    store: &dyn FlowStore,
    flow: &Flow,
    stage: Stage,
    order: i32,
) -> Result<FlowStageBinding, StoreError> {
    let mut stage = stage;
    stage.pk = fixed_id("stage", &stage.name).into();
    if let StageConfig::Prompt(p) = &mut stage.config {
        for field in &mut p.fields {
            field.pk = fixed_id("prompt", &format!("{}/{}", stage.name, field.field_key)).into();
        }
    }
    let mut binding = FlowStageBinding::new(flow.pk, stage.pk, order);
    binding.pk = fixed_id("binding", &format!("{}/{}", flow.slug, stage.name)).into();
    binding.policybindingmodel_ptr_id =
        fixed_id("binding-pbm", &format!("{}/{}", flow.slug, stage.name));
    store.put_stage(stage).await?;
    store.put_binding(binding.clone()).await?;
    Ok(binding)
}

/// Installs every default flow into `store`. Fails if a slug is already taken.
pub async fn install(store: &dyn FlowStore) -> Result<(), StoreError> {
    authentication(store).await?;
    invalidation(store).await?;
    enrollment(store).await?;
    password_change(store).await?;
    unenrollment(store).await?;
    Ok(())
}

/// Installs the MFA setup flows authentik instantiates by default
/// ([`totp_setup`], [`static_setup`], [`webauthn_setup`]; the reference server does).
/// Idempotent (fixed ids); not part of [`install`], so hosts without MFA keep their
/// flow list.
pub async fn install_mfa_setup(store: &dyn FlowStore) -> Result<(), StoreError> {
    totp_setup(store).await?;
    static_setup(store).await?;
    webauthn_setup(store).await?;
    Ok(())
}

/// `default-authentication-flow`: identification (email, username; pretends unknown
/// users exist) → password (5 failures deny) → user login. `authentication: none`,
/// so a logged-in user can run it again.
pub async fn authentication(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(Flow::new(
        AUTHENTICATION,
        "Welcome to authentik!",
        FlowDesignation::Authentication,
    ));
    store.put_flow(flow.clone()).await?;
    let identification = IdentificationStage {
        user_fields: vec![UserField::Email, UserField::Username],
        // Show what the user typed, never the matched account: no enumeration.
        show_matched_user: false,
        ..IdentificationStage::default()
    };
    bind(
        store,
        &flow,
        Stage::new("default-authentication-identification", identification),
        10,
    )
    .await?;
    bind(
        store,
        &flow,
        Stage::new("default-authentication-password", PasswordStage::default()),
        20,
    )
    .await?;
    bind(
        store,
        &flow,
        Stage::new("default-authentication-login", UserLoginStage::default()),
        100,
    )
    .await?;
    Ok(flow)
}

/// `default-invalidation-flow`: user logout.
pub async fn invalidation(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(Flow::new(
        INVALIDATION,
        "Logout",
        FlowDesignation::Invalidation,
    ));
    store.put_flow(flow.clone()).await?;
    bind(
        store,
        &flow,
        Stage::new("default-invalidation-logout", UserLogoutStage::default()),
        0,
    )
    .await?;
    Ok(flow)
}

/// `default-enrollment-flow` (require_unauthenticated): prompt (username, password,
/// password_repeat; at least 8 characters) → prompt (name, email) → user write
/// (always_create) → user login. Usernames and emails must not be taken (compared
/// NFKC-normalised and case-folded, across both fields).
pub async fn enrollment(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(
        Flow::new(
            ENROLLMENT,
            "Welcome to authentik!",
            FlowDesignation::Enrollment,
        )
        .with_authentication(AuthenticationRequirement::RequireUnauthenticated),
    );
    store.put_flow(flow.clone()).await?;
    let mut policy = Policy::new(
        "default-enrollment-password-policy",
        PolicyKind::Password(PasswordPolicy {
            length_min: 8,
            error_message: "Password needs to be 8 characters or longer.".into(),
            ..PasswordPolicy::default()
        }),
    );
    policy.pk = fixed_id("policy", &policy.name).into();
    let first = PromptStage {
        fields: vec![
            Prompt::new("username", "Username", PromptType::Username, 0),
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
    let second = PromptStage {
        fields: vec![
            Prompt::new("name", "Name", PromptType::Text, 0),
            Prompt::new("email", "Email", PromptType::Email, 1),
        ],
        validation_policies: vec![],
    };
    bind(
        store,
        &flow,
        Stage::new("default-enrollment-prompt-first", first),
        10,
    )
    .await?;
    bind(
        store,
        &flow,
        Stage::new("default-enrollment-prompt-second", second),
        11,
    )
    .await?;
    let write = UserWriteStage {
        user_creation_mode: UserCreationMode::AlwaysCreate,
        ..UserWriteStage::default()
    };
    bind(
        store,
        &flow,
        Stage::new("default-enrollment-user-write", write),
        20,
    )
    .await?;
    bind(
        store,
        &flow,
        Stage::new("default-enrollment-user-login", UserLoginStage::default()),
        100,
    )
    .await?;
    Ok(flow)
}

/// `default-password-change` (require_authenticated): prompt (password,
/// password_repeat; at least 8 characters) → user write (never_create).
pub async fn password_change(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(
        Flow::new(
            PASSWORD_CHANGE,
            "Change password",
            FlowDesignation::StageConfiguration,
        )
        .with_authentication(AuthenticationRequirement::RequireAuthenticated),
    );
    store.put_flow(flow.clone()).await?;
    let mut policy = Policy::new(
        "default-password-change-password-policy",
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
        Stage::new("default-password-change-prompt", prompt),
        0,
    )
    .await?;
    let write = UserWriteStage {
        user_creation_mode: UserCreationMode::NeverCreate,
        ..UserWriteStage::default()
    };
    bind(
        store,
        &flow,
        Stage::new("default-password-change-write", write),
        1,
    )
    .await?;
    Ok(flow)
}

/// `default-unenrollment-flow` (require_authenticated): user delete.
pub async fn unenrollment(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(
        Flow::new(
            UNENROLLMENT,
            "Delete account",
            FlowDesignation::Unenrollment,
        )
        .with_authentication(AuthenticationRequirement::RequireAuthenticated),
    );
    store.put_flow(flow.clone()).await?;
    bind(
        store,
        &flow,
        Stage::new(
            "default-unenrollment-user-delete",
            UserDeleteStage::default(),
        ),
        10,
    )
    .await?;
    Ok(flow)
}

/// `default-authenticator-totp-setup` (stage_configuration, require_authenticated): the
/// TOTP setup stage (6 digits), which is its own `configure_flow` — authentik's
/// `flow-default-authenticator-totp-setup` blueprint.
pub async fn totp_setup(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(
        Flow::new(TOTP_SETUP, TOTP_SETUP, FlowDesignation::StageConfiguration)
            .with_title("Set up Two-Factor authentication")
            .with_authentication(AuthenticationRequirement::RequireAuthenticated),
    );
    store.put_flow(flow.clone()).await?;
    let stage = AuthenticatorTotpStage {
        digits: 6,
        friendly_name: Some("TOTP Device".into()),
        configure_flow: Some(TOTP_SETUP.into()),
    };
    bind(store, &flow, Stage::new(TOTP_SETUP, stage), 0).await?;
    Ok(flow)
}

/// `default-authenticator-static-setup` (stage_configuration, require_authenticated):
/// six static recovery codes — authentik's `flow-default-authenticator-static-setup`
/// blueprint.
pub async fn static_setup(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(
        Flow::new(
            STATIC_SETUP,
            STATIC_SETUP,
            FlowDesignation::StageConfiguration,
        )
        .with_title("Setup Static OTP Tokens")
        .with_authentication(AuthenticationRequirement::RequireAuthenticated),
    );
    store.put_flow(flow.clone()).await?;
    let stage = AuthenticatorStaticStage {
        token_count: 6,
        friendly_name: Some("Static tokens".into()),
        configure_flow: Some(STATIC_SETUP.into()),
        ..AuthenticatorStaticStage::default()
    };
    bind(store, &flow, Stage::new(STATIC_SETUP, stage), 0).await?;
    Ok(flow)
}

/// `default-authenticator-webauthn-setup` (require_authenticated, stage configuration):
/// registers a passkey or security key for the logged-in user, as authentik's
/// blueprint. Needs the `webauthn` cargo feature (without it the stage denies).
pub async fn webauthn_setup(store: &dyn FlowStore) -> Result<Flow, StoreError> {
    let flow = fixed_flow(
        Flow::new(
            WEBAUTHN_SETUP,
            WEBAUTHN_SETUP,
            FlowDesignation::StageConfiguration,
        )
        .with_title("Setup WebAuthn")
        .with_authentication(AuthenticationRequirement::RequireAuthenticated),
    );
    store.put_flow(flow.clone()).await?;
    let stage = AuthenticatorWebauthnStage {
        configure_flow: Some(WEBAUTHN_SETUP.into()),
        ..AuthenticatorWebauthnStage::default()
    };
    bind(store, &flow, Stage::new(WEBAUTHN_SETUP, stage), 0).await?;
    Ok(flow)
}

/// The bootstrap admin's email when none is configured (authentik's default of
/// `AUTHENTIK_BOOTSTRAP_EMAIL`).
pub const DEFAULT_ADMIN_EMAIL: &str = "root@localhost";

/// Creates the superuser group and the `akadmin` user in it with `password` and the
/// email [`DEFAULT_ADMIN_EMAIL`]. Their ids are fixed, so several instances that each
/// bootstrap agree on them. Needs the directory's [`UserAdmin`](crate::store::UserAdmin)
/// (else [`StoreError::Unsupported`]).
pub async fn bootstrap_admin(
    users: &dyn UserDirectory,
    password: Password,
) -> Result<User, StoreError> {
    bootstrap_admin_with_email(users, password, DEFAULT_ADMIN_EMAIL).await
}

/// [`bootstrap_admin`] with akadmin's email (authentik's `AUTHENTIK_BOOTSTRAP_EMAIL`;
/// the reference server reads `AUTHFLOW_BOOTSTRAP_EMAIL`). A blank `email` means
/// [`DEFAULT_ADMIN_EMAIL`].
pub async fn bootstrap_admin_with_email(
    users: &dyn UserDirectory,
    password: Password,
    email: &str,
) -> Result<User, StoreError> {
    let email = match email.trim() {
        "" => DEFAULT_ADMIN_EMAIL,
        e => e,
    };
    let admin_dir = users.require_admin(operation::CREATE_USER)?;
    let group = match users.find_group(ADMIN_GROUP).await? {
        Some(g) => g,
        None => {
            let mut g = Group::new(ADMIN_GROUP).superuser();
            g.pk = fixed_id("group", ADMIN_GROUP).into();
            admin_dir.put_group(g.clone()).await?;
            g
        }
    };
    let mut admin = NewUser::new(ADMIN_USERNAME);
    // The same id on every instance, so sessions naming akadmin work on all of them.
    admin.pk = Some(fixed_id("user", ADMIN_USERNAME).into());
    admin_dir
        .create_user(
            admin
                .name("authentik Default Admin")
                .email(email)
                .group(group.pk)
                .password(password),
        )
        .await
}
