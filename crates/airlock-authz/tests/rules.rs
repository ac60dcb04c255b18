//! The guard rails one by one: forbid wins, MFA, break-glass, self-approval, loading policies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]

use airlock_authz::{
    Action, Authorizer, AuthzError, Decision, Effect, PolicyMode, Principal, Request, Resource,
    Role,
};
use airlock_types::{ActorId, Classification, Purpose, Zone};

fn actor(s: &str) -> ActorId {
    ActorId::new(s).unwrap()
}

fn user(roles: &[Role]) -> Principal {
    Principal::user(actor("alice"), roles.iter().copied())
}

fn dataset(zone: Zone, classification: Classification) -> Resource {
    Resource::Dataset {
        name: "cohort".to_owned(),
        zone,
        classification,
    }
}

fn model(zone: Zone, state: &str, trained_by: Option<&str>) -> Resource {
    Resource::Model {
        name: "sepsis".to_owned(),
        zone,
        trained_by: trained_by.map(actor),
        state: state.to_owned(),
    }
}

struct Ask<'a> {
    authz: &'a Authorizer,
    principal: &'a Principal,
    purpose: Option<Purpose>,
    break_glass: bool,
    mfa: bool,
}

impl Ask<'_> {
    fn decide(&self, action: Action, resource: &Resource) -> Decision {
        self.authz.decide(&Request {
            principal: self.principal,
            action,
            resource,
            purpose: self.purpose,
            break_glass: self.break_glass,
            mfa: self.mfa,
        })
    }
}

fn ask<'a>(authz: &'a Authorizer, principal: &'a Principal) -> Ask<'a> {
    Ask {
        authz,
        principal,
        purpose: None,
        break_glass: false,
        mfa: true,
    }
}

const PERMIT_ALL: &str = r#"
@id("permit-everything")
permit (principal, action, resource);
"#;

#[test]
fn reasons_name_the_deciding_policy() {
    let authz = Authorizer::new().unwrap();
    let ds = user(&[Role::DataScientist]);
    let d = ask(&authz, &ds).decide(
        Action::DownloadDataset,
        &dataset(Zone::Development, Classification::Deidentified),
    );
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.policies, ["data-scientist-deidentified"]);
    assert_eq!(d.reason(), "permit:data-scientist-deidentified");
    assert!(d.errors.is_empty());

    let d = ask(&authz, &ds).decide(Action::ReadAudit, &Resource::Audit);
    assert!(!d.allowed());
    assert!(d.policies.is_empty());
    assert_eq!(d.reason(), "deny:default");

    let d = ask(&authz, &ds).decide(
        Action::ReadDataset,
        &dataset(Zone::Staging, Classification::Phi),
    );
    assert_eq!(
        d.policies,
        ["data-scientist-never-identified", "no-phi-outside-clinical"]
    );
    assert_eq!(
        d.reason(),
        "forbid:data-scientist-never-identified,no-phi-outside-clinical"
    );
}

#[test]
fn an_action_on_the_wrong_kind_of_resource_is_a_deny_with_an_error() {
    let authz = Authorizer::new().unwrap();
    let a = user(&[Role::Auditor]);
    let d = ask(&authz, &a).decide(Action::ReadAudit, &Resource::Keys);
    assert!(!d.allowed());
    assert_eq!(d.reason(), "deny:error");
    assert_eq!(d.errors.len(), 1);
    assert!(d.errors[0].contains("read-audit"), "{:?}", d.errors);
}

