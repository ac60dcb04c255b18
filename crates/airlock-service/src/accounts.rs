//! People and services as the API and the CLI manage them: login and logout with their ledger
//! entries, who am I, principals and API tokens (each change a `config-change` entry).

use airlock_authz::{Action, PrincipalKind, Resource, Role};
use airlock_crypto::Secret;
use airlock_ledger::{Entry, EventType, OutcomeKind, Timestamp};
use airlock_types::{ActorId, RequestId, Zone};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::identity::{IdentityError, PrincipalRecord};
use crate::{Caller, LedgerResource, Service, ServiceError, anonymous};

/// A new login session: the bearer value is shown once.
#[derive(Serialize, JsonSchema)]
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// Absolute expiry (RFC 3339).
    #[schemars(with = "crate::schema::DateTime")]
    pub expires_at: String,
    /// Seconds of inactivity that end the session.
    pub idle_timeout_seconds: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Check a password and TOTP code; on success a session, and a `login` entry either way.
    /// A typed name is recorded only when it names a principal (it could be anything, a
    /// patient's name included).
    pub async fn login(
        &self,
        request_id: RequestId,
        source: Option<std::net::IpAddr>,
        username: &str,
        password: &Secret,
        totp: &str,
    ) -> Result<Session, ServiceError> {
        self.admit_login(source).await?;
        let entry = |actor, outcome, reason: &str| login_entry(&request_id, actor, outcome, reason);
        let (actor, outcome, reason, result) = match self
            .identities()
            .login(username, password, totp, chrono::Utc::now())
            .await
        {
            Ok((actor, session)) => (
                actor,
                OutcomeKind::Success,
                "password and TOTP",
                Ok(Session {
                    token: session.bearer(),
                    expires_at: session.expires_at,
                    idle_timeout_seconds: self.identities().policy().idle_timeout.num_seconds(),
                }),
            ),
            Err(IdentityError::BadCredentials) => (
                ActorId::new(username).unwrap_or_else(|_| anonymous()),
                OutcomeKind::Failure,
                "invalid credentials",
                Err(ServiceError::Unauthenticated),
            ),
            Err(IdentityError::CodeReused) => (
                ActorId::new(username).unwrap_or_else(|_| anonymous()),
                OutcomeKind::Failure,
                "TOTP code used already (right password)",
                Err(ServiceError::CodeReused),
            ),
            Err(IdentityError::UnknownPrincipal) => (
                anonymous(),
                OutcomeKind::Failure,
                "invalid credentials (unknown principal)",
                Err(ServiceError::Unauthenticated),
            ),
            // Answered as a wrong password: a distinct answer would say the name exists, and
            // would tell whoever locked the account that it worked. The ledger knows.
            Err(IdentityError::Locked { id, .. }) => (
                ActorId::new(id).unwrap_or_else(|_| anonymous()),
                OutcomeKind::Failure,
                "account locked",
                Err(ServiceError::Unauthenticated),
            ),
            Err(e) => return Err(ServiceError::internal(e)),
        };
        self.append(vec![entry(actor, outcome, reason)]).await?;
        result
    }
}

