//! The Cedar engine behind [`Authorizer::decide`].
//!
//! Policies are loaded once: parsed, renamed to their `@id` (so Cedar's own diagnostics name
//! policies by the ids the ledger records), and validated against the schema in strict mode.
//! Each decision then builds two entities (the principal, `in` its roles, and the resource with
//! its attributes), picks one of the contexts built at load time, and asks Cedar. A request that
//! makes no sense (an action on the wrong kind of resource) is a deny with an error rather than a
//! silent non-match.
//!
//! Cedar evaluates every policy of the set it is given, and evaluating policies dominates the
//! cost of a decision. So at load time the set is cut into slices, one per (principal kind,
//! action, resource kind), each holding only the policies whose scope can match such a request:
//! `action == A`, `action in [...]` (the schema declares no action groups, so this is list
//! membership), `principal is T`, `resource is T`. Within a slice, a policy scoped to
//! `principal in Airlock::Role::"r"` is kept only for principals holding `r` (roles have no
//! parents, so a principal is `in` exactly its roles); the filtered set for each (slice, role set)
//! met is built once and cached. Policies whose scope cannot be decided that way go into every
//! slice. The answer is the same as with the whole set; a unit test checks it over every request
//! shape.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use airlock_types::Purpose;
use cedar_policy::{
    ActionConstraint, AuthorizationError, Context, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, ResourceConstraint,
    RestrictedExpression, Schema, ValidationMode, Validator,
};

use crate::decision::{Decision, Effect};
use crate::error::AuthzError;
use crate::vocab::{Action, Principal, PrincipalKind, Request, Resource, ResourceKind, Role};

const SCHEMA: &str = include_str!("../policies/airlock.cedarschema");
const DEFAULT_POLICIES: &str = include_str!("../policies/default.cedar");

/// How [`Authorizer::with_policies`] combines its text with the default policy set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyMode {
    /// Use only the given policies (deny by default still holds).
    Replace,
    /// Add the given policies to the default set; the default forbids still win.
    Extend,
}

/// The authorization engine: a policy set validated against the schema. Cheap to clone and shared
/// between threads (the state is behind an [`Arc`]).
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every policy, as loaded.
    policies: PolicySet,
    /// The same policies, sliced by the scope of the requests they can match.
    slices: HashMap<SliceKey, Vec<(Policy, RoleGate)>>,
    /// Slices filtered by the principal's roles, built on first use.
    cache: RwLock<HashMap<(SliceKey, u8), Arc<PolicySet>>>,
    cedar: cedar_policy::Authorizer,
    types: Types,
    /// Decisions already taken, by the hash of their request (see [`Memo`]).
    memo: RwLock<Memo>,
}

/// At most this many decisions are remembered; the memo is emptied when full.
const MEMO_MAX_ENTRIES: usize = 4096;

/// Decisions already taken. A decision is a pure function of the request (principal with
/// roles, action, resource with its attributes, purpose, break-glass, MFA) and the policy set,
/// which is fixed for an [`Authorizer`]; nothing else reaches Cedar (no clock, no store). So
/// a request equal in every field to one decided before gets the same decision without
/// evaluating the policies again: an EHR integration asks the same question thousands of
/// times a second. Entries are found by a hash of the request and confirmed by comparing
/// every field.
#[derive(Default)]
struct Memo {
    by_hash: HashMap<u64, Vec<(MemoKey, Decision)>>,
    len: usize,
}

/// Everything a decision depends on, owned.
#[derive(PartialEq, Eq)]
struct MemoKey {
    principal: Principal,
    action: Action,
    resource: Resource,
    purpose: Option<Purpose>,
    break_glass: bool,
    mfa: bool,
}

impl MemoKey {
    fn of(req: &Request<'_>) -> MemoKey {
        MemoKey {
            principal: req.principal.clone(),
            action: req.action,
            resource: req.resource.clone(),
            purpose: req.purpose,
            break_glass: req.break_glass,
            mfa: req.mfa,
        }
    }

    fn is(&self, req: &Request<'_>) -> bool {
        self.principal == *req.principal
            && self.action == req.action
            && self.resource == *req.resource
            && self.purpose == req.purpose
            && self.break_glass == req.break_glass
            && self.mfa == req.mfa
    }
}

