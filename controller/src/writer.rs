//! The one writer: every write of a reconcile goes through here, and each first checks that this
//! replica still leads (losing the lease stops writes at once).

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;
use wfe_shared::api::{AuditEventType, BlockClearance};
use wfe_shared::tekton::PipelineRun;
use wfe_shared::{WorkflowExecution, WorkflowExecutionStatus};

use crate::context::Context;
use crate::error::Error;

/// Who the API server records in `managedFields` for our writes.
pub const FIELD_MANAGER: &str = "workflowexecution-controller";

pub struct Writer<'a> {
    ctx: &'a Context,
}

impl<'a> Writer<'a> {
    pub fn new(ctx: &'a Context) -> Self {
        Writer { ctx }
    }

    fn guard(&self) -> Result<(), Error> {
        if self.ctx.is_leading() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    fn runs(&self) -> Api<PipelineRun> {
        Api::namespaced(
            self.ctx.client.clone(),
            &self.ctx.settings.execution_namespace,
        )
    }

    /// One status write: the complete status replaces the old one (a PUT of the status
    /// subresource, which the API server applies without the patch machinery), with the
    /// resourceVersion as precondition (409 if stale). Returns the object as written.
    pub async fn status(
        &self,
        api: &Api<WorkflowExecution>,
        current: &WorkflowExecution,
        status: &WorkflowExecutionStatus,
    ) -> Result<WorkflowExecution, Error> {
        self.guard()?;
        // Only status is read from a status write; the rest of the object is kept as stored.
        let body = json!({
            "apiVersion": WorkflowExecution::api_version(&()),
            "kind": WorkflowExecution::kind(&()),
            "metadata": {
                "name": current.name_any(),
                "namespace": current.namespace(),
                "resourceVersion": current.resource_version(),
            },
            "status": status,
        });
        Ok(api
            .replace_subresource("status", &current.name_any(), &post_params(), &body)
            .await?)
    }

    /// Adds `blockClearance` to a status, with the audit events it owes, leaving the rest as
    /// stored (a merge patch of the status subresource: the cached copy of a terminal execution
    /// is trimmed and never written back).
    pub async fn block_clearance(
        &self,
        api: &Api<WorkflowExecution>,
        current: &WorkflowExecution,
        clearance: &BlockClearance,
        audit_pending: &[AuditEventType],
    ) -> Result<WorkflowExecution, Error> {
        self.guard()?;
        let patch = json!({"status": {"blockClearance": clearance, "auditPending": audit_pending}});
        Ok(api
            .patch_status(&current.name_any(), &patch_params(), &Patch::Merge(&patch))
            .await?)
    }

    /// Replaces the finalizers, with the resourceVersion as precondition (409 if stale).
    pub async fn finalizers(
        &self,
        api: &Api<WorkflowExecution>,
        current: &WorkflowExecution,
        finalizers: Vec<String>,
    ) -> Result<WorkflowExecution, Error> {
        self.guard()?;
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": current.resource_version()}});
        Ok(api
            .patch(&current.name_any(), &patch_params(), &Patch::Merge(&patch))
            .await?)
    }

    pub async fn create_run(&self, run: &PipelineRun) -> Result<PipelineRun, Error> {
        self.guard()?;
        Ok(self.runs().create(&post_params(), run).await?)
    }

    /// A background delete of exactly the object with `uid`: a newer object of the same name is a
    /// 409.
    pub async fn delete_run(&self, name: &str, uid: Option<String>) -> Result<(), Error> {
        self.guard()?;
        let params = DeleteParams {
            preconditions: uid.map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        self.runs().delete(name, &params).await?;
        Ok(())
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}
