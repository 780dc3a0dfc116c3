//! The PipelineRun that executes a WorkflowExecution (SPEC 5). Pure: same input, same object.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSecurityContext, SeccompProfile};
use kube::core::ObjectMeta;

use crate::admission::validation::RESERVED_PARAMETER;
use crate::api::WorkflowExecution;
use crate::api::limits::{DEFAULT_SERVICE_ACCOUNT, DEFAULT_TIMEOUT};
use crate::api::names::{self, label_value, pipeline_run_name, target_label_value};
use crate::tekton::ownership::Owner;
use crate::tekton::{
    Param, ParamValue, PipelineRef, PipelineRun, PipelineRunSpec, PipelineTaskRunTemplate,
    PodTemplate, TimeoutFields,
};

/// The parameters the PipelineRun is given, in order: the spec's, sorted (BTreeMap iteration),
/// then `TARGET_RESOURCE`, which cannot be overridden (validation forbids it in `spec.parameters`,
/// and it is skipped here should an old object carry it). The audit trail records exactly these.
pub fn parameters(wfe: &WorkflowExecution) -> impl Iterator<Item = (&str, &str)> {
    let spec = &wfe.spec;
    spec.parameters
        .iter()
        .filter(|(k, _)| k.as_str() != RESERVED_PARAMETER)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([(RESERVED_PARAMETER, spec.target_resource.as_str())])
}