#[test]
fn forbid_wins_over_any_permit() {
    let authz = Authorizer::with_policies(PERMIT_ALL, PolicyMode::Extend).unwrap();
    let nobody = user(&[]);
    let any = ask(&authz, &nobody);

    // The permit-everything policy really is in force.
    let d = any.decide(Action::ReadAudit, &Resource::Audit);
    assert_eq!(d.reason(), "permit:permit-everything");

    // Identified data in development or staging: refused to everyone, for everything.
    for zone in [Zone::Development, Zone::Staging] {
        for c in [Classification::Phi, Classification::LimitedDataSet] {
            for action in [
                Action::ListDatasets,
                Action::ReadDataset,
                Action::DownloadDataset,
                Action::IngestDataset,
                Action::RunDeid,
            ] {
                let d = Ask {
                    purpose: Some(Purpose::Treatment),
                    ..ask(&authz, &nobody)
                }
                .decide(action, &dataset(zone, c));
                assert_eq!(d.reason(), "forbid:no-phi-outside-clinical");
            }
        }
    }

    // PHI without a purpose of use.
    let d = any.decide(
        Action::ReadPatientRecord,
        &Resource::Patient {
            zone: Zone::Clinical,
        },
    );
    assert_eq!(d.reason(), "forbid:purpose-required");
    let d = any.decide(
        Action::DownloadDataset,
        &dataset(Zone::Clinical, Classification::Phi),
    );
    assert_eq!(d.reason(), "forbid:purpose-required-identified-download");
    let d = Ask {
        purpose: Some(Purpose::Research),
        ..ask(&authz, &nobody)
    }
    .decide(
        Action::DownloadDataset,
        &dataset(Zone::Clinical, Classification::LimitedDataSet),
    );
    assert!(d.allowed(), "with a purpose the extension's permit holds");

    // The security administrator never sees data, even with another role that would.
    let admin = user(&[Role::SecurityAdmin, Role::PrivacyOfficer]);
    let d = ask(&authz, &admin).decide(
        Action::ReadDataset,
        &dataset(Zone::Clinical, Classification::Phi),
    );
    assert_eq!(d.reason(), "forbid:security-admin-no-data");
    let d = ask(&authz, &admin).decide(Action::ReadAudit, &Resource::Audit);
    assert!(d.allowed());
}

#[test]
fn forbid_wins_across_a_principal_s_roles() {
    let authz = Authorizer::new().unwrap();
    // A data scientist who is also a clinical reviewer still cannot approve.
    let both = user(&[Role::DataScientist, Role::ClinicalReviewer]);
    let d = ask(&authz, &both).decide(
        Action::ApproveModel,
        &model(Zone::Staging, "validated", Some("bob")),
    );
    assert_eq!(d.reason(), "forbid:data-scientist-no-approve-or-deploy");
    // ...and reads models with either role's permit.
    let d = ask(&authz, &both).decide(
        Action::ReadModel,
        &model(Zone::Staging, "validated", Some("bob")),
    );
    assert_eq!(
        d.reason(),
        "permit:clinical-reviewer-models,data-scientist-models"
    );
    // A data scientist who is also a privacy officer sees no identified dataset.
    let both = user(&[Role::DataScientist, Role::PrivacyOfficer]);
    let d = ask(&authz, &both).decide(
        Action::ReadDataset,
        &dataset(Zone::Clinical, Classification::Phi),
    );
    assert_eq!(d.reason(), "forbid:data-scientist-never-identified");
}

#[test]
fn mfa_is_required_of_people_not_of_services() {
    let authz = Authorizer::new().unwrap();
    let audit = Resource::Audit;
    let person = user(&[Role::Auditor]);
    let with = ask(&authz, &person).decide(Action::ReadAudit, &audit);
    assert!(with.allowed());
    let without = Ask {
        mfa: false,
        ..ask(&authz, &person)
    }
    .decide(Action::ReadAudit, &audit);
    assert_eq!(without.reason(), "forbid:mfa-required");

    // Even with a permit-everything extension.
    let open = Authorizer::with_policies(PERMIT_ALL, PolicyMode::Extend).unwrap();
    let d = Ask {
        mfa: false,
        ..ask(&open, &person)
    }
    .decide(Action::ReadAudit, &audit);
    assert_eq!(d.reason(), "forbid:mfa-required");

    let service = Principal::service(actor("ledger-exporter"), [Role::Auditor]);
    let d = Ask {
        mfa: false,
        ..ask(&authz, &service)
    }
    .decide(Action::ReadAudit, &audit);
    assert!(d.allowed());
}