impl Service {
    /// Redeem an enrolment token (no session needed: the token is the credential). Recorded as
    /// the person's own `login` entry; a refusal as `anonymous`.
    pub async fn enrol(
        &self,
        request_id: RequestId,
        source: Option<std::net::IpAddr>,
        token: &str,
        password: &Secret,
    ) -> Result<Enrolled, ServiceError> {
        self.admit_login(source).await?;
        let entry = |actor, outcome, reason: &str| login_entry(&request_id, actor, outcome, reason);
        match self
            .identities()
            .enrol(token, password, chrono::Utc::now())
            .await
        {
            Ok((id, e)) => {
                self.append(vec![entry(
                    id.clone(),
                    OutcomeKind::Success,
                    "enrolled: own password and a new TOTP secret",
                )])
                .await?;
                Ok(Enrolled {
                    id,
                    otpauth_uri: e.otpauth_uri,
                })
            }
            Err(IdentityError::BadCredentials) => {
                self.append(vec![entry(
                    anonymous(),
                    OutcomeKind::Failure,
                    "enrolment refused: unknown, spent or expired token, or wrong password",
                )])
                .await?;
                Err(ServiceError::Unauthenticated)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A `login` entry for a request made before anyone authenticated.
fn login_entry(
    request_id: &RequestId,
    actor: ActorId,
    outcome: OutcomeKind,
    reason: &str,
) -> Entry {
    Entry::new(
        Timestamp::now(),
        actor,
        EventType::Login,
        Zone::Clinical,
        request_id.clone(),
        outcome,
    )
    .with_reason(reason.to_string())
}

/// Who the caller is, as the policy sees them.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhoAmI {
    /// The principal.
    pub id: ActorId,
    /// Person or service.
    pub kind: PrincipalKind,
    /// Roles held.
    pub roles: Vec<Role>,
    /// Whether a second factor was presented.
    pub mfa: bool,
    /// The zones whose data this principal may see at all.
    pub zones: Vec<Zone>,
}

/// What kind of principal to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum NewKind {
    /// A person: password and TOTP.
    User,
    /// A program: API tokens or a client certificate.
    Service,
}

/// A principal to create.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(schema_with = "crate::schema::new_principal")]
pub struct NewPrincipal {
    /// Its id.
    pub id: String,
    /// Person or service.
    pub kind: NewKind,
    /// The roles it holds (at least one).
    pub roles: Vec<Role>,
    /// A person's initial password.
    #[serde(default)]
    pub password: Option<String>,
    /// A clinician's practitioner identity in the clinical data (an NPI: system
    /// `http://hl7.org/fhir/sid/us-npi`), through which their treatment relationships are
    /// found; in effect with the clinician role, once a second person confirms it.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub practitioner: Option<crate::identity::PractitionerLink>,
}

impl std::fmt::Debug for NewPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPrincipal")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// A created principal; a person's enrolment token is shown once.
#[derive(Serialize, JsonSchema)]
pub struct CreatedPrincipal {
    /// Its id.
    pub id: ActorId,
    /// `user` or `service`.
    #[schemars(schema_with = "crate::schema::principal_kind")]
    pub kind: &'static str,
    /// A person's one-time enrolment token (they redeem it at `POST /v1/enrol`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrolment_token: Option<String>,
    /// When the token stops working (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::schema::DateTime>")]
    pub enrolment_expires_at: Option<String>,
    /// Roles granted but not in effect until a second person confirms them.
    pub pending_roles: Vec<Role>,
}

impl std::fmt::Debug for CreatedPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedPrincipal")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("pending_roles", &self.pending_roles)
            .finish_non_exhaustive()
    }
}

/// A principal's roles in effect.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RolesNow {
    /// The principal.
    pub id: ActorId,
    /// Roles in effect.
    pub roles: Vec<Role>,
}

/// A redeemed enrolment: the authenticator's URI, shown once to the person themselves.
#[derive(Serialize, JsonSchema)]
pub struct Enrolled {
    /// The person.
    pub id: ActorId,
    /// `otpauth://` for the authenticator app.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolled")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A new enrolment token for a person who lost their second factor.
#[derive(Serialize, JsonSchema)]
pub struct MfaReset {
    /// The person.
    pub id: ActorId,
    /// The one-time token (redeemed with their password at `POST /v1/enrol`).
    pub enrolment_token: String,
    /// When it stops working (RFC 3339).
    #[schemars(with = "crate::schema::DateTime")]
    pub enrolment_expires_at: String,
}

impl std::fmt::Debug for MfaReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaReset")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// An API token to issue.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The service it authenticates.
    #[schemars(with = "ActorId")]
    pub principal: String,
    /// The actions it may be used for.
    #[schemars(schema_with = "crate::schema::service_scopes")]
    pub scopes: Vec<Action>,
    /// Lifetime in days.
    #[serde(deserialize_with = "crate::json::integer")]
    #[schemars(schema_with = "crate::schema::token_days")]
    pub days: i64,
}

/// An issued API token: the bearer value is shown once.
#[derive(Serialize, JsonSchema)]
pub struct IssuedToken {
    /// The token's id (for revocation).
    pub id: String,
    /// The bearer value.
    pub token: String,
    /// Absolute expiry (RFC 3339).
    #[schemars(with = "crate::schema::DateTime")]
    pub expires_at: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// End this caller's session (`bearer` is the session token presented).
    pub async fn logout(&self, bearer: Option<&str>) -> Result<(), ServiceError> {
        if let Some(t) = bearer {
            self.service()
                .identities()
                .logout(t)
                .await
                .map_err(ServiceError::internal)?;
        }
        self.audit(
            self.entry(EventType::Login, Zone::Clinical, OutcomeKind::Success)
                .with_reason("logout"),
        )
        .await
    }

