//! The console API's error answer: a status, a stable machine-readable `code` (the UI's translations key on it;
//! scripts may branch on it), a message in English a marketer can act on, and the field(s) at fault.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use segcast::domain::ParseError;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// `{"code": code, "error": message, "field": first field, "errors": [{field, message}]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: e.g. `not_found`, `invalid_field`, `not_paused`, `internal`.
    pub code: String,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub errors: Vec<FieldError>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An answer with the status's general code (see [`code_for`]); [`ApiError::with_code`] names a specific one.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code_for(status),
            message: message.into(),
            errors: Vec::new(),
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// 422: `field` is wrong; nothing was saved.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: code_for(StatusCode::UNPROCESSABLE_ENTITY),
            message: format!("{field}: {message}"),
            errors: vec![FieldError { field, message }],
        }
    }

    /// 422 with every problem found (e.g. all the content's violations at once).
    pub fn fields(errors: Vec<ParseError>) -> Self {
        let errors: Vec<FieldError> = errors
            .into_iter()
            .map(|e| FieldError {
                field: e.field,
                message: e.message,
            })
            .collect();
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!(
                "{} problems; the first: {}: {}",
                many.len(),
                many.first().map(|e| e.field.as_str()).unwrap_or(""),
                many.first().map(|e| e.message.as_str()).unwrap_or("")
            ),
        };
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: code_for(StatusCode::UNPROCESSABLE_ENTITY),
            message,
            errors,
        }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("{what} {id:?} does not exist"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 409: a rule of the entity's state refused the command (its code is the rule's).
    pub fn from_rule(n: segcast::domain::NotAllowed) -> Self {
        Self::conflict(n.message).with_code(n.code)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 500: logged with its cause; the caller gets a plain message (causes can name internals).
    pub fn internal(e: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "console request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "something went wrong on our side; nothing was changed unless the answer says so",
        )
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        Self::fields(vec![e])
    }
}

/// A command on a stored entity: not found 404, not allowed 409 (with the rule's code), a store failure 500
/// (logged with its cause, answered without it).
impl From<segcast::catalog::CommandError> for ApiError {
    fn from(e: segcast::catalog::CommandError) -> Self {
        use segcast::catalog::CommandError;
        match e {
            CommandError::NotFound { kind, id } => Self::not_found(kind, &id),
            CommandError::NotAllowed(n) => Self::from_rule(n),
            CommandError::Store(e) => Self::internal(e),
        }
    }
}

impl From<segcast::domain::NotAllowed> for ApiError {
    fn from(n: segcast::domain::NotAllowed) -> Self {
        Self::from_rule(n)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            field: self.errors.first().map(|e| e.field.clone()),
            error: self.message,
            errors: self.errors,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// The general code of a status, for answers that have no more specific one.
pub fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        413 => "too_large",
        415 => "unsupported_media_type",
        422 => "invalid_field",
        429 => "rate_limited",
        502..=504 => "upstream_unavailable",
        _ => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use segcast::catalog::CommandError;
    use segcast::domain::NotAllowed;

    fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let bytes =
            futures::executor::block_on(axum::body::to_bytes(r.into_body(), 1 << 20)).unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn command_errors_map_to_404_409_and_500_without_internal_text() {
        let (s, b) = body(
            CommandError::NotFound {
                kind: "campaign",
                id: "c_x".into(),
            }
            .into(),
        );
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
        let (s, b) = body(
            CommandError::NotAllowed(NotAllowed::new(
                "not_paused",
                "campaign c_x is draft, not paused",
            ))
            .into(),
        );
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::CONFLICT, Some("not_paused"))
        );
        assert_eq!(b["error"], "campaign c_x is draft, not paused");
        let (s, b) =
            body(CommandError::Store(anyhow::anyhow!("Datastore at 10.0.0.7 unavailable")).into());
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("internal"))
        );
        assert!(!b.to_string().contains("10.0.0.7"), "{b}");
    }

    #[test]
    fn every_answer_carries_a_code() {
        for e in [
            ApiError::field("name", "is empty"),
            ApiError::fields(vec![ParseError::new("a", "b"), ParseError::new("c", "d")]),
            ApiError::forbidden("no"),
            ApiError::unauthenticated("who"),
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "slow"),
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "json"),
        ] {
            let (s, b) = body(e);
            assert_eq!(b["code"].as_str(), Some(code_for(s)), "{b}");
            assert_ne!(b["code"], "internal");
        }
    }
}