#[test]
fn break_glass_is_for_clinicians_in_an_emergency() {
    let authz = Authorizer::new().unwrap();
    let patient = Resource::Patient {
        zone: Zone::Clinical,
    };
    let clinician = user(&[Role::Clinician]);

    // Starting emergency access needs the emergency purpose.
    let start = |p: &Principal, purpose| {
        Ask {
            purpose,
            ..ask(&authz, p)
        }
        .decide(Action::BreakGlass, &patient)
    };
    assert_eq!(
        start(&clinician, Some(Purpose::Emergency)).reason(),
        "permit:clinician-break-glass"
    );
    assert!(!start(&clinician, Some(Purpose::Treatment)).allowed());
    assert_eq!(
        start(&clinician, None).reason(),
        "deny:default",
        "no purpose, no emergency"
    );

    // Emergency reads need an open session; treatment reads do not.
    let read = |purpose, break_glass| {
        Ask {
            purpose,
            break_glass,
            ..ask(&authz, &clinician)
        }
        .decide(Action::ReadPatientRecord, &patient)
    };
    assert!(!read(Some(Purpose::Emergency), false).allowed());
    assert_eq!(
        read(Some(Purpose::Emergency), true).reason(),
        "permit:clinician-emergency"
    );
    assert_eq!(
        read(Some(Purpose::Treatment), false).reason(),
        "permit:clinician-treatment"
    );
    assert!(!read(Some(Purpose::Research), true).allowed());

    // Nobody else breaks the glass, whatever their other roles or an extension says.
    let open = Authorizer::with_policies(PERMIT_ALL, PolicyMode::Extend).unwrap();
    for role in Role::ALL.into_iter().filter(|r| *r != Role::Clinician) {
        let p = user(&[role]);
        let d = Ask {
            purpose: Some(Purpose::Emergency),
            ..ask(&open, &p)
        }
        .decide(Action::BreakGlass, &patient);
        assert!(!d.allowed());
        assert!(
            d.policies
                .contains(&"break-glass-clinicians-only".to_owned()),
            "{role}: {}",
            d.reason()
        );
        // Nor act inside a session.
        let d = Ask {
            break_glass: true,
            ..ask(&open, &p)
        }
        .decide(Action::ReadAudit, &Resource::Audit);
        assert_eq!(d.reason(), "forbid:break-glass-clinicians-only", "{role}");
    }

    // A service with the clinician role predicts, but never breaks the glass.
    let ehr = Principal::service(actor("ehr-integration"), [Role::Clinician]);
    let sepsis = model(Zone::Clinical, "production", Some("bob"));
    let d = Ask {
        purpose: Some(Purpose::Treatment),
        ..ask(&authz, &ehr)
    }
    .decide(Action::Predict, &sepsis);
    assert_eq!(d.reason(), "permit:clinician-treatment");
    let d = Ask {
        purpose: Some(Purpose::Emergency),
        ..ask(&authz, &ehr)
    }
    .decide(Action::BreakGlass, &patient);
    assert_eq!(d.reason(), "forbid:service-no-break-glass");
    let d = Ask {
        purpose: Some(Purpose::Emergency),
        break_glass: true,
        ..ask(&authz, &ehr)
    }
    .decide(Action::Predict, &sepsis);
    assert_eq!(d.reason(), "forbid:service-no-break-glass");
}

#[test]
fn services_never_administer_identities_or_keys() {
    let authz = Authorizer::new().unwrap();
    let svc = Principal::service(actor("provisioner"), [Role::SecurityAdmin]);
    for (action, resource) in [
        (Action::ManageUsers, Resource::Identities),
        (Action::ManageTokens, Resource::Identities),
        (Action::ManageKeys, Resource::Keys),
    ] {
        let d = ask(&authz, &svc).decide(action, &resource);
        assert_eq!(d.reason(), "forbid:service-no-identity-admin", "{action}");
    }
    let person = user(&[Role::SecurityAdmin]);
    let d = ask(&authz, &person).decide(Action::ManageKeys, &Resource::Keys);
    assert_eq!(d.reason(), "permit:security-admin-identities");
}

