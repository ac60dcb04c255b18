//! Change control plans (issue 19) for callers: propose one (those who may register model
//! versions), approve it (the quorum's roles, as for a version), list them, and update a model
//! under one. The plan's rules live in `airlock_registry::plan`; here the policy decides who
//! asks, and the rollout the plan sets is enforced where a plan-approved version deploys.

use airlock_authz::{Action, Role};
use airlock_ledger::{Display, EventType, Filter};
use airlock_registry::plan::{PlanRecord, UpdateOutcome, UpdateRequest};
use airlock_registry::{ModelName, ModelVersion, State};
use airlock_types::Zone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::models::{check_reason, model_name, resource};
use crate::{Caller, ServiceError};

/// A plan to propose.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// The plan document (TOML: `plan`, `model`, `[[modification]]`, `[verification]`,
    /// `[rollout]`).
    #[schemars(length(min = 1, max = 65536))]
    pub text: String,
}

/// One role's approval of a plan.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanApproveBody {
    /// The role approved as (one the quorum needs, held by the caller).
    pub role: Role,
    /// Why.
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
}

/// A model's plans.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanList {
    /// Every version of every plan of the model.
    pub plans: Vec<PlanRecord>,
}

/// An update under a plan.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The plan, `name` or `name@version`.
    #[schemars(length(min = 1, max = 100))]
    pub plan: String,
    /// The version replaced (a hash prefix).
    #[schemars(length(min = 6, max = 64))]
    pub from: String,
    /// The newer version of its training dataset, `name@version`.
    #[schemars(length(min = 1, max = 200))]
    pub dataset: String,
    /// Held-out data both versions are validated on, `name[@version]`.
    #[schemars(length(min = 1, max = 200))]
    pub validate_on: String,
    /// Different features (refused: a plan keeps them).
    pub features: Option<Vec<String>>,
    /// A different family (refused).
    pub family: Option<String>,
    /// A different target (refused).
    pub target: Option<String>,
    /// Why.
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
}

impl Caller {
    /// A model's latest version, for the policy's view of the model.
    async fn latest_version(&self, name: &ModelName) -> Result<ModelVersion, ServiceError> {
        self.registry()
            .versions(name)
            .await?
            .into_iter()
            .last()
            .ok_or(ServiceError::NotFound { what: "model" })
    }

    /// Propose a plan for a model (a new version of the plan, `proposed`).
    pub async fn propose_plan(
        &self,
        name: &str,
        body: PlanBody,
    ) -> Result<PlanRecord, ServiceError> {
        let name = model_name(name)?;
        let v = self.latest_version(&name).await?;
        // Plans are written where models are trained.
        self.authorize(Action::RegisterModel, &resource(&v, Zone::Development))
            .await?;
        let doc = airlock_registry::plan::PlanDoc::parse(&body.text).map_err(ServiceError::from)?;
        if doc.model != name.as_str() {
            return Err(ServiceError::invalid(
                "text",
                format!("the plan governs {}, not {name}", doc.model),
            ));
        }
        self.registry()
            .propose_plan(&body.text)
            .await
            .map_err(ServiceError::from)
    }

    /// A model's plans.
    pub async fn model_plans(&self, name: &str) -> Result<PlanList, ServiceError> {
        let name = model_name(name)?;
        let v = self.latest_version(&name).await?;
        self.authorize(Action::ReadModel, &resource(&v, v.zone))
            .await?;
        Ok(PlanList {
            plans: self
                .registry()
                .plans(&name)
                .await
                .map_err(ServiceError::from)?,
        })
    }

    /// One role's approval of a plan.
    pub async fn approve_plan(
        &self,
        name: &str,
        plan: &str,
        body: PlanApproveBody,
    ) -> Result<PlanRecord, ServiceError> {
        let name = model_name(name)?;
        let v = self.latest_version(&name).await?;
        self.authorize_approval(&v, body.role).await?;
        let reg = self.registry();
        let p = reg.plan(plan).await.map_err(ServiceError::from)?;
        if p.model != name.as_str() {
            return Err(ServiceError::NotFound { what: "plan" });
        }
        reg.approve_plan(
            &format!("{}@{}", p.name, p.version),
            body.role.as_str(),
            check_reason(&body.reason)?,
        )
        .await
        .map_err(ServiceError::from)
    }