/// The memo's hash of a request (fixed keys: a collision only costs a comparison).
fn request_hash(req: &Request<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    req.principal.hash(&mut h);
    req.action.hash(&mut h);
    req.resource.hash(&mut h);
    req.purpose.hash(&mut h);
    req.break_glass.hash(&mut h);
    req.mfa.hash(&mut h);
    h.finish()
}

/// What a slice of the policy set is for.
type SliceKey = (PrincipalKind, Action, ResourceKind);

/// Which principals a policy's scope admits, as far as roles go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoleGate {
    /// Any principal (the scope does not name a role).
    Any,
    /// Only principals holding this role.
    Role(Role),
    /// No principal: the scope names a role that does not exist.
    Nobody,
}

/// Entity type names, parsed once.
struct Types {
    user: EntityTypeName,
    service: EntityTypeName,
    zone: EntityTypeName,
    dataset: EntityTypeName,
    model: EntityTypeName,
    audit: EntityTypeName,
    identities: EntityTypeName,
    keys: EntityTypeName,
    patient: EntityTypeName,
    role: EntityTypeName,
    /// One uid per action, in [`Action::ALL`] order.
    actions: Vec<EntityUid>,
    /// One uid per role, in [`Role::ALL`] order.
    roles: Vec<EntityUid>,
    /// Every possible context: purpose (none, then [`Purpose::ALL`]) × break-glass × MFA.
    contexts: Vec<Context>,
}

impl Authorizer {
    /// The built-in schema with the default policy set.
    pub fn new() -> Result<Self, AuthzError> {
        Self::build(DEFAULT_POLICIES)
    }

    /// The built-in schema with `text` as the policy set ([`PolicyMode::Replace`]) or added to
    /// the default one ([`PolicyMode::Extend`]). Every policy needs a unique `@id` and must
    /// validate against the schema in strict mode.
    pub fn with_policies(text: &str, mode: PolicyMode) -> Result<Self, AuthzError> {
        match mode {
            PolicyMode::Replace => Self::build(text),
            PolicyMode::Extend => {
                let mut all = String::with_capacity(DEFAULT_POLICIES.len() + text.len() + 1);
                all.push_str(DEFAULT_POLICIES);
                all.push('\n');
                all.push_str(text);
                Self::build(&all)
            }
        }
    }