    /// Who the caller is.
    pub async fn whoami(&self) -> Result<WhoAmI, ServiceError> {
        self.audit(
            self.entry(EventType::Access, Zone::Clinical, OutcomeKind::Success)
                .with_resource(LedgerResource::Myself),
        )
        .await?;
        Ok(WhoAmI {
            id: self.who.principal.id.clone(),
            kind: self.who.principal.kind,
            roles: self.who.principal.roles.clone(),
            mfa: self.who.mfa,
            zones: Zone::ALL
                .into_iter()
                .filter(|z| self.home().scope().contains(*z))
                .collect(),
        })
    }

    /// Record an identity or token change made by this request.
    async fn config_change(
        &self,
        resource: LedgerResource,
        reason: impl Into<String>,
    ) -> Result<(), ServiceError> {
        self.audit(
            self.entry(
                EventType::ConfigChange,
                Zone::Clinical,
                OutcomeKind::Success,
            )
            .with_resource(resource)
            .with_reason(reason),
        )
        .await
    }

    /// Every principal, without secrets.
    pub async fn principals(&self) -> Result<Vec<PrincipalRecord>, ServiceError> {
        self.authorize(Action::ManageUsers, &Resource::Identities)
            .await?;
        Ok(self.service().identities().list().await?)
    }

    /// Create a person or a service. The request is decided before its body is looked at
    /// (`body` may be a refusal of the parser), so an unauthorized caller learns nothing from
    /// the validation. A person gets a one-time enrolment token instead of a password: whoever
    /// creates them never learns their password or second factor. Roles that reach PHI or
    /// approve models wait for a second person ([`Caller::confirm_role`]).
    pub async fn add_principal(
        &self,
        body: Result<NewPrincipal, ServiceError>,
    ) -> Result<CreatedPrincipal, ServiceError> {
        self.authorize(Action::ManageUsers, &Resource::Identities)
            .await?;
        let body = body?;
        let id = ActorId::new(body.id).map_err(|e| ServiceError::invalid("id", e.to_string()))?;
        if body.roles.is_empty() {
            return Err(ServiceError::invalid(
                "roles",
                "at least one role is required",
            ));
        }
        if body.password.is_some() {
            return Err(ServiceError::invalid(
                "password",
                "nobody sets another person's password: people set their own with the enrolment token",
            ));
        }
        let ids = self.service().identities();
        let by = self.who.principal.id.clone();
        let link = match &body.practitioner {
            None => None,
            Some(_) if body.kind != NewKind::User || !body.roles.contains(&Role::Clinician) => {
                return Err(ServiceError::invalid(
                    "practitioner",
                    "only a person granted the clinician role is linked to a practitioner",
                ));
            }
            Some(l) => Some(
                crate::identity::PractitionerLink::new(&l.system, &l.value)
                    .map_err(|e| ServiceError::invalid("practitioner", e.to_string()))?,
            ),
        };
        let out = match body.kind {
            NewKind::User => {
                let (token, pending) = ids.invite_user(&by, &id, &body.roles).await?;
                if let Some(l) = &link {
                    ids.link_practitioner_pending(&by, &id, l).await?;
                }
                CreatedPrincipal {
                    id: id.clone(),
                    kind: "user",
                    enrolment_token: Some(token.bearer()),
                    enrolment_expires_at: Some(token.expires_at),
                    pending_roles: pending,
                }
            }
            NewKind::Service => {
                let pending = ids.add_service_pending(&by, &id, &body.roles).await?;
                CreatedPrincipal {
                    id: id.clone(),
                    kind: "service",
                    enrolment_token: None,
                    enrolment_expires_at: None,
                    pending_roles: pending,
                }
            }
        };
        let roles = body.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>();
        let pending = out
            .pending_roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>();
        self.config_change(
            LedgerResource::Principal(id),
            format!(
                "principal created with roles {}{}; awaiting a second person: {}",
                roles.join(","),
                link.as_ref()
                    .map(|l| format!(" linked to practitioner {l}"))
                    .unwrap_or_default(),
                if pending.is_empty() {
                    "none".to_string()
                } else {
                    pending.join(",")
                }
            ),
        )
        .await?;
        Ok(out)
    }

