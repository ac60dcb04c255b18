//! Properties over arbitrary requests: `decide` never panics, and identified data in development
//! or staging is never allowed, whatever the roles, kind, action, purpose or flags.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]

use std::sync::OnceLock;

use airlock_authz::{
    Action, Authorizer, PolicyMode, Principal, PrincipalKind, Request, Resource, Role,
};
use airlock_types::{ActorId, Classification, Purpose, Zone};
use proptest::prelude::*;
use proptest::sample::select;

fn default_authz() -> &'static Authorizer {
    static A: OnceLock<Authorizer> = OnceLock::new();
    A.get_or_init(|| Authorizer::new().unwrap())
}

/// The defaults plus a permit for everything: only the forbids stand between a request and an
/// allow.
fn open_authz() -> &'static Authorizer {
    static A: OnceLock<Authorizer> = OnceLock::new();
    A.get_or_init(|| {
        Authorizer::with_policies(
            r#"@id("permit-everything") permit (principal, action, resource);"#,
            PolicyMode::Extend,
        )
        .unwrap()
    })
}

fn principal() -> impl Strategy<Value = Principal> {
    (
        "[a-zA-Z0-9._@:-]{1,40}",
        any::<bool>(),
        proptest::collection::vec(select(Role::ALL.to_vec()), 0..8),
    )
        .prop_map(|(id, service, roles)| Principal {
            id: ActorId::new(id).unwrap(),
            kind: if service {
                PrincipalKind::Service
            } else {
                PrincipalKind::User
            },
            roles,
        })
}

fn zone() -> impl Strategy<Value = Zone> {
    select(Zone::ALL.to_vec())
}

fn resource() -> impl Strategy<Value = Resource> {
    prop_oneof![
        zone().prop_map(Resource::Zone),
        (".{0,30}", zone(), select(Classification::ALL.to_vec())).prop_map(
            |(name, zone, classification)| Resource::Dataset {
                name,
                zone,
                classification
            }
        ),
        (
            ".{0,30}",
            zone(),
            proptest::option::of("[a-z0-9]{1,8}".prop_map(|s| ActorId::new(s).unwrap())),
            prop_oneof![
                select(vec![
                    "registered",
                    "validated",
                    "approved",
                    "silent",
                    "canary",
                    "production",
                    "retired"
                ])
                .prop_map(str::to_owned),
                ".{0,12}",
            ],
        )
            .prop_map(|(name, zone, trained_by, state)| Resource::Model {
                name,
                zone,
                trained_by,
                state
            }),
        Just(Resource::Audit),
        Just(Resource::Identities),
        Just(Resource::Keys),
        zone().prop_map(|zone| Resource::Patient { zone }),
    ]
}

fn identified_dataset() -> impl Strategy<Value = Resource> {
    (
        ".{0,30}",
        select(vec![Zone::Development, Zone::Staging]),
        select(vec![Classification::Phi, Classification::LimitedDataSet]),
    )
        .prop_map(|(name, zone, classification)| Resource::Dataset {
            name,
            zone,
            classification,
        })
}

fn purpose() -> impl Strategy<Value = Option<Purpose>> {
    proptest::option::of(select(Purpose::ALL.to_vec()))
}

/// Every part of an authorization question: principal, action, resource, purpose,
/// break-glass, MFA.
fn question() -> impl Strategy<Value = (Principal, Action, Resource, Option<Purpose>, bool, bool)> {
    (
        principal(),
        select(Action::ALL.to_vec()),
        resource(),
        purpose(),
        any::<bool>(),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decide_never_panics_and_explains_itself(
        (p, action, r, purpose, break_glass, mfa) in question(),
    ) {
        for authz in [default_authz(), open_authz()] {
            let d = authz.decide(&Request { principal: &p, action, resource: &r, purpose, break_glass, mfa });
            let reason = d.reason();
            prop_assert!(
                reason.starts_with("permit:") || reason.starts_with("forbid:") || reason.starts_with("deny:")
            );
            prop_assert_eq!(d.allowed(), reason.starts_with("permit:"));
            // Nothing from the request's free text reaches the decision.
            if let Resource::Dataset { name, .. } | Resource::Model { name, .. } = &r
                && name.chars().count() > 8
            {
                for text in &d.errors {
                    prop_assert!(!text.contains(name.as_str()));
                }
            }
        }
    }

    #[test]
    fn remembered_decisions_equal_fresh_ones(
        (p, action, r, purpose, break_glass, mfa) in question(),
        flip in 0usize..5,
    ) {
        // The same principal id with no roles: the memo must not take one for the other.
        let bare = Principal { roles: Vec::new(), ..p.clone() };
        let a = Request { principal: &p, action, resource: &r, purpose, break_glass, mfa };
        let mut b = a;
        match flip {
            0 => b.mfa = !mfa,
            1 => b.break_glass = !break_glass,
            2 => b.purpose = if purpose.is_some() { None } else { Some(Purpose::Treatment) },
            3 => b.principal = &bare,
            _ => b.action = Action::ALL[(Action::ALL.iter().position(|x| *x == action).unwrap_or(0) + 1) % Action::ALL.len()],
        }
        for authz in [default_authz(), open_authz()] {
            for req in [a, b, a, b] {
                prop_assert_eq!(authz.decide(&req), authz.decide_uncached(&req));
            }
        }
    }

    #[test]
    fn identified_data_in_development_or_staging_is_always_denied(
        p in principal(),
        action in select(Action::ALL.to_vec()),
        r in identified_dataset(),
        purpose in purpose(),
        break_glass in any::<bool>(),
        mfa in any::<bool>(),
    ) {
        for authz in [default_authz(), open_authz()] {
            let d = authz.decide(&Request { principal: &p, action, resource: &r, purpose, break_glass, mfa });
            prop_assert!(!d.allowed(), "{}", d.reason());
        }
    }
}