    /// The schema policies are validated against (Cedar schema syntax).
    pub fn schema_text() -> &'static str {
        SCHEMA
    }

    /// The default policy set (Cedar policy syntax).
    pub fn default_policies_text() -> &'static str {
        DEFAULT_POLICIES
    }

    /// The `@id`s of the loaded policies, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .inner
            .policies
            .policies()
            .map(|p| p.id().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// May this principal do this, here, for this purpose? Never panics; anything that goes
    /// wrong is a deny with an error.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        let hash = request_hash(req);
        if let Ok(memo) = self.inner.memo.read()
            && let Some((_, d)) = memo
                .by_hash
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|(k, _)| k.is(req)))
        {
            return d.clone();
        }
        let decision = self.decide_uncached(req);
        if let Ok(mut memo) = self.inner.memo.write() {
            if memo.len >= MEMO_MAX_ENTRIES {
                memo.by_hash.clear();
                memo.len = 0;
            }
            let bucket = memo.by_hash.entry(hash).or_default();
            if !bucket.iter().any(|(k, _)| k.is(req)) {
                bucket.push((MemoKey::of(req), decision.clone()));
                memo.len += 1;
            }
        }
        decision
    }

    /// [`Authorizer::decide`] evaluating the policies every time, without the memo of
    /// decisions already taken (for benchmarks and tests that compare the two).
    pub fn decide_uncached(&self, req: &Request<'_>) -> Decision {
        match self.policies_for(req) {
            Some(set) => self.decide_with(req, &set),
            // No slice: the action does not apply to this kind of resource; `decide_with` says so.
            None => self.decide_with(req, &self.inner.policies),
        }
    }

    /// The slice of the policy set for this request's shape and the principal's roles.
    fn policies_for(&self, req: &Request<'_>) -> Option<Arc<PolicySet>> {
        let key = (req.principal.kind, req.action, req.resource.kind());
        let mask = role_mask(&req.principal.roles);
        if let Ok(cache) = self.inner.cache.read()
            && let Some(set) = cache.get(&(key, mask))
        {
            return Some(Arc::clone(set));
        }
        let slice = self.inner.slices.get(&key)?;
        let mut set = PolicySet::new();
        for (policy, gate) in slice {
            let admitted = match gate {
                RoleGate::Any => true,
                RoleGate::Role(role) => mask & role_bit(*role) != 0,
                RoleGate::Nobody => false,
            };
            // Ids are unique in the whole set, so adding cannot fail.
            if admitted && set.add(policy.clone()).is_err() {
                return None;
            }
        }
        let set = Arc::new(set);
        if let Ok(mut cache) = self.inner.cache.write() {
            cache.insert((key, mask), Arc::clone(&set));
        }
        Some(set)
    }

    fn decide_with(&self, req: &Request<'_>, policies: &PolicySet) -> Decision {
        let inner = &*self.inner;
        let t = &inner.types;

        // The schema's `appliesTo`, checked here rather than by Cedar's request validation,
        // which costs more than the rest of the decision (a unit test keeps the two in step).
        if !req.action.resource_kinds().contains(&req.resource.kind()) {
            return Decision::error(format!(
                "`{}` does not apply to a `{}` resource",
                req.action,
                req.resource.kind()
            ));
        }
        let (Some(action_uid), Some(context)) = (
            t.action_uid(req.action),
            t.context(req.purpose, req.break_glass, req.mfa),
        ) else {
            return Decision::error("request construction failed".to_owned());
        };

        let (principal_uid, principal) = principal_entity(t, req.principal);
        let (resource_uid, resource) = resource_entity(t, req.resource);
        let (Ok(principal), Ok(resource)) = (principal, resource) else {
            return Decision::error("entity construction failed".to_owned());
        };
        // Entities and context are built from typed values by this module only, so they conform
        // to the schema by construction (tested below); checking again per request would cost
        // more than the decision itself.
        let Ok(entities) = Entities::from_entities([principal, resource], None) else {
            return Decision::error("entity construction failed".to_owned());
        };
        let Ok(request) = cedar_policy::Request::new(
            principal_uid,
            action_uid.clone(),
            resource_uid,
            context.clone(),
            None,
        ) else {
            return Decision::error("request construction failed".to_owned());
        };

        let response = inner.cedar.is_authorized(&request, policies, &entities);
        let effect = match response.decision() {
            cedar_policy::Decision::Allow => Effect::Allow,
            cedar_policy::Decision::Deny => Effect::Deny,
        };
        let diagnostics = response.diagnostics();
        let mut policies: Vec<String> = diagnostics.reason().map(|id| id.to_string()).collect();
        policies.sort();
        // Cedar's evaluation messages can quote attribute values; keep only the policy id.
        let mut errors: Vec<String> = diagnostics
            .errors()
            .map(|e| match e {
                AuthorizationError::PolicyEvaluationError(e) => {
                    format!("policy `{}` failed to evaluate", e.policy_id())
                }
            })
            .collect();
        errors.sort();
        Decision {
            effect,
            policies,
            errors,
        }
    }

    fn build(text: &str) -> Result<Self, AuthzError> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| AuthzError::Schema {
                message: e.to_string(),
            })?;
        let policies = load_policies(text, &schema)?;
        let types = Types::new()?;
        let slices = slice(&policies, &types)?;
        Ok(Authorizer {
            inner: Arc::new(Inner {
                policies,
                slices,
                cache: RwLock::new(HashMap::new()),
                cedar: cedar_policy::Authorizer::new(),
                types,
                memo: RwLock::new(Memo::default()),
            }),
        })
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("policies", &self.inner.policies.policies().count())
            .finish()
    }
}

