//! How a WorkflowExecution reads `Pending` from birth, proved on a copy of our CRD under a probe
//! group (so the real CRD of other tests is never touched):
//! 1. `status` sent in a create is discarded (status subresource), so a client or a mutating webhook
//!    cannot set the phase on create;
//! 2. the object is stored *without* a status, and the API server's structural defaulting
//!    (`status: default {}`, `status.phase: default Pending`) fills it in on every read: removing the
//!    defaults from the CRD makes the same stored object read back with no status at all.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use wfe_shared::fixtures::execution;
use wfe_tools::{eventually, shared};

const GROUP: &str = "probe.kubernaut.ai";

fn probe_crd(with_defaults: bool) -> Value {
    let mut crd = serde_json::to_value(wfe_shared::api::crd::crd()).expect("crd json");
    crd["metadata"]["name"] = json!(format!("workflowexecutions.{GROUP}"));
    crd["spec"]["group"] = json!(GROUP);
    let status =
        &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    if !with_defaults {
        status
            .as_object_mut()
            .expect("status schema")
            .remove("default");
        status["properties"]["phase"]
            .as_object_mut()
            .expect("phase schema")
            .remove("default");
    }
    crd
}

fn phase(obj: &DynamicObject) -> Option<String> {
    obj.data["status"]["phase"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn status_is_dropped_on_create_and_pending_comes_from_structural_defaults() {
    let cp = shared();
    let client = cp.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("workflowexecutions.{GROUP}");
    let apply = PatchParams::apply("initial-phase-test").force();
    crds.patch(&name, &apply, &Patch::Apply(probe_crd(true)))
        .await
        .expect("probe CRD installed");

    let ns = cp.namespace(&client, "initial-phase").await;
    let gvk = GroupVersionKind::gvk(GROUP, "v1alpha1", "WorkflowExecution");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "workflowexecutions");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let object = execution("probe")
        .remove("metadata.namespace")
        .set("apiVersion", format!("{GROUP}/v1alpha1"))
        .workflow("w", "1")
        .image("quay.io/x/y:v1")
        .target("ns1/deployment/app")
        // What a client or a mutating webhook might try: it is discarded.
        .status(json!({"phase": "Running"}))
        .json();
    let mut obj: DynamicObject = serde_json::from_value(object).expect("object");
    obj = eventually("probe CRD served", Duration::from_secs(30), || {
        let api = api.clone();
        let obj = obj.clone();
        async move { api.create(&PostParams::default(), &obj).await.ok() }
    })
    .await;
    assert_eq!(
        phase(&obj).as_deref(),
        Some("Pending"),
        "create response: {:?}",
        obj.data
    );
    let read = api.get("probe").await.expect("get");
    assert_eq!(phase(&read).as_deref(), Some("Pending"));

    // Without the defaults, the very same stored object has no status: nothing was persisted.
    crds.patch(&name, &apply, &Patch::Apply(probe_crd(false)))
        .await
        .expect("defaults removed");
    let bare = eventually("read without defaults", Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            let o = api.get("probe").await.ok()?;
            o.data.get("status").is_none().then_some(o)
        }
    })
    .await;
    assert!(bare.data.get("status").is_none(), "{:?}", bare.data);

    // With the defaults back, it reads Pending again.
    crds.patch(&name, &apply, &Patch::Apply(probe_crd(true)))
        .await
        .expect("defaults restored");
    eventually("Pending again", Duration::from_secs(30), || {
        let api = api.clone();
        async move { (phase(&api.get("probe").await.ok()?).as_deref() == Some("Pending")).then_some(()) }
    })
    .await;
}
