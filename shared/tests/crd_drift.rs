//! The CRD committed in the Helm chart is exactly what the code generates.

use std::path::Path;

#[test]
fn committed_chart_files_match_the_generated_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = wfe_shared::api::crd::chart_files().expect("chart files render");
    assert_eq!(files.len(), 3, "the CRD and two match conditions");
    for (relative, generated) in files {
        let path = root.join(relative);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            committed == generated,
            "{} is out of date: run `make crds` and commit the result",
            path.display()
        );
    }
}

#[test]
fn schema_limits_agree_with_the_shared_constants() {
    use wfe_shared::api::limits::*;
    let crd = serde_json::to_value(wfe_shared::api::crd::crd()).expect("json");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let params = &spec["properties"]["parameters"];
    assert_eq!(params["maxProperties"], MAX_PARAMETER_COUNT);
    assert_eq!(
        params["additionalProperties"]["maxLength"],
        MAX_PARAMETER_VALUE_LEN
    );
    let timeout_rule = &spec["properties"]["executionConfig"]["properties"]["timeout"]["x-kubernetes-validations"]
        [0]["rule"];
    assert!(
        timeout_rule
            .as_str()
            .is_some_and(|r| r.contains(&format!("duration('{}h')", MAX_TIMEOUT_SECONDS / 3600))),
        "{timeout_rule}"
    );
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(
        status["default"],
        serde_json::json!({}),
        "status defaults to {{}}"
    );
    assert_eq!(status["properties"]["phase"]["default"], "Pending");
    let clearance = &status["properties"]["blockClearance"]["properties"];
    assert_eq!(
        clearance["clearReason"]["maxLength"], MAX_CLEAR_REASON_LEN,
        "the schema holds every reason the webhook admits"
    );
    assert_eq!(
        clearance["clearMethod"]["enum"],
        serde_json::json!(["Annotation"])
    );
}