impl Types {
    fn new() -> Result<Self, AuthzError> {
        let name = |n: &str| {
            EntityTypeName::from_str(&format!("Airlock::{n}")).map_err(|e| AuthzError::Schema {
                message: e.to_string(),
            })
        };
        let action = name("Action")?;
        let role = name("Role")?;
        let actions = Action::ALL
            .iter()
            .map(|a| EntityUid::from_type_name_and_id(action.clone(), EntityId::new(a.as_str())))
            .collect();
        let roles = Role::ALL
            .iter()
            .map(|r| EntityUid::from_type_name_and_id(role.clone(), EntityId::new(r.as_str())))
            .collect();
        let mut contexts = Vec::with_capacity((Purpose::ALL.len() + 1) * 4);
        for purpose in purposes() {
            for break_glass in [false, true] {
                for mfa in [false, true] {
                    contexts.push(build_context(purpose, break_glass, mfa)?);
                }
            }
        }
        Ok(Types {
            user: name("User")?,
            service: name("Service")?,
            zone: name(ResourceKind::Zone.as_str())?,
            dataset: name(ResourceKind::Dataset.as_str())?,
            model: name(ResourceKind::Model.as_str())?,
            audit: name(ResourceKind::Audit.as_str())?,
            identities: name(ResourceKind::Identities.as_str())?,
            keys: name(ResourceKind::Keys.as_str())?,
            patient: name(ResourceKind::Patient.as_str())?,
            role,
            actions,
            roles,
            contexts,
        })
    }

    fn action_uid(&self, action: Action) -> Option<&EntityUid> {
        let i = Action::ALL.iter().position(|a| *a == action)?;
        self.actions.get(i)
    }

    fn principal_type(&self, kind: PrincipalKind) -> &EntityTypeName {
        match kind {
            PrincipalKind::User => &self.user,
            PrincipalKind::Service => &self.service,
        }
    }

    fn resource_type(&self, kind: ResourceKind) -> &EntityTypeName {
        match kind {
            ResourceKind::Zone => &self.zone,
            ResourceKind::Dataset => &self.dataset,
            ResourceKind::Model => &self.model,
            ResourceKind::Audit => &self.audit,
            ResourceKind::Identities => &self.identities,
            ResourceKind::Keys => &self.keys,
            ResourceKind::Patient => &self.patient,
        }
    }

    fn role_uid(&self, role: Role) -> Option<&EntityUid> {
        let i = Role::ALL.iter().position(|r| *r == role)?;
        self.roles.get(i)
    }

    fn context(&self, purpose: Option<Purpose>, break_glass: bool, mfa: bool) -> Option<&Context> {
        let p = purposes().position(|q| q == purpose)?;
        self.contexts
            .get(p * 4 + usize::from(break_glass) * 2 + usize::from(mfa))
    }
}

/// No purpose, then each purpose of use.
fn purposes() -> impl Iterator<Item = Option<Purpose>> {
    std::iter::once(None).chain(Purpose::ALL.into_iter().map(Some))
}

fn build_context(
    purpose: Option<Purpose>,
    break_glass: bool,
    mfa: bool,
) -> Result<Context, AuthzError> {
    let mut pairs = vec![
        (
            "break_glass".to_owned(),
            RestrictedExpression::new_bool(break_glass),
        ),
        ("mfa".to_owned(), RestrictedExpression::new_bool(mfa)),
    ];
    if let Some(p) = purpose {
        pairs.push((
            "purpose".to_owned(),
            RestrictedExpression::new_string(p.as_str().to_owned()),
        ));
    }
    Context::from_pairs(pairs).map_err(|e| AuthzError::Schema {
        message: e.to_string(),
    })
}

/// The principal as a Cedar entity, `in` each of its roles.
fn principal_entity(
    t: &Types,
    principal: &Principal,
) -> (
    EntityUid,
    Result<Entity, cedar_policy::EntityAttrEvaluationError>,
) {
    let ty = t.principal_type(principal.kind);
    let uid = EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(principal.id.as_str()));
    let roles: HashSet<EntityUid> = principal
        .roles
        .iter()
        .filter_map(|r| t.role_uid(*r).cloned())
        .collect();
    let entity = Entity::new(
        uid.clone(),
        HashMap::from([(
            "actor".to_owned(),
            RestrictedExpression::new_string(principal.id.as_str().to_owned()),
        )]),
        roles,
    );
    (uid, entity)
}

