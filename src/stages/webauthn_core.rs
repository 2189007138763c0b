//! WebAuthn plumbing shared by the setup stage and the validation seam (feature
//! `webauthn`): the relying party of a request, the user handle, and the parsing of
//! the credential JSON clients send.
//!
//! Clients send binary fields as base64url, with or without padding (authentik's web
//! client pads some, `PublicKeyCredential.toJSON()` does not), and client extension
//! results either as an object (`clientExtensionResults`) or as a JSON string
//! (authentik's `registrationClientExtensions` / `assertionClientExtensions`). They
//! are normalised here before kanidm's parser sees them.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use url::Url;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::proto::{
    PublicKeyCredential, RegisterPublicKeyCredential, UserVerificationPolicy,
};

use crate::model::{UserId, UserVerification};
use crate::request::FlowRequest;

/// How long the browser may take (authentik's py_webauthn default: 60 s).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The relying party of a request: its id (the host name of the origin) and origin.
pub(crate) struct RelyingParty {
    /// The RP id (host name, no port).
    pub id: String,
    /// The origin the client data must name.
    pub origin: Url,
}

/// The relying party of the request ([`FlowRequest::origin`]); `Err` with a message
/// when the request has none or it is not a usable origin.
pub(crate) fn relying_party(request: &FlowRequest) -> Result<RelyingParty, String> {
    let Some(origin) = request.origin.as_deref() else {
        return Err(
            "WebAuthn needs the server's origin (the external URL or the request's Host), \
             which this request lacks."
                .into(),
        );
    };
    let url = Url::parse(origin).map_err(|_| format!("The origin `{origin}` is not valid."))?;
    let id = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        _ => {
            return Err(format!(
                "WebAuthn needs a domain name as origin; `{origin}` has none."
            ));
        }
    };
    Ok(RelyingParty { id, origin: url })
}

/// The verifier for `rp` (the origin's exact scheme, host and port; no subdomains).
pub(crate) fn verifier(rp: &RelyingParty) -> WebauthnCore {
    WebauthnCore::new_unsafe_experts_only(
        &rp.id,
        &rp.id,
        vec![rp.origin.clone()],
        TIMEOUT,
        Some(false),
        Some(false),
    )
}

/// The user handle authflow registers: 64 hexadecimal characters (SHA-256 of the user
/// id), as authentik's `User.uid`. authentik's web client base64-decodes `user.id`
/// (standard alphabet) and then decodes the result again: a hex string survives both.
pub(crate) fn user_handle(user: &UserId) -> String {
    let digest = Sha256::digest(format!("authflow-webauthn-user:{user}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an assertion's `userHandle` names `user`: the bytes registered (browsers'
/// `toJSON()`), or what authentik's web client registered instead (the base64 decoding
/// of the hex handle).
pub(crate) fn handle_matches(handle: &[u8], user: &UserId) -> bool {
    let hex = user_handle(user);
    if handle == hex.as_bytes() {
        return true;
    }
    general_purpose::STANDARD
        .decode(hex.as_bytes())
        .is_ok_and(|decoded| decoded == handle)
}

/// base64url without padding.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);

/// Decodes base64url or standard base64, padded or not.
pub(crate) fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT)
        .decode(s)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT).decode(s))
        .ok()
}

/// kanidm's policy for a stage's `user_verification`.
pub(crate) fn policy(uv: UserVerification) -> UserVerificationPolicy {
    match uv {
        UserVerification::Required => UserVerificationPolicy::Required,
        UserVerification::Preferred => UserVerificationPolicy::Preferred,
        UserVerification::Discouraged => UserVerificationPolicy::Discouraged_DO_NOT_USE,
    }
}

/// The binary field `key` of `from`, re-encoded as base64url without padding.
fn binary(from: &Map<String, Value>, key: &str, required: bool) -> Result<Option<Value>, String> {
    match from.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) => decode_b64(s)
            .map(|b| Some(Value::String(b64url(&b))))
            .ok_or_else(|| format!("`{key}` is not base64.")),
        _ => Err(format!("`{key}` is missing or not a string.")),
    }
}

/// The client extension results, from an object or a JSON string; `{}` when absent or
/// unreadable (authflow requests no extensions).
fn extensions(v: &Map<String, Value>, string_key: &str) -> Value {
    let found = v
        .get("clientExtensionResults")
        .or_else(|| v.get("extensions"))
        .cloned()
        .or_else(|| {
            v.get(string_key)
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
        });
    match found {
        Some(Value::Object(m)) => Value::Object(m),
        _ => Value::Object(Map::new()),
    }
}

