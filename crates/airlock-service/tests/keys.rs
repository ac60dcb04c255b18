#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail by panicking"
)]
//! The identity seal key is part of the deployment's key hierarchy: `keys rotate` re-wraps it
//! under the new master key, and people enrolled before the rotation still log in after it.

use airlock_authz::Role;
use airlock_crypto::{KdfParams, NamedKey, Secret};
use airlock_service::{Identities, IdentityPolicy, totp};
use airlock_store::{Home, InitOptions, Passphrase};
use airlock_types::ActorId;

const PASSWORD: &str = "a long enough passphrase 1";

async fn identities(home: &Home) -> Identities {
    Identities::new(
        home.db().clone(),
        home.identity_seal_key().unwrap(),
        "keys-test",
        IdentityPolicy::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_person_enrolled_before_a_key_rotation_logs_in_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    let op = ActorId::new("operator").unwrap();
    let old = Passphrase::new("the first passphrase".into());
    let mut home = Home::init(
        &dir,
        &old,
        &InitOptions {
            name: "keys-test".into(),
            kdf: KdfParams::danger_fast_for_tests(),
            database_url: None,
        },
        op.clone(),
    )
    .await
    .unwrap();
    // A key of its own, not one derived from the pseudonym key.
    assert_ne!(
        home.identity_seal_key().unwrap().expose_secret(),
        home.pseudonym_key().unwrap().expose_secret()
    );
    let keyring = std::fs::read_to_string(dir.join("keyring.json")).unwrap();
    assert!(
        keyring.contains(NamedKey::IdentitySeal.as_str()),
        "{keyring}"
    );

    let lee = ActorId::new("dr-lee").unwrap();
    let enrolment = identities(&home)
        .await
        .add_user(&op, &lee, &[Role::Clinician], &Secret::new(PASSWORD.into()))
        .await
        .unwrap();
    let before = home.identity_seal_key().unwrap();

    let new = Passphrase::new("the second passphrase".into());
    home.rotate_keys(&new, KdfParams::danger_fast_for_tests())
        .await
        .unwrap();
    home.close().await.unwrap();
    assert!(
        Home::open(&dir, &old, op.clone()).await.is_err(),
        "the old passphrase still opens"
    );
    let home = Home::open(&dir, &new, op).await.unwrap();
    assert_eq!(
        home.identity_seal_key().unwrap().expose_secret(),
        before.expose_secret(),
        "the seal key survives the rotation, re-wrapped"
    );
    let now = chrono::Utc::now();
    let code = totp::code_at(
        enrolment.secret.expose_secret(),
        u64::try_from(now.timestamp()).unwrap(),
    );
    let (who, _session) = identities(&home)
        .await
        .login("dr-lee", &Secret::new(PASSWORD.into()), &code, now)
        .await
        .unwrap();
    assert_eq!(who, lee);
}
