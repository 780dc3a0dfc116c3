//! Admission of WorkflowExecutions: the pure core of `/mutate` and `/validate`.
//!
//! Input is the raw request body, output the HTTP status and the AdmissionReview to send back. No I/O
//! and no API calls: the answer depends only on the request, the configured defaults and the
//! clock (the time a block clearance is stamped with).

use k8s_openapi::jiff::Timestamp;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::{Status, StatusCause, StatusDetails};
use serde::Deserialize;
use serde_json::Value;
use wfe_shared::WorkflowExecution;
use wfe_shared::admission::clearance::{stamp, validate_clearance};
use wfe_shared::admission::defaulting::{Defaults, apply_defaults};
use wfe_shared::admission::validation::{Report, validate, validate_update};

/// Which webhook was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Mutate,
    Validate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// How a request was answered (a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Patched,
    Denied,
    Malformed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Patched => "patched",
            Verdict::Denied => "denied",
            Verdict::Malformed => "malformed",
        }
    }
}

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    /// 200 for every well-formed review (allowed or not); 400 when no review could be read.
    pub http_status: u16,
    pub review: AdmissionReview<DynamicObject>,
    pub verdict: Verdict,
    /// `CREATE`, `UPDATE`, ... or `unknown` for malformed requests.
    pub operation: &'static str,
    pub dry_run: bool,
    /// Name of the object, for logs.
    pub name: String,
    /// The denial message, for logs.
    pub message: Option<String>,
}

const GROUP: &str = wfe_shared::api::GROUP;
const KIND: &str = "WorkflowExecution";

/// Answers one AdmissionReview body.
pub fn admit(endpoint: Endpoint, body: &[u8], defaults: &Defaults, now: Timestamp) -> Answer {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return unreadable(format!("malformed AdmissionReview: not JSON: {e}")),
    };
    let uid = value
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let review = match AdmissionReview::<DynamicObject>::deserialize(&value) {
        Ok(r) => r,
        Err(e) => return malformed(uid, format!("malformed AdmissionReview: {e}")),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => {
            return malformed(
                uid,
                "malformed AdmissionReview: it has no request".to_owned(),
            );
        }
    };
    let operation = operation_name(&request.operation);
    let mut answer = Answer {
        http_status: 200,
        review: AdmissionResponse::from(&request).into_review(),
        verdict: Verdict::Allowed,
        operation,
        dry_run: request.dry_run,
        name: request.name.clone(),
        message: None,
    };
    if request.kind.group != GROUP || request.kind.kind != KIND {
        let msg = format!(
            "this webhook admits only {GROUP} {KIND}, not {}/{} {}",
            request.kind.group, request.kind.version, request.kind.kind
        );
        answer.deny(AdmissionResponse::from(&request).deny(&msg), msg);
        return answer;
    }
    // Status writes go through the status subresource and are the controller's business.
    if request.sub_resource.is_some() {
        return answer;
    }
    let object = value.pointer("/request/object").unwrap_or(&Value::Null);
    let old = value.pointer("/request/oldObject").filter(|o| !o.is_null());
    // Whoever the API server authenticated: the only attribution a clearance may carry.
    let user = request.user_info.username.as_deref().unwrap_or_default();
    match (endpoint, &request.operation) {
        (Endpoint::Mutate, Operation::Create) => {
            let mutated = stamp(None, &apply_defaults(object, defaults), user, now);
            answer.patch(&request, json_patch::diff(object, &mutated));
        }
        (Endpoint::Mutate, Operation::Update) => {
            let stamped = stamp(old, object, user, now);
            answer.patch(&request, json_patch::diff(object, &stamped));
        }
        (Endpoint::Validate, Operation::Create) => {
            let report = match WorkflowExecution::deserialize(object) {
                Ok(wfe) => validate(&wfe).and(validate_clearance(None, object)),
                Err(e) => {
                    let msg = format!("the object is not a WorkflowExecution: {e}");
                    answer.deny(AdmissionResponse::from(&request).deny(&msg), msg);
                    return answer;
                }
            };
            answer.report(&request, report);
        }
        (Endpoint::Validate, Operation::Update) => {
            let old_spec = old.and_then(|o| o.get("spec"));
            let report =
                validate_update(old_spec, object.get("spec")).and(validate_clearance(old, object));
            answer.report(&request, report);
        }
        _ => {}
    }
    answer
}

impl Answer {
    /// Allows with `patch`, unless it is empty.
    fn patch(&mut self, request: &AdmissionRequest<DynamicObject>, patch: json_patch::Patch) {
        if patch.0.is_empty() {
            return;
        }
        match AdmissionResponse::from(request).with_patch(patch) {
            Ok(resp) => {
                self.review = resp.into_review();
                self.verdict = Verdict::Patched;
            }
            Err(e) => {
                let msg = format!("cannot serialize the patch: {e}");
                self.deny(AdmissionResponse::from(request).deny(&msg), msg);
            }
        }
    }

    fn deny(&mut self, response: AdmissionResponse, message: String) {
        self.review = response.into_review();
        self.verdict = Verdict::Denied;
        self.message = Some(message);
    }

    /// Allows with warnings, or denies with a 422 `Invalid` Status whose causes name every field, so
    /// that kubectl prints each violation on its own line.
    fn report(&mut self, request: &AdmissionRequest<DynamicObject>, report: Report) {
        let mut response = AdmissionResponse::from(request);
        if !report.warnings.is_empty() {
            response.warnings = Some(report.warnings.clone());
        }
        if report.is_valid() {
            self.review = response.into_review();
            return;
        }
        let message = report.message();
        let causes = report
            .errors
            .iter()
            .map(|e| StatusCause {
                reason: e.type_.cause_reason().to_owned(),
                message: e.body(),
                field: e.field.clone(),
            })
            .collect();
        response.allowed = false;
        response.result = Status::failure(&message, "Invalid")
            .with_code(422)
            .with_details(StatusDetails {
                name: request.name.clone(),
                group: GROUP.to_owned(),
                kind: KIND.to_owned(),
                uid: String::new(),
                causes,
                retry_after_seconds: 0,
            });
        self.review = response.into_review();
        self.verdict = Verdict::Denied;
        self.message = Some(message);
    }
}

/// A review whose request uid is known but whose content is not: denied, echoing the uid.
fn malformed(uid: Option<String>, message: String) -> Answer {
    let Some(uid) = uid else {
        return unreadable(message);
    };
    let mut response = AdmissionResponse::invalid(&message);
    response.uid = uid;
    Answer {
        http_status: 200,
        review: response.into_review(),
        verdict: Verdict::Malformed,
        operation: "unknown",
        dry_run: false,
        name: String::new(),
        message: Some(message),
    }
}

/// No review could be read at all: HTTP 400, still with an AdmissionReview body explaining why.
fn unreadable(message: String) -> Answer {
    Answer {
        http_status: 400,
        review: AdmissionResponse::invalid(&message).into_review(),
        verdict: Verdict::Malformed,
        operation: "unknown",
        dry_run: false,
        name: String::new(),
        message: Some(message),
    }
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}