/// The resource as a Cedar entity. Singletons and patients get a fixed id: policy never needs
/// to know which patient, and the id never reaches a decision.
fn resource_entity(
    t: &Types,
    resource: &Resource,
) -> (
    EntityUid,
    Result<Entity, cedar_policy::EntityAttrEvaluationError>,
) {
    let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
    let uid = |ty: &EntityTypeName, id: &str| {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    };
    match resource {
        Resource::Zone(zone) => {
            let u = uid(&t.zone, zone.as_str());
            let e = Entity::new(
                u.clone(),
                HashMap::from([("zone".to_owned(), string(zone.as_str()))]),
                HashSet::new(),
            );
            (u, e)
        }
        Resource::Dataset {
            name,
            zone,
            classification,
        } => {
            let u = uid(&t.dataset, name);
            let e = Entity::new(
                u.clone(),
                HashMap::from([
                    ("zone".to_owned(), string(zone.as_str())),
                    ("classification".to_owned(), string(classification.as_str())),
                ]),
                HashSet::new(),
            );
            (u, e)
        }
        Resource::Model {
            name,
            zone,
            trained_by,
            state,
        } => {
            let u = uid(&t.model, name);
            let mut attrs = HashMap::from([
                ("zone".to_owned(), string(zone.as_str())),
                ("state".to_owned(), string(state)),
            ]);
            if let Some(actor) = trained_by {
                attrs.insert("trained_by".to_owned(), string(actor.as_str()));
            }
            let e = Entity::new(u.clone(), attrs, HashSet::new());
            (u, e)
        }
        Resource::Patient { zone } => {
            let u = uid(&t.patient, "patient");
            let e = Entity::new(
                u.clone(),
                HashMap::from([("zone".to_owned(), string(zone.as_str()))]),
                HashSet::new(),
            );
            (u, e)
        }
        Resource::Audit => {
            let u = uid(&t.audit, "audit");
            (u.clone(), Ok(Entity::new_no_attrs(u, HashSet::new())))
        }
        Resource::Identities => {
            let u = uid(&t.identities, "identities");
            (u.clone(), Ok(Entity::new_no_attrs(u, HashSet::new())))
        }
        Resource::Keys => {
            let u = uid(&t.keys, "keys");
            (u.clone(), Ok(Entity::new_no_attrs(u, HashSet::new())))
        }
    }
}

/// Cut the policy set into one slice per request shape the schema allows.
fn slice(
    policies: &PolicySet,
    t: &Types,
) -> Result<HashMap<SliceKey, Vec<(Policy, RoleGate)>>, AuthzError> {
    let mut slices = HashMap::new();
    for kind in [PrincipalKind::User, PrincipalKind::Service] {
        for action in Action::ALL {
            let Some(action_uid) = t.action_uid(action) else {
                continue;
            };
            for resource in action.resource_kinds() {
                let mut list = Vec::new();
                for policy in policies.policies() {
                    if may_match(
                        policy,
                        t.principal_type(kind),
                        action_uid,
                        t.resource_type(*resource),
                    ) {
                        list.push((policy.clone(), role_gate(policy, t)));
                    }
                }
                slices.insert((kind, action, *resource), list);
            }
        }
    }
    Ok(slices)
}

/// The role a policy's scope requires, if it is `principal in Airlock::Role::"r"`.
fn role_gate(policy: &Policy, t: &Types) -> RoleGate {
    let group = match policy.principal_constraint() {
        PrincipalConstraint::In(uid) | PrincipalConstraint::IsIn(_, uid) => uid,
        PrincipalConstraint::Any | PrincipalConstraint::Eq(_) | PrincipalConstraint::Is(_) => {
            return RoleGate::Any;
        }
    };
    if group.type_name() != &t.role {
        return RoleGate::Any;
    }
    Role::ALL
        .into_iter()
        .find(|r| r.as_str() == group.id().unescaped())
        .map_or(RoleGate::Nobody, RoleGate::Role)
}

/// One bit per role, in [`Role::ALL`] order (seven roles fit in a `u8`).
fn role_bit(role: Role) -> u8 {
    Role::ALL
        .iter()
        .position(|r| *r == role)
        .map_or(0, |i| 1u8 << i)
}

fn role_mask(roles: &[Role]) -> u8 {
    roles.iter().fold(0, |m, r| m | role_bit(*r))
}