    /// Retrain a model under an approved plan; a conforming version is approved by the plan.
    pub async fn update_model(
        &self,
        name: &str,
        body: UpdateBody,
    ) -> Result<UpdateOutcome, ServiceError> {
        let name = model_name(name)?;
        let reg = self.registry();
        let from = reg.get(&name, &body.from).await?;
        // The candidate is registered in development, as any trained version.
        self.authorize(Action::RegisterModel, &resource(&from, Zone::Development))
            .await?;
        let reason = check_reason(&body.reason)?;
        // Training and validation read rows: the policy decides as for downloads.
        for spec in [&body.dataset, &body.validate_on] {
            let (ds, ver) = airlock_store::parse_version_spec(spec)
                .map_err(|e| ServiceError::invalid("dataset", e.to_string()))?;
            let held = self.find_version(ds.as_str(), ver.map(|v| v.get())).await?;
            self.authorize(Action::DownloadDataset, &crate::datasets::resource(&held))
                .await?;
        }
        airlock_registry::plan::update_under_plan(
            self.home(),
            &reg,
            &UpdateRequest {
                plan: body.plan,
                model: name,
                from: body.from,
                dataset: body.dataset,
                validate_on: body.validate_on,
                features: body.features,
                family: body.family,
                target: body.target,
            },
            reason,
        )
        .await
        .map_err(|e| match e {
            airlock_registry::RegistryError::Data { reason } => {
                ServiceError::invalid("dataset", reason)
            }
            e => e.into(),
        })
    }

    /// After an outcome for `prediction`: when it was shown by a canary that a plan approved
    /// and the canary's realised AUROC has fallen below the plan's rollback trigger, roll the
    /// canary back (as the deployment's operator, the trigger's reason in the ledger).
    pub(crate) async fn plan_rollback_trigger(
        &self,
        prediction: &airlock_ledger::Prediction,
    ) -> Result<(), ServiceError> {
        let Ok(name) = model_name(&prediction.model) else {
            return Ok(());
        };
        let operator = self.service().registry();
        let Some(canary) = operator
            .versions(&name)
            .await?
            .into_iter()
            .find(|v| v.state == State::Canary && v.hash == prediction.version_hash)
        else {
            return Ok(());
        };
        let Some(plan) = operator.approving_plan(&canary.hash).await? else {
            return Ok(());
        };
        if plan.document.rollout.rollback_auroc_below.is_none() {
            return Ok(());
        }
        let report = self.comparison(&operator, &name).await?;
        let hex = canary.hash.to_hex();
        let due = report
            .versions
            .iter()
            .find(|s| s.version == hex)
            .and_then(|s| plan.document.rollout.rollback_due(s.labelled, s.auroc));
        if let Some(why) = due {
            operator
                .rollback(
                    &name,
                    &format!(
                        "rollback trigger of change control plan {}@{}: {why}",
                        plan.name, plan.version
                    ),
                )
                .await?;
            self.service().deployment(true).await?;
        }
        Ok(())
    }

    /// The rollout of a version a plan approved: a canary no larger than the plan allows, and
    /// only after the silent predictions it asks for (counted in the ledger).
    pub(crate) async fn check_plan_rollout(
        &self,
        v: &ModelVersion,
        to: State,
        share_bp: Option<u16>,
    ) -> Result<(), ServiceError> {
        if to != State::Canary {
            return Ok(());
        }
        let Some(plan) = self.registry().approving_plan(&v.hash).await? else {
            return Ok(());
        };
        let rollout = &plan.document.rollout;
        let percent = f64::from(share_bp.unwrap_or(0)) / 100.0;
        if percent > rollout.max_canary_percent {
            return Err(ServiceError::Refused {
                reason: format!(
                    "change control plan {}@{} allows a canary of at most {}% of patients",
                    plan.name, plan.version, rollout.max_canary_percent
                ),
            });
        }
        let silent = self
            .service()
            .audit_search(Filter {
                events: vec![EventType::Prediction],
                ..Filter::default()
            })
            .await?
            .iter()
            .filter(|(_, e)| {
                e.prediction
                    .as_ref()
                    .is_some_and(|p| p.version_hash == v.hash && p.display == Display::Silent)
            })
            .count() as u64;
        if silent < rollout.min_silent_predictions {
            return Err(ServiceError::Refused {
                reason: format!(
                    "change control plan {}@{} asks for {} silent predictions before a canary; {} made so far",
                    plan.name, plan.version, rollout.min_silent_predictions, silent
                ),
            });
        }
        Ok(())
    }
}