/// The common part: `id`, `rawId` (from `id` when absent), `type`, and `response` with
/// the binary fields `fields` (`(name, required)`).
fn normalise(
    v: &Value,
    fields: &[(&str, bool)],
    extension_key: &str,
) -> Result<Map<String, Value>, String> {
    let v = v
        .as_object()
        .ok_or("The credential must be a JSON object.")?;
    let raw_id = binary(v, "rawId", false)?
        .or(binary(v, "id", true)?)
        .ok_or("`rawId` is missing.")?;
    let response = v
        .get("response")
        .and_then(Value::as_object)
        .ok_or("`response` is missing.")?;
    let mut out_response = Map::new();
    for (name, required) in fields {
        if let Some(b) = binary(response, name, *required)? {
            out_response.insert((*name).to_owned(), b);
        }
    }
    if let Some(t) = response.get("transports").filter(|t| t.is_array()) {
        out_response.insert("transports".into(), t.clone());
    }
    let mut out = Map::new();
    out.insert("id".into(), raw_id.clone());
    out.insert("rawId".into(), raw_id);
    out.insert("type".into(), Value::String("public-key".into()));
    if let Some(t) = v.get("type").and_then(Value::as_str) {
        if t != "public-key" {
            return Err(format!("The credential type `{t}` is not `public-key`."));
        }
    }
    out.insert("response".into(), Value::Object(out_response));
    out.insert("extensions".into(), extensions(v, extension_key));
    Ok(out)
}

fn parse<T: serde::de::DeserializeOwned>(mut m: Map<String, Value>) -> Result<T, String> {
    match serde_json::from_value(Value::Object(m.clone())) {
        Ok(t) => Ok(t),
        Err(_) => {
            // Extension results kanidm does not understand are not worth a refusal.
            m.insert("extensions".into(), Value::Object(Map::new()));
            serde_json::from_value(Value::Object(m))
                .map_err(|e| format!("The credential is malformed: {e}"))
        }
    }
}

/// A registration response (`navigator.credentials.create()`'s credential) in either
/// JSON form.
pub(crate) fn registration_credential(v: &Value) -> Result<RegisterPublicKeyCredential, String> {
    let m = normalise(
        v,
        &[("attestationObject", true), ("clientDataJSON", true)],
        "registrationClientExtensions",
    )?;
    parse(m)
}

/// An assertion (`navigator.credentials.get()`'s credential) in either JSON form;
/// `userHandle` may be null or absent.
pub(crate) fn assertion_credential(v: &Value) -> Result<PublicKeyCredential, String> {
    let mut m = normalise(
        v,
        &[
            ("authenticatorData", true),
            ("clientDataJSON", true),
            ("signature", true),
            ("userHandle", false),
        ],
        "assertionClientExtensions",
    )?;
    if let Some(Value::Object(r)) = m.get_mut("response") {
        // An empty handle (authentik's client without one) is no handle.
        if r.get("userHandle").and_then(Value::as_str) == Some("") {
            r.remove("userHandle");
        }
        r.entry("userHandle").or_insert(Value::Null);
    }
    parse(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_any_form() {
        assert_eq!(decode_b64("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_b64("-_8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_b64("+/8="), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_b64("*"), None);
    }

    #[test]
    fn user_handle_survives_authentiks_double_decoding() {
        let user = UserId::from("42");
        let h = user_handle(&user);
        assert_eq!(h.len(), 64);
        let sent = b64url(h.as_bytes());
        // authentik's client: atob(user.id) (standard alphabet), then decode again.
        let once = general_purpose::STANDARD_NO_PAD
            .decode(sent.as_bytes())
            .expect("standard alphabet");
        assert_eq!(once, h.as_bytes());
        let twice = general_purpose::STANDARD
            .decode(&once)
            .expect("hex is base64");
        assert!(handle_matches(&twice, &user));
        assert!(handle_matches(h.as_bytes(), &user));
        assert!(!handle_matches(b"someone else", &user));
    }

    #[test]
    fn reads_both_registration_forms() {
        let authentik = json!({
            "id": "AQI", "rawId": "AQI=", "type": "public-key",
            "registrationClientExtensions": "{}",
            "response": {"clientDataJSON": "e30=", "attestationObject": "oA=="}
        });
        let browser = json!({
            "id": "AQI", "rawId": "AQI", "type": "public-key",
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
            "response": {"clientDataJSON": "e30", "attestationObject": "oA",
                         "transports": ["internal"], "publicKey": "xx", "publicKeyAlgorithm": -7}
        });
        for v in [authentik, browser] {
            let c = registration_credential(&v).expect("parses");
            assert_eq!(c.raw_id, vec![1, 2]);
            assert_eq!(c.response.client_data_json, b"{}");
        }
        assert!(registration_credential(&json!({"id": "AQI"})).is_err());
        assert!(registration_credential(&json!("x")).is_err());
    }

    #[test]
    fn reads_assertions_with_or_without_handle() {
        for handle in [json!(null), json!(""), json!("YWI")] {
            let v = json!({
                "id": "AQI", "rawId": "AQI", "type": "public-key",
                "assertionClientExtensions": "not json",
                "response": {"clientDataJSON": "e30", "authenticatorData": "AA",
                             "signature": "AA==", "userHandle": handle}
            });
            let c = assertion_credential(&v).expect("parses");
            assert_eq!(c.response.signature, vec![0]);
        }
    }
}