/// Whether a policy's scope can match a request of this shape. `false` only when the scope
/// rules the request out whatever the entities say.
fn may_match(
    policy: &Policy,
    principal: &EntityTypeName,
    action: &EntityUid,
    resource: &EntityTypeName,
) -> bool {
    let principal_ok = match policy.principal_constraint() {
        PrincipalConstraint::Any | PrincipalConstraint::In(_) => true,
        PrincipalConstraint::Eq(uid) => uid.type_name() == principal,
        PrincipalConstraint::Is(ty) | PrincipalConstraint::IsIn(ty, _) => &ty == principal,
    };
    let action_ok = match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => &uid == action,
        ActionConstraint::In(uids) => uids.contains(action),
    };
    let resource_ok = match policy.resource_constraint() {
        ResourceConstraint::Any | ResourceConstraint::In(_) => true,
        ResourceConstraint::Eq(uid) => uid.type_name() == resource,
        ResourceConstraint::Is(ty) | ResourceConstraint::IsIn(ty, _) => &ty == resource,
    };
    principal_ok && action_ok && resource_ok
}

/// Parse `text`, rename every policy to its `@id`, and validate the set in strict mode.
fn load_policies(text: &str, schema: &Schema) -> Result<PolicySet, AuthzError> {
    let parsed = PolicySet::from_str(text).map_err(|e| AuthzError::Parse {
        message: first_line(&e.to_string()),
    })?;
    if let Some(t) = parsed.templates().next() {
        let id = t
            .annotation("id")
            .map_or_else(|| t.id().to_string(), str::to_owned);
        return Err(AuthzError::Template { id: truncate(&id) });
    }

    // Cedar names parsed policies `policy0`, `policy1`, ... in text order.
    let mut ordered: Vec<(usize, &Policy)> =
        parsed.policies().map(|p| (position(p.id()), p)).collect();
    ordered.sort_by_key(|(i, _)| *i);

    let mut set = PolicySet::new();
    let mut seen = HashSet::new();
    for (index, policy) in ordered {
        let id = policy
            .annotation("id")
            .ok_or(AuthzError::MissingId { index })?;
        if !valid_id(id) {
            return Err(AuthzError::InvalidId { id: truncate(id) });
        }
        if !seen.insert(id.to_owned()) {
            return Err(AuthzError::DuplicateId { id: id.to_owned() });
        }
        set.add(policy.new_id(PolicyId::new(id)))
            .map_err(|_| AuthzError::DuplicateId { id: id.to_owned() })?;
    }

    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    let mut errors: Vec<_> = result.validation_errors().collect();
    errors.sort_by_key(|e| e.policy_id().to_string());
    if let Some((first, rest)) = errors.split_first() {
        let id = first.policy_id().to_string();
        let message = first_line(&first.to_string());
        // Cedar starts its message with the policy id, which the error already names.
        let problem = message
            .strip_prefix(&format!("for policy `{id}`, "))
            .map_or_else(|| message.clone(), str::to_owned);
        return Err(AuthzError::Invalid {
            id,
            problem,
            more: rest.len(),
        });
    }
    Ok(set)
}

