//! The one writer: every write of a reconcile goes through here, and each first checks that this
//! replica still leads (losing the lease stops writes at once).

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;
use wfe_shared::api::{AuditEventType, BlockClearance};
use wfe_shared::tekton::PipelineRun;
use wfe_shared::{WorkflowExecution, WorkflowExecutionStatus};

use crate::context::Context;
use crate::error::{Error, is_kube_conflict, is_transient};

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
        match api
            .replace_subresource("status", &current.name_any(), &post_params(), &body)
            .await
        {
            Ok(written) => Ok(written),
            // An error that does not say the write failed — or a 409, which the client's own
            // retry of a write that landed but lost its answer (a 503, 504) runs into.
            Err(e) if is_transient(&e) || is_kube_conflict(&e) => {
                match reread(api, current, status).await {
                    Reread::Landed(written) => {
                        tracing::debug!(name = %current.name_any(), error = %e, "the status write was answered with an error, but it landed");
                        Ok(written)
                    }
                    Reread::Stale(fresh) if is_kube_conflict(&e) => {
                        Err(Error::StatusConflict(Box::new(fresh)))
                    }
                    _ => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
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

/// What a re-read after a failed status write found.
enum Reread {
    /// The object holds exactly the status written, in a newer version: the write landed, and the
    /// transition's log line, metrics and Events must follow.
    Landed(WorkflowExecution),
    /// Something else: the write did not land; plan again from this object.
    Stale(WorkflowExecution),
    /// The object could not be read.
    Unknown,
}

/// After a status write answered with an error that does not say it failed (a 5xx, a reset, a
/// timeout, or a 409 met by a retry of a write that landed): reads the object back. At most two
/// reads, 200 ms apart (a read that fails is retried).
async fn reread(
    api: &Api<WorkflowExecution>,
    current: &WorkflowExecution,
    status: &WorkflowExecutionStatus,
) -> Reread {
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let Ok(stored) = api.get(&current.name_any()).await else {
            continue;
        };
        let newer = stored.resource_version() != current.resource_version();
        // Compared as written: times go to the API at whole seconds.
        let same =
            serde_json::to_value(&stored.status).ok() == serde_json::to_value(Some(status)).ok();
        return if newer && same {
            Reread::Landed(stored)
        } else {
            Reread::Stale(stored)
        };
    }
    Reread::Unknown
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