    /// The second person of a role grant confirms it: the role takes effect. The policy says
    /// who may confirm (the privacy officer); the identity store refuses the granter and the
    /// grantee.
    pub async fn confirm_role(&self, id: &str, role: &str) -> Result<RolesNow, ServiceError> {
        self.authorize(Action::ConfirmRole, &Resource::Identities)
            .await?;
        let id = principal_id(id)?;
        let role: Role = role
            .parse()
            .map_err(|_| ServiceError::invalid("role", "is not a role"))?;
        let roles = self
            .service()
            .identities()
            .confirm_role(&self.who.principal.id, &id, role)
            .await?;
        self.config_change(
            LedgerResource::Principal(id.clone()),
            format!(
                "role {} confirmed by a second person; in effect",
                role.as_str()
            ),
        )
        .await?;
        Ok(RolesNow { id, roles })
    }

    /// Disable a principal: its sessions and tokens end.
    pub async fn disable_principal(&self, id: &str) -> Result<(), ServiceError> {
        self.authorize(Action::ManageUsers, &Resource::Identities)
            .await?;
        let id = principal_id(id)?;
        self.service().identities().disable(&id).await?;
        self.config_change(
            LedgerResource::Principal(id),
            "principal disabled; sessions and tokens ended",
        )
        .await
    }

    /// A new enrolment token for a person: they set up a new second factor with it and their
    /// password, so the administrator never sees the secret. Their current factor keeps
    /// working until they do.
    pub async fn reset_mfa(&self, id: &str) -> Result<MfaReset, ServiceError> {
        self.authorize(Action::ManageUsers, &Resource::Identities)
            .await?;
        let id = principal_id(id)?;
        let ids = self.service().identities();
        match ids.principal(&id).await? {
            None => return Err(ServiceError::NotFound { what: "principal" }),
            Some(p) if p.kind != "user" => {
                return Err(ServiceError::Conflict {
                    reason: "services authenticate with tokens, not MFA".into(),
                });
            }
            Some(_) => {}
        }
        let token = ids.enrolment_token(&self.who.principal.id, &id).await?;
        self.config_change(
            LedgerResource::Principal(id.clone()),
            "MFA re-enrolment token issued",
        )
        .await?;
        Ok(MfaReset {
            id,
            enrolment_token: token.bearer(),
            enrolment_expires_at: token.expires_at,
        })
    }

    /// Issue a scoped, expiring API token to a service (decided before `body` is looked at).
    pub async fn issue_token(
        &self,
        body: Result<NewToken, ServiceError>,
    ) -> Result<IssuedToken, ServiceError> {
        self.authorize(Action::ManageTokens, &Resource::Identities)
            .await?;
        let body = body?;
        let principal = ActorId::new(body.principal)
            .map_err(|e| ServiceError::invalid("principal", e.to_string()))?;
        let t = self
            .service()
            .identities()
            .issue_token(&principal, &body.scopes, body.days)
            .await?;
        self.config_change(
            LedgerResource::Token(t.id.clone()),
            format!("API token issued to {principal}, expires {}", t.expires_at),
        )
        .await?;
        Ok(IssuedToken {
            token: t.bearer(),
            id: t.id,
            expires_at: t.expires_at,
        })
    }

    /// Revoke an API token by id.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ServiceError> {
        self.authorize(Action::ManageTokens, &Resource::Identities)
            .await?;
        if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::NotFound { what: "token" });
        }
        match self.service().identities().revoke_token(id).await {
            // Unknown and already revoked read alike, as a token, not a principal.
            Err(IdentityError::NotFound { .. }) => {
                return Err(ServiceError::NotFound { what: "live token" });
            }
            other => other?,
        }
        self.config_change(LedgerResource::Token(id.to_string()), "API token revoked")
            .await
    }
}

fn principal_id(id: &str) -> Result<ActorId, ServiceError> {
    ActorId::new(id).map_err(|_| ServiceError::NotFound { what: "principal" })
}