/// The position Cedar gave a parsed policy (`policy7` → 7).
fn position(id: &PolicyId) -> usize {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Ids go into ledger reasons: short, lowercase, no spaces or punctuation beyond `-`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorizer_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Authorizer>();
    }

    #[test]
    fn default_policies_load_with_ids() {
        let a = Authorizer::new().unwrap();
        let ids = a.policy_ids();
        assert!(ids.iter().any(|i| i == "mfa-required"));
        assert!(ids.iter().all(|i| valid_id(i)));
    }

    fn schema() -> Schema {
        Schema::from_cedarschema_str(SCHEMA).unwrap().0
    }

    fn every_resource() -> Vec<Resource> {
        use airlock_types::{ActorId, Classification, Zone};
        let mut out = vec![Resource::Audit, Resource::Identities, Resource::Keys];
        for zone in Zone::ALL {
            out.push(Resource::Zone(zone));
            out.push(Resource::Patient { zone });
            for classification in Classification::ALL {
                out.push(Resource::Dataset {
                    name: "d".to_owned(),
                    zone,
                    classification,
                });
            }
            for trained_by in [None, Some(ActorId::new("bob").unwrap())] {
                out.push(Resource::Model {
                    name: "m".to_owned(),
                    zone,
                    trained_by,
                    state: "approved".to_owned(),
                });
            }
        }
        out
    }

    /// `decide` skips Cedar's schema checks for speed; here they are, for everything it builds.
    #[test]
    fn what_decide_builds_conforms_to_the_schema() {
        use airlock_types::ActorId;
        let schema = schema();
        let t = Types::new().unwrap();
        for kind in [PrincipalKind::User, PrincipalKind::Service] {
            let p = Principal {
                id: ActorId::new("alice").unwrap(),
                kind,
                roles: Role::ALL.to_vec(),
            };
            for r in every_resource() {
                let (p_uid, p_entity) = principal_entity(&t, &p);
                let (r_uid, r_entity) = resource_entity(&t, &r);
                Entities::from_entities([p_entity.unwrap(), r_entity.unwrap()], Some(&schema))
                    .unwrap();
                for action in Action::ALL {
                    for purpose in purposes() {
                        for bg in [false, true] {
                            for mfa in [false, true] {
                                let checked = cedar_policy::Request::new(
                                    p_uid.clone(),
                                    t.action_uid(action).unwrap().clone(),
                                    r_uid.clone(),
                                    t.context(purpose, bg, mfa).unwrap().clone(),
                                    Some(&schema),
                                );
                                // The crate's own `appliesTo` table agrees with the schema's.
                                assert_eq!(
                                    checked.is_ok(),
                                    action.resource_kinds().contains(&r.kind()),
                                    "{action} on {}",
                                    r.kind()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Slicing changes nothing: the same decision, policies and errors as with the whole set,
    /// for every request shape, under the default policies and under an extension that permits
    /// everything (so that the forbids are exercised everywhere).
    #[test]
    fn slices_decide_like_the_whole_set() {
        use airlock_types::ActorId;
        let open = Authorizer::with_policies(
            r#"@id("permit-everything") permit (principal, action, resource);
               @id("no-such-role") forbid (principal in Airlock::Role::"nurse", action, resource);"#,
            PolicyMode::Extend,
        )
        .unwrap();
        let mut compared = 0;
        for authz in [Authorizer::new().unwrap(), open] {
            let total = authz.policy_ids().len();
            assert!(authz.inner.slices.values().all(|s| s.len() < total));
            for kind in [PrincipalKind::User, PrincipalKind::Service] {
                let p = Principal {
                    id: ActorId::new("bob").unwrap(),
                    kind,
                    roles: Role::ALL.to_vec(),
                };
                let no_roles = Principal {
                    roles: Vec::new(),
                    ..p.clone()
                };
                let subsets: Vec<Principal> = [p.clone(), no_roles]
                    .into_iter()
                    .chain(Role::ALL.into_iter().map(|r| Principal {
                        roles: vec![r],
                        ..p.clone()
                    }))
                    .collect();
                for p in &subsets {
                    for r in every_resource() {
                        for action in Action::ALL {
                            // Slicing does not look at the context; three purposes
                            // exercise every permit and forbid that does.
                            for purpose in
                                [None, Some(Purpose::Treatment), Some(Purpose::Emergency)]
                            {
                                for break_glass in [false, true] {
                                    for mfa in [false, true] {
                                        let req = Request {
                                            principal: p,
                                            action,
                                            resource: &r,
                                            purpose,
                                            break_glass,
                                            mfa,
                                        };
                                        assert_eq!(
                                            authz.decide(&req),
                                            authz.decide_with(&req, &authz.inner.policies),
                                            "{action} on {:?}",
                                            r
                                        );
                                        compared += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 50_000, "{compared}");
    }

    #[test]
    fn contexts_are_indexed_right() {
        let t = Types::new().unwrap();
        for purpose in purposes() {
            for bg in [false, true] {
                for mfa in [false, true] {
                    let want = build_context(purpose, bg, mfa).unwrap();
                    assert_eq!(t.context(purpose, bg, mfa), Some(&want));
                }
            }
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("no-self-approval"));
        assert!(!valid_id(""));
        assert!(!valid_id("Has Space"));
        assert_eq!(position(&PolicyId::new("policy12")), 12);
    }
}