#[test]
fn nobody_approves_a_model_they_trained() {
    let authz = Authorizer::new().unwrap();
    let reviewer = Principal::user(actor("carol"), [Role::ClinicalReviewer]);
    let theirs = model(Zone::Staging, "validated", Some("carol"));
    let d = ask(&authz, &reviewer).decide(Action::ApproveModel, &theirs);
    assert_eq!(d.reason(), "forbid:no-self-approval");
    // They may still read it.
    assert!(
        ask(&authz, &reviewer)
            .decide(Action::ReadModel, &theirs)
            .allowed()
    );
    // Someone else's, or one with no recorded trainer, they may approve.
    for other in [
        model(Zone::Staging, "validated", Some("dave")),
        model(Zone::Staging, "validated", None),
    ] {
        let d = ask(&authz, &reviewer).decide(Action::ApproveModel, &other);
        assert_eq!(d.reason(), "permit:clinical-reviewer-models");
    }
    // The actor id decides, whatever the principal's kind.
    let svc = Principal::service(actor("carol"), [Role::PrivacyOfficer]);
    let d = ask(&authz, &svc).decide(Action::ApproveModel, &theirs);
    assert_eq!(d.reason(), "forbid:no-self-approval");
}

#[test]
fn extend_adds_a_permit_that_works() {
    let extra = r#"
        // Deployments decide who brings data in; here, MLOps into the clinical zone.
        @id("mlops-ingest-clinical")
        permit (
          principal in Airlock::Role::"mlops-engineer",
          action == Airlock::Action::"ingest-dataset",
          resource is Airlock::Zone
        )
        when { resource.zone == "clinical" };
    "#;
    let base = Authorizer::new().unwrap();
    let authz = Authorizer::with_policies(extra, PolicyMode::Extend).unwrap();
    let ops = user(&[Role::MlopsEngineer]);
    let clinical = Resource::Zone(Zone::Clinical);
    assert!(
        !ask(&base, &ops)
            .decide(Action::IngestDataset, &clinical)
            .allowed()
    );
    let d = ask(&authz, &ops).decide(Action::IngestDataset, &clinical);
    assert_eq!(d.reason(), "permit:mlops-ingest-clinical");
    assert!(
        !ask(&authz, &ops)
            .decide(Action::IngestDataset, &Resource::Zone(Zone::Development))
            .allowed()
    );
    // The defaults are still there, forbids included.
    let d = Ask {
        mfa: false,
        ..ask(&authz, &ops)
    }
    .decide(Action::IngestDataset, &clinical);
    assert_eq!(d.reason(), "forbid:mfa-required");
    assert!(
        authz
            .policy_ids()
            .contains(&"mlops-ingest-clinical".to_owned())
    );
    assert_eq!(authz.policy_ids().len(), base.policy_ids().len() + 1);
}

#[test]
fn replace_replaces() {
    let only = r#"
        @id("auditors-read")
        permit (
          principal in Airlock::Role::"auditor",
          action == Airlock::Action::"read-audit",
          resource
        );
    "#;
    let authz = Authorizer::with_policies(only, PolicyMode::Replace).unwrap();
    assert_eq!(authz.policy_ids(), ["auditors-read"]);
    let auditor = user(&[Role::Auditor]);
    // The default forbids are gone: no MFA needed any more.
    let d = Ask {
        mfa: false,
        ..ask(&authz, &auditor)
    }
    .decide(Action::ReadAudit, &Resource::Audit);
    assert_eq!(d.reason(), "permit:auditors-read");
    // The default permits are gone too.
    let d = ask(&authz, &auditor).decide(Action::VerifyAudit, &Resource::Audit);
    assert_eq!(d.reason(), "deny:default");
    let ds = user(&[Role::DataScientist]);
    let d = ask(&authz, &ds).decide(
        Action::ReadDataset,
        &dataset(Zone::Development, Classification::Synthetic),
    );
    assert_eq!(d.reason(), "deny:default");
    // Nothing at all: deny everything.
    let none = Authorizer::with_policies("", PolicyMode::Replace).unwrap();
    assert_eq!(
        ask(&none, &auditor)
            .decide(Action::ReadAudit, &Resource::Audit)
            .reason(),
        "deny:default"
    );
}

