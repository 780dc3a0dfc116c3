//! Carries out one side effect the plan asked for and says what came of it, for the next plan.

use kube::ResourceExt;
use kube::api::Api;
use wfe_shared::WorkflowExecution;
use wfe_shared::api::names::FINALIZER;
use wfe_shared::plan::{Done, Effect};
use wfe_shared::tekton::observed::{ObservedRun, Watched};

use crate::context::Context;
use crate::error::{Error, is_kube_conflict, is_not_found};
use crate::hooks::Point;
use crate::writer::Writer;

/// Carries out `effect`. A finalizer write replaces `current` with the object it returned (its
/// resourceVersion is the one the status write must use). A conflict on a finalizer write is an
/// error (the caller re-reads and plans again); a refused create or delete is a [`Done::Failed`]
/// for the plan to report.
pub async fn carry_out(
    effect: Effect,
    api: &Api<WorkflowExecution>,
    current: &mut WorkflowExecution,
    ctx: &Context,
) -> Result<Done, Error> {
    let writer = Writer::new(ctx);
    match effect {
        Effect::AddFinalizer => {
            let mut finalizers = current.finalizers().to_vec();
            finalizers.push(FINALIZER.to_owned());
            *current = writer.finalizers(api, current, finalizers).await?;
            Ok(Done::FinalizerAdded)
        }
        Effect::RemoveFinalizer => {
            let finalizers = current
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            match writer.finalizers(api, current, finalizers).await {
                Ok(written) => *current = written,
                Err(Error::Kube(e)) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
            Ok(Done::FinalizerRemoved)
        }
        Effect::CreatePipelineRun(run) => {
            let name = run.name_any();
            match writer.create_run(&run).await {
                Ok(_) => {
                    ctx.at(Point::AfterPipelineRunCreate).await;
                    Ok(Done::Created(name))
                }
                // The deterministic name is the lock: someone holds it. Who?
                Err(Error::Kube(e)) if is_kube_conflict(&e) => {
                    let holder = Api::<Watched<ObservedRun>>::namespaced(
                        ctx.client.clone(),
                        &ctx.settings.execution_namespace,
                    )
                    .get(&name)
                    .await?;
                    Ok(Done::NameTaken(Box::new(holder.observed)))
                }
                Err(Error::Kube(e)) => Ok(Done::Failed(e.to_string())),
                Err(e) => Err(e),
            }
        }
        Effect::RecordClearance {
            clearance,
            audit_pending,
        } => {
            writer
                .block_clearance(api, current, &clearance, &audit_pending)
                .await?;
            Ok(Done::ClearanceRecorded)
        }
        // Not a write to the API server: not leader-guarded (an event reports what happened).
        Effect::Deliver(events) => Ok(ctx.audit.deliver(events).await),
        Effect::DeletePipelineRun { name, uid } => match writer.delete_run(&name, uid).await {
            Ok(()) => Ok(Done::Deleted(name)),
            // Gone, or replaced by another run of the same name (uid precondition).
            Err(Error::Kube(e)) if is_not_found(&e) || is_kube_conflict(&e) => Ok(Done::Gone(name)),
            Err(Error::Kube(e)) => Ok(Done::Failed(e.to_string())),
            Err(e) => Err(e),
        },
    }
}
