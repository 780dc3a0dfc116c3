//! What validation reports: every violation, each with its field path and the rule broken, worded
//! like Kubernetes' own field errors (`spec.targetResource: Invalid value: "x": must be ...`).

use std::fmt;

/// Kind of a field error, as Kubernetes names them (`field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    Forbidden,
    TooLong,
    TooMany,
}

impl ErrorType {
    /// The `StatusCause.reason` Kubernetes uses for this kind.
    pub fn cause_reason(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
        }
    }
}

/// One violated rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// JSON path in Kubernetes notation, e.g. `spec.parameters[replicas]`.
    pub field: String,
    pub type_: ErrorType,
    /// The offending value, rendered as Kubernetes does (strings quoted), for `Invalid`.
    pub value: Option<String>,
    /// The rule, in words.
    pub detail: String,
}

impl FieldError {
    /// The error without its field, as in a Kubernetes `StatusCause.message`.
    pub fn body(&self) -> String {
        let head = match self.type_ {
            ErrorType::Required => "Required value".to_owned(),
            ErrorType::Invalid => {
                format!("Invalid value: {}", self.value.as_deref().unwrap_or("null"))
            }
            ErrorType::Forbidden => "Forbidden".to_owned(),
            ErrorType::TooLong => "Too long".to_owned(),
            ErrorType::TooMany => "Too many".to_owned(),
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// All violations of one object, plus non-fatal warnings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// Both reports' errors and warnings, this one's first.
    pub fn and(mut self, other: Report) -> Report {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
        self
    }

    /// `[e1, e2]` like Kubernetes' aggregated errors (a single error is printed bare).
    pub fn message(&self) -> String {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        match parts.len() {
            0 => String::new(),
            1 => parts[0].clone(),
            _ => format!("[{}]", parts.join(", ")),
        }
    }

    pub(super) fn required(&mut self, field: impl Into<String>) {
        self.push(field, ErrorType::Required, None, "");
    }

    pub(super) fn invalid(
        &mut self,
        field: impl Into<String>,
        value: impl fmt::Debug,
        detail: impl Into<String>,
    ) {
        self.push(
            field,
            ErrorType::Invalid,
            Some(format!("{value:?}")),
            detail,
        );
    }

    pub(super) fn too_long(&mut self, field: impl Into<String>, max: usize) {
        let detail = format!("may not be more than {max} bytes");
        self.push(field, ErrorType::TooLong, None, detail);
    }

    pub(super) fn push(
        &mut self,
        field: impl Into<String>,
        type_: ErrorType,
        value: Option<String>,
        detail: impl Into<String>,
    ) {
        self.errors.push(FieldError {
            field: field.into(),
            type_,
            value,
            detail: detail.into(),
        });
    }

    /// Required, ≤ max, and nothing else.
    pub(super) fn bounded_required(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.required(field);
        } else if value.len() > max {
            self.too_long(field, max);
        }
    }
}