#[test]
fn a_policy_that_does_not_validate_is_refused_by_id() {
    let cases = [
        (
            "unknown-attribute",
            r#"@id("unknown-attribute")
               permit (principal, action == Airlock::Action::"read-dataset", resource is Airlock::Dataset)
               when { resource.owner == "alice" };"#,
        ),
        (
            "unknown-entity-type",
            r#"@id("unknown-entity-type")
               permit (principal, action, resource is Airlock::Bucket);"#,
        ),
        (
            "unknown-action",
            r#"@id("unknown-action")
               permit (principal, action == Airlock::Action::"delete-everything", resource);"#,
        ),
        (
            "unknown-role-type",
            r#"@id("unknown-role-type")
               permit (principal in Airlock::Group::"admins", action, resource);"#,
        ),
        (
            "unguarded-optional",
            r#"@id("unguarded-optional")
               permit (principal, action == Airlock::Action::"predict", resource)
               when { context.purpose == "treatment" };"#,
        ),
    ];
    for (id, text) in cases {
        for mode in [PolicyMode::Extend, PolicyMode::Replace] {
            let err = Authorizer::with_policies(text, mode).unwrap_err();
            match &err {
                AuthzError::Invalid { id: got, .. } => assert_eq!(got, id),
                other => panic!("{id}: expected Invalid, got {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(id), "{msg}");
            println!("{msg}");
        }
    }
}

#[test]
fn policies_need_a_unique_valid_id() {
    let no_id = r#"permit (principal, action, resource);"#;
    assert_eq!(
        Authorizer::with_policies(no_id, PolicyMode::Replace).unwrap_err(),
        AuthzError::MissingId { index: 0 }
    );
    let second = format!("{PERMIT_ALL}\n{no_id}");
    assert_eq!(
        Authorizer::with_policies(&second, PolicyMode::Replace).unwrap_err(),
        AuthzError::MissingId { index: 1 }
    );
    let dup = r#"@id("mfa-required") permit (principal, action, resource);"#;
    assert_eq!(
        Authorizer::with_policies(dup, PolicyMode::Extend).unwrap_err(),
        AuthzError::DuplicateId {
            id: "mfa-required".to_owned()
        }
    );
    let bad = r#"@id("Not OK") permit (principal, action, resource);"#;
    assert!(matches!(
        Authorizer::with_policies(bad, PolicyMode::Replace).unwrap_err(),
        AuthzError::InvalidId { .. }
    ));
    let template = r#"@id("tpl") permit (principal == ?principal, action, resource);"#;
    assert_eq!(
        Authorizer::with_policies(template, PolicyMode::Replace).unwrap_err(),
        AuthzError::Template {
            id: "tpl".to_owned()
        }
    );
    assert!(matches!(
        Authorizer::with_policies("permit (", PolicyMode::Replace).unwrap_err(),
        AuthzError::Parse { .. }
    ));
}

#[test]
fn texts_are_exposed_and_names_round_trip() {
    assert!(Authorizer::schema_text().contains("namespace Airlock"));
    assert!(Authorizer::default_policies_text().contains("@id(\"mfa-required\")"));
    for r in Role::ALL {
        assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            format!("\"{}\"", r.as_str())
        );
        assert_eq!(r.to_string(), r.as_str());
    }
    for a in Action::ALL {
        assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            format!("\"{}\"", a.as_str())
        );
        // Every action is declared in the schema under its name.
        assert!(
            Authorizer::schema_text().contains(&format!("action \"{}\"", a.as_str())),
            "{a}"
        );
    }
    assert!("root".parse::<Role>().is_err());
    assert!("delete".parse::<Action>().is_err());
}