/// Builds the PipelineRun for `wfe` in `execution_namespace`.
pub fn build(wfe: &WorkflowExecution, execution_namespace: &str) -> PipelineRun {
    let spec = &wfe.spec;
    let config = spec.execution_config.clone().unwrap_or_default();

    let mut labels: BTreeMap<String, String> = Owner::of(wfe).labels().into_iter().collect();
    labels.extend([
        (
            names::WORKFLOW_ID.to_owned(),
            label_value(&spec.workflow_ref.workflow_id),
        ),
        (
            names::TARGET_RESOURCE.to_owned(),
            target_label_value(&spec.target_resource),
        ),
    ]);
    let annotations = BTreeMap::from([(
        names::TARGET_RESOURCE.to_owned(),
        spec.target_resource.clone(),
    )]);

    let params: Vec<Param> = parameters(wfe).map(|(k, v)| string_param(k, v)).collect();

    PipelineRun {
        metadata: ObjectMeta {
            name: Some(pipeline_run_name(&spec.target_resource)),
            namespace: Some(execution_namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: PipelineRunSpec {
            pipeline_ref: Some(PipelineRef {
                resolver: Some("bundles".into()),
                params: vec![
                    string_param("bundle", &spec.workflow_ref.container_image),
                    string_param("name", "workflow"),
                    string_param("kind", "pipeline"),
                ],
                ..Default::default()
            }),
            params,
            task_run_template: Some(PipelineTaskRunTemplate {
                service_account_name: Some(
                    config
                        .service_account_name
                        .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_owned()),
                ),
                pod_template: Some(PodTemplate {
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                }),
            }),
            timeouts: Some(TimeoutFields {
                pipeline: Some(config.timeout.unwrap_or_else(|| DEFAULT_TIMEOUT.to_owned())),
                ..Default::default()
            }),
        },
        status: None,
    }
}

fn string_param(name: &str, value: &str) -> Param {
    Param {
        name: name.to_owned(),
        value: ParamValue::String(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::names::is_label_value;
    use crate::fixtures::execution;
    use crate::tekton::ownership::Holder;

    fn wfe(name: &str, target: &str) -> WorkflowExecution {
        execution(name)
            .remediation_request("rr")
            .workflow("Restart Deployment/v2", "1.0.0")
            .image("quay.io/k/restart:v1")
            .target(target)
            .param("ZETA", "z")
            .param("ALPHA", "a")
            .timeout("45m")
            .service_account("runner")
            .build()
    }

    #[test]
    fn builds_the_pipeline_run_of_spec_section_5() {
        let pr = build(
            &wfe("restart-api", "payments/deployment/api"),
            "kubernaut-workflows",
        );
        assert_eq!(
            pr.metadata.name.as_deref(),
            Some(pipeline_run_name("payments/deployment/api").as_str())
        );
        assert_eq!(
            pr.metadata.namespace.as_deref(),
            Some("kubernaut-workflows")
        );
        let labels = pr.metadata.labels.clone().unwrap();
        assert_eq!(labels["kubernaut.ai/workflow-execution"], "restart-api");
        assert_eq!(labels["kubernaut.ai/source-namespace"], "team-a");
        assert_eq!(labels["kubernaut.ai/workflow-id"], "Restart-Deployment-v2");
        assert_eq!(
            labels["kubernaut.ai/target-resource"],
            "payments__deployment__api"
        );
        assert_eq!(
            pr.metadata.annotations.clone().unwrap()["kubernaut.ai/target-resource"],
            "payments/deployment/api"
        );
        let pref = pr.spec.pipeline_ref.clone().unwrap();
        assert_eq!(pref.resolver.as_deref(), Some("bundles"));
        let p = |params: &[Param]| -> Vec<(String, String)> {
            params
                .iter()
                .map(|p| match &p.value {
                    ParamValue::String(s) => (p.name.clone(), s.clone()),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        assert_eq!(
            p(&pref.params),
            [
                ("bundle".into(), "quay.io/k/restart:v1".into()),
                ("name".into(), "workflow".into()),
                ("kind".into(), "pipeline".into())
            ]
        );
        assert_eq!(
            p(&pr.spec.params),
            [
                ("ALPHA".into(), "a".into()),
                ("ZETA".into(), "z".into()),
                ("TARGET_RESOURCE".into(), "payments/deployment/api".into())
            ]
        );
        let template = pr.spec.task_run_template.clone().unwrap();
        assert_eq!(template.service_account_name.as_deref(), Some("runner"));
        let sc = template.pod_template.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(pr.spec.timeouts.unwrap().pipeline.as_deref(), Some("45m"));
    }

    #[test]
    fn name_is_deterministic_per_target_and_differs_between_targets() {
        let a = pipeline_run_name("ns/deployment/a");
        assert_eq!(a, pipeline_run_name("ns/deployment/a"));
        assert_ne!(a, pipeline_run_name("ns/deployment/b"));
        assert_eq!(a.len(), 4 + 16);
        assert!(a.starts_with("wfe-") && a[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn defaults_apply_without_execution_config_and_labels_stay_valid_for_any_input() {
        let mut w = wfe(
            &"n".repeat(63),
            &format!("{}/Deployment/{}", "x".repeat(63), "y".repeat(253)),
        );
        w.spec.execution_config = None;
        w.spec.workflow_ref.workflow_id = "ÜBER workflow!!!".repeat(20);
        w.spec
            .parameters
            .insert("TARGET_RESOURCE".into(), "spoof".into());
        let pr = build(&w, "exec");
        for (k, v) in pr.metadata.labels.clone().unwrap() {
            assert!(is_label_value(&v), "{k}={v:?}");
        }
        let template = pr.spec.task_run_template.clone().unwrap();
        assert_eq!(
            template.service_account_name.as_deref(),
            Some("kubernaut-workflow-runner")
        );
        assert_eq!(
            pr.spec.timeouts.clone().unwrap().pipeline.as_deref(),
            Some("30m")
        );
        let targets: Vec<_> = pr
            .spec
            .params
            .iter()
            .filter(|p| p.name == "TARGET_RESOURCE")
            .collect();
        assert_eq!(
            targets.len(),
            1,
            "a spoofed TARGET_RESOURCE is never passed"
        );
        let owner = Owner::from_labels(pr.metadata.labels.as_ref().unwrap());
        let seen_by = |ns: &str, name: &str| Owner::named(ns, name).sees(owner.as_ref());
        assert_eq!(seen_by("team-a", &"n".repeat(63)), Holder::Ours);
        assert_ne!(seen_by("team-b", &"n".repeat(63)), Holder::Ours);
        assert_ne!(seen_by("team-a", "other"), Holder::Ours);
    }
}
